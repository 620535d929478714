package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/kubemail/kubemail/internal/contract/passwordhash"
)

// Verifier is Verify with a bounded cache of recent successful verifications, for the login hot
// path: mail clients open a new authenticated connection every few seconds, and argon2 costs
// tens of milliseconds and 19 MiB each time.
//
// Only successes are cached. Failures are recomputed so that a password-guessing client cannot
// evict the entries of real users, and so that guessing stays as expensive as argon2 makes it.
// The cache key is HMAC-SHA256(per-process random key, hash, password): the password is never
// stored, a changed hash (password reset) never matches an old entry, and an entry read from a
// memory dump is useless without the key. Entries expire after the TTL so a leaked key and cache
// only cover recent logins.
type Verifier struct {
	key  [32]byte
	size int
	ttl  time.Duration
	now  func() time.Time
	// verify is Verify; tests count calls through it to tell hits from misses.
	verify func(hash, password string) (bool, error)

	mu      sync.Mutex
	order   list.List // of *verifierEntry, most recently used first
	entries map[[sha256.Size]byte]*list.Element
}

type verifierEntry struct {
	key     [sha256.Size]byte
	expires time.Time
}

// NewVerifier returns a Verifier that remembers up to size successful verifications for ttl
// each. A few thousand entries and a TTL of minutes suit a server with that many active
// clients. size <= 0 or ttl <= 0 disables caching.
func NewVerifier(size int, ttl time.Duration) *Verifier {
	v := &Verifier{
		size:    size,
		ttl:     ttl,
		now:     time.Now,
		verify:  passwordhash.Verify,
		entries: make(map[[sha256.Size]byte]*list.Element),
	}
	if ttl <= 0 {
		v.size = 0
	}
	if _, err := rand.Read(v.key[:]); err != nil {
		// crypto/rand does not fail on supported platforms; caching without a secret key
		// would be the unsafe fallback, so refuse to cache instead.
		v.size = 0
	}
	return v
}

// Verify behaves exactly like passwordhash.Verify, answering from the cache when this hash
// and password verified successfully within the TTL.
func (v *Verifier) Verify(hash, password string) (bool, error) {
	if v.size <= 0 {
		return v.verify(hash, password)
	}
	k := v.cacheKey(hash, password)
	if v.lookup(k) {
		return true, nil
	}
	ok, err := v.verify(hash, password)
	if ok && err == nil {
		v.store(k)
	}
	return ok, err
}

func (v *Verifier) cacheKey(hash, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, v.key[:])
	// Length-prefix the hash so that (hash, password) pairs cannot collide by shifting bytes
	// from one into the other.
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(hash)))
	m.Write(n[:])
	m.Write([]byte(hash))
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (v *Verifier) lookup(k [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.entries[k]
	if !ok {
		return false
	}
	if !v.now().Before(el.Value.(*verifierEntry).expires) {
		v.order.Remove(el)
		delete(v.entries, k)
		return false
	}
	v.order.MoveToFront(el)
	return true
}

func (v *Verifier) store(k [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	expires := v.now().Add(v.ttl)
	if el, ok := v.entries[k]; ok {
		el.Value.(*verifierEntry).expires = expires
		v.order.MoveToFront(el)
		return
	}
	for len(v.entries) >= v.size {
		oldest := v.order.Back()
		v.order.Remove(oldest)
		delete(v.entries, oldest.Value.(*verifierEntry).key)
	}
	v.entries[k] = v.order.PushFront(&verifierEntry{key: k, expires: expires})
}
