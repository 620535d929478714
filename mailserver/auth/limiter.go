package auth

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrTooManyFailures is returned by Limiter.Check when a client address or an account has failed
// too many logins recently. The message is safe to show to the client.
var ErrTooManyFailures = errors.New("too many failed logins, try again later")

// LimiterConfig tunes a Limiter. Zero fields take the defaults shown.
type LimiterConfig struct {
	// FreeFailures is how many recent failures are answered without delay (3).
	FreeFailures int
	// BaseDelay is the delay after FreeFailures failures; each further failure doubles it (1s).
	BaseDelay time.Duration
	// MaxDelay caps the delay (16s).
	MaxDelay time.Duration
	// MaxIPFailures is how many recent failures from one client address, or IPv6 /64, make
	// Check refuse it (20).
	MaxIPFailures int
	// MaxAccountFailures is how many recent failures for one account, from any address, make
	// Check refuse that account (10). This stops slow distributed guessing, at the price that
	// such an attack also locks the real user out until the Window passes.
	MaxAccountFailures int
	// Window is how long a quiet address or account keeps its failure count: the count is
	// forgotten once Window passes without a new failure (15m).
	Window time.Duration
	// MaxEntries bounds the addresses and the accounts tracked, each; beyond it the entries
	// with the oldest failure are dropped (65536, a few MiB).
	MaxEntries int
	// Now is the clock (time.Now); tests inject their own.
	Now func() time.Time
}

func (c LimiterConfig) withDefaults() LimiterConfig {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.FreeFailures, 3)
	defDur(&c.BaseDelay, time.Second)
	defDur(&c.MaxDelay, 16*time.Second)
	def(&c.MaxIPFailures, 20)
	def(&c.MaxAccountFailures, 10)
	defDur(&c.Window, 15*time.Minute)
	def(&c.MaxEntries, 65536)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Limiter slows down and then refuses logins from client addresses and for accounts with many
// recent failures. A login attempt for an account that does not exist must be reported exactly
// like a wrong password, so neither the delay nor the refusal tells a client which accounts
// exist. Safe for concurrent use.
//
// Use:
//
//	delay, err := l.Check(ip, user)
//	// wait delay, then answer; if err != nil, refuse without verifying
//	if ok { l.Success(ip, user) } else { l.Failure(ip, user) }
type Limiter struct {
	cfg LimiterConfig

	mu       sync.Mutex
	ips      failureTable[netip.Addr]
	accounts failureTable[[sha256.Size]byte]
}

// NewLimiter returns a Limiter with cfg, zero fields defaulted.
func NewLimiter(cfg LimiterConfig) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		cfg:      cfg,
		ips:      newFailureTable[netip.Addr](cfg.MaxEntries),
		accounts: newFailureTable[[sha256.Size]byte](cfg.MaxEntries),
	}
}

// Check is called before verifying a login. delay is how long the caller should wait before
// answering, whatever the outcome; it is zero for the first FreeFailures recent failures of the
// address and the account and then doubles per failure up to MaxDelay. err is
// ErrTooManyFailures when the address or the account is over its limit: refuse the login
// without verifying the password, and do not report it with Failure, so that a refused client
// hammering away does not extend the lockout of the account it targets.
func (l *Limiter) Check(ip netip.Addr, account string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	ipFailures := l.ips.count(ipKey(ip), now, l.cfg.Window)
	accountFailures := 0
	if account != "" {
		accountFailures = l.accounts.count(accountKey(account), now, l.cfg.Window)
	}
	delay := l.delay(max(ipFailures, accountFailures))
	if ipFailures >= l.cfg.MaxIPFailures || accountFailures >= l.cfg.MaxAccountFailures {
		return delay, ErrTooManyFailures
	}
	return delay, nil
}

