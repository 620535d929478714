package auth

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/passwordhash"
)

// countingVerifier returns a Verifier whose argon2/bcrypt computations are counted, and a clock
// the test moves.
func countingVerifier(size int, ttl time.Duration) (*Verifier, *atomic.Int64, *time.Time) {
	v := NewVerifier(size, ttl)
	var computed atomic.Int64
	v.verify = func(hash, password string) (bool, error) {
		computed.Add(1)
		return passwordhash.Verify(hash, password)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return now }
	return v, &computed, &now
}

// cheapHash is a hash of password with the operator's cheap parameters and a salt of its own:
// these tests are about the cache, not argon2.
func cheapHash(t testing.TB, password string) string {
	t.Helper()
	h, err := passwordhash.HashGenerated(password)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustHash(t testing.TB, password string) string {
	t.Helper()
	h, err := passwordhash.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifierCachesSuccess(t *testing.T) {
	v, computed, _ := countingVerifier(10, time.Minute)
	hash := mustHash(t, "s3cret")

	for i := range 3 {
		if ok, err := v.Verify(hash, "s3cret"); !ok || err != nil {
			t.Fatalf("login %d: Verify = %v, %v; want true, nil", i, ok, err)
		}
	}
	if got := computed.Load(); got != 1 {
		t.Errorf("3 logins with the right password computed the hash %d times, want 1", got)
	}

	// Wrong passwords give the same answer as Verify and are never served from the cache, so
	// guessing costs a full argon2 each time.
	for i := range 3 {
		if ok, err := v.Verify(hash, "guess"); ok || err != nil {
			t.Fatalf("guess %d: Verify = %v, %v; want false, nil", i, ok, err)
		}
	}
	if got := computed.Load(); got != 4 {
		t.Errorf("after 3 wrong guesses the hash was computed %d times in total, want 4", got)
	}
	if len(v.entries) != 1 {
		t.Errorf("cache holds %d entries, want only the one success", len(v.entries))
	}
}

func TestVerifierChangedHashNotServedFromCache(t *testing.T) {
	v, computed, _ := countingVerifier(10, time.Minute)
	oldHash := mustHash(t, "old")
	if ok, _ := v.Verify(oldHash, "old"); !ok {
		t.Fatal("old password does not verify against its hash")
	}

	// The password was reset: the directory now holds a new hash.
	newHash := mustHash(t, "new")
	if ok, err := v.Verify(newHash, "old"); ok || err != nil {
		t.Fatalf("old password against the new hash: Verify = %v, %v; want false, nil", ok, err)
	}
	if ok, err := v.Verify(newHash, "new"); !ok || err != nil {
		t.Fatalf("new password against the new hash: Verify = %v, %v; want true, nil", ok, err)
	}
	if got := computed.Load(); got != 3 {
		t.Errorf("computed %d hashes, want 3 (no cache hit across hashes)", got)
	}
}

func TestVerifierErrorsNotCached(t *testing.T) {
	v, computed, _ := countingVerifier(10, time.Minute)
	for range 2 {
		if ok, err := v.Verify("s3cret", "s3cret"); ok || !errors.Is(err, passwordhash.ErrUnknownScheme) {
			t.Fatalf("plain-text hash: Verify = %v, %v; want false, ErrUnknownScheme", ok, err)
		}
	}
	if computed.Load() != 2 || len(v.entries) != 0 {
		t.Errorf("plain-text hash: computed %d times, %d entries; want 2 and 0", computed.Load(), len(v.entries))
	}
}

func TestVerifierExpires(t *testing.T) {
	v, computed, now := countingVerifier(10, time.Minute)
	hash := mustHash(t, "s3cret")
	v.Verify(hash, "s3cret")
	*now = now.Add(59 * time.Second)
	v.Verify(hash, "s3cret")
	if computed.Load() != 1 {
		t.Fatalf("within the TTL: computed %d times, want 1", computed.Load())
	}
	*now = now.Add(time.Second)
	if ok, _ := v.Verify(hash, "s3cret"); !ok {
		t.Fatal("after the TTL the right password no longer verifies")
	}
	if computed.Load() != 2 {
		t.Errorf("after the TTL: computed %d times, want 2", computed.Load())
	}
}

func TestVerifierBounded(t *testing.T) {
	v, computed, _ := countingVerifier(3, time.Hour)
	hashes := make([]string, 5)
	for i := range hashes {
		hashes[i] = cheapHash(t, "pw")
	}
	for _, h := range hashes[:3] {
		v.Verify(h, "pw")
	}
	v.Verify(hashes[0], "pw") // hashes[0] is now the most recently used
	for _, h := range hashes[3:] {
		v.Verify(h, "pw")
	}
	if len(v.entries) != 3 || v.order.Len() != 3 {
		t.Fatalf("cache of size 3 holds %d entries (%d in order)", len(v.entries), v.order.Len())
	}
	before := computed.Load()
	v.Verify(hashes[0], "pw")
	if computed.Load() != before {
		t.Error("the most recently used entry was evicted")
	}
	v.Verify(hashes[1], "pw")
	if computed.Load() != before+1 {
		t.Error("the least recently used entry was kept")
	}
}

func TestVerifierDisabled(t *testing.T) {
	for _, v := range []*Verifier{NewVerifier(0, time.Minute), NewVerifier(10, 0)} {
		hash := mustHash(t, "s3cret")
		if ok, err := v.Verify(hash, "s3cret"); !ok || err != nil {
			t.Fatalf("Verify = %v, %v; want true, nil", ok, err)
		}
		if len(v.entries) != 0 {
			t.Errorf("disabled cache stored %d entries", len(v.entries))
		}
	}
}

func TestVerifierConcurrent(t *testing.T) {
	v := NewVerifier(4, time.Minute)
	hashes := make([]string, 8)
	for i := range hashes {
		hashes[i] = cheapHash(t, "pw")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				h := hashes[(g+i)%len(hashes)]
				if ok, err := v.Verify(h, "pw"); !ok || err != nil {
					t.Errorf("Verify = %v, %v", ok, err)
					return
				}
				if ok, _ := v.Verify(h, "wrong"); ok {
					t.Error("wrong password accepted")
					return
				}
			}
		})
	}
	wg.Wait()
	if len(v.entries) > 4 {
		t.Errorf("cache of size 4 holds %d entries", len(v.entries))
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	v := NewVerifier(1024, time.Hour)
	hash := mustHash(b, "correct horse battery staple")
	if ok, err := v.Verify(hash, "correct horse battery staple"); !ok || err != nil {
		b.Fatalf("Verify = %v, %v", ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := v.Verify(hash, "correct horse battery staple"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