func (l *Limiter) delay(failures int) time.Duration {
	if failures < l.cfg.FreeFailures {
		return 0
	}
	d := l.cfg.BaseDelay
	for i := l.cfg.FreeFailures; i < failures && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// Failure records a failed login: wrong password or unknown account alike. An empty account
// (the client never named one) counts against the address only.
func (l *Limiter) Failure(ip netip.Addr, account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	l.ips.add(ipKey(ip), now, l.cfg.Window)
	if account != "" {
		l.accounts.add(accountKey(account), now, l.cfg.Window)
	}
}

// Success records a successful login. It clears the account's failures and takes the same
// number off the address. It does not clear the address: an attacker holding one valid account
// could otherwise log into it between guesses at other accounts and never be refused.
func (l *Limiter) Success(ip netip.Addr, account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if account == "" {
		return
	}
	now := l.cfg.Now()
	n := l.accounts.remove(accountKey(account), now, l.cfg.Window)
	l.ips.subtract(ipKey(ip), n)
}

// ipKey groups addresses the way one client holds them: an IPv4 address alone (also when
// written IPv4-mapped), an IPv6 address by its /64, since one host or customer usually owns a
// whole /64 and can rotate freely within it.
func ipKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// accountKey keys the account table by a fixed-size digest so that memory stays bounded however
// long the names clients send are. Case is folded because mail addresses are matched
// case-insensitively by the directory.
func accountKey(account string) [sha256.Size]byte {
	return sha256.Sum256([]byte(strings.ToLower(account)))
}

// failureTable counts recent failures per key, forgetting a key after a quiet window and
// dropping the keys with the oldest failure beyond max entries. Not safe for concurrent use.
type failureTable[K comparable] struct {
	max     int
	order   *list.List // of *failureEntry[K], most recent failure first
	entries map[K]*list.Element
}

type failureEntry[K comparable] struct {
	key  K
	n    int
	last time.Time
}

func newFailureTable[K comparable](limit int) failureTable[K] {
	return failureTable[K]{max: limit, order: list.New(), entries: make(map[K]*list.Element)}
}

// count returns the failures of k still within window.
func (t *failureTable[K]) count(k K, now time.Time, window time.Duration) int {
	el, ok := t.entries[k]
	if !ok {
		return 0
	}
	e := el.Value.(*failureEntry[K])
	if now.Sub(e.last) >= window {
		return 0
	}
	return e.n
}

func (t *failureTable[K]) add(k K, now time.Time, window time.Duration) {
	t.expire(now, window)
	if el, ok := t.entries[k]; ok {
		e := el.Value.(*failureEntry[K])
		if now.Sub(e.last) >= window {
			e.n = 0
		}
		e.n++
		e.last = now
		t.order.MoveToFront(el)
		return
	}
	for len(t.entries) >= t.max {
		t.drop(t.order.Back())
	}
	t.entries[k] = t.order.PushFront(&failureEntry[K]{key: k, n: 1, last: now})
}

// remove forgets k and returns the failures it had within window.
func (t *failureTable[K]) remove(k K, now time.Time, window time.Duration) int {
	n := t.count(k, now, window)
	if el, ok := t.entries[k]; ok {
		t.drop(el)
	}
	return n
}

func (t *failureTable[K]) subtract(k K, n int) {
	el, ok := t.entries[k]
	if !ok || n <= 0 {
		return
	}
	e := el.Value.(*failureEntry[K])
	e.n -= n
	if e.n <= 0 {
		t.drop(el)
	}
}

// expire drops entries whose last failure is a window old, so memory shrinks once an attack
// stops. The list is ordered by last failure, so only its tail needs looking at.
func (t *failureTable[K]) expire(now time.Time, window time.Duration) {
	for el := t.order.Back(); el != nil; el = t.order.Back() {
		if now.Sub(el.Value.(*failureEntry[K]).last) < window {
			return
		}
		t.drop(el)
	}
}

func (t *failureTable[K]) drop(el *list.Element) {
	t.order.Remove(el)
	delete(t.entries, el.Value.(*failureEntry[K]).key)
}
