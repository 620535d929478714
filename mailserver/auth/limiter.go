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
	// MaxAccountFailures is how many recent failures for one account make Check refuse it
	// (10), counted twice: from each address on its own, and from all the addresses that have
	// not logged in to the account before together. The second count stops slow distributed
	// guessing; since it leaves out the addresses the owner has logged in from, the guessing
	// cannot lock the owner out.
	MaxAccountFailures int
	// Window is how long a quiet address or account keeps its failure count: the count is
	// forgotten once Window passes without a new failure (15m).
	Window time.Duration
	// KnownFor is how long after its last successful login to an account an address counts as
	// one the account's owner uses (720h).
	KnownFor time.Duration
	// MaxEntries bounds the addresses, the accounts, the (address, account) pairs and the
	// known pairs tracked, each; beyond it the entries with the oldest failure (or success)
	// are dropped (65536, a few MiB each).
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
	defDur(&c.KnownFor, 30*24*time.Hour)
	def(&c.MaxEntries, 65536)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Scopes of throttling, as Verdict and Failure report them.
const (
	ScopeAddress = "address" // all failures from one client address
	ScopePair    = "pair"    // failures from one address for one account
	ScopeAccount = "account" // failures for one account from addresses it has not logged in from
)

// Limiter slows down and then refuses logins with many recent failures, counted per client
// address, per (address, account) pair, and per account over the addresses that have never
// logged in to it. A login attempt for an account that does not exist must be reported exactly
// like a wrong password, so neither the delay nor the refusal tells a client which accounts
// exist. Safe for concurrent use. Counts live in memory: each server process keeps its own.
//
// Use:
//
//	v := l.Decide(ip, user)
//	// wait v.Delay, then answer; if v.Refused, refuse without verifying
//	if ok { l.Success(ip, user) } else { l.Failure(ip, user) } // or l.Done(ip): no outcome
type Limiter struct {
	cfg LimiterConfig

	mu       sync.Mutex
	ips      failureTable[netip.Addr]
	pairs    failureTable[[sha256.Size]byte]
	accounts failureTable[[sha256.Size]byte] // failures from addresses not known for the account
	known    failureTable[[sha256.Size]byte] // pairs with a successful login within KnownFor
	// inflight counts, per address key, the attempts admitted by Decide and not yet Done: a
	// burst of parallel guesses would otherwise all pass before the first failure is recorded.
	inflight map[netip.Addr]int
}

// NewLimiter returns a Limiter with cfg, zero fields defaulted.
func NewLimiter(cfg LimiterConfig) *Limiter {
	cfg = cfg.withDefaults()
	return &Limiter{
		cfg:      cfg,
		ips:      newFailureTable[netip.Addr](cfg.MaxEntries),
		pairs:    newFailureTable[[sha256.Size]byte](cfg.MaxEntries),
		accounts: newFailureTable[[sha256.Size]byte](cfg.MaxEntries),
		known:    newFailureTable[[sha256.Size]byte](cfg.MaxEntries),
		inflight: map[netip.Addr]int{},
	}
}

// Verdict is what the Limiter decided about one login attempt.
type Verdict struct {
	// Delay is how long to wait before answering, whatever the outcome.
	Delay time.Duration
	// Refused: refuse the login without verifying the password.
	Refused bool
	// Scope is the count that set the delay or the refusal (ScopeAddress, ScopePair,
	// ScopeAccount); empty when the attempt is neither slowed nor refused.
	Scope string
}

// Decide is called before verifying a login. The delay is zero for the first FreeFailures
// recent failures of each count and then doubles per failure up to MaxDelay. A refused attempt
// must not be reported with Failure, so that a refused client hammering away does not extend
// the lockout it is under.
//
// Once an address is being slowed (FreeFailures recent failures), its attempts under way count
// towards its refusal too, so a burst of parallel guesses cannot overshoot the limit. An address
// without failures is never refused for logging in on many connections at once (an office
// behind one NAT address after a restart). An admitted attempt ends with its Failure or
// Success, or with Done when it has no outcome (the client went away).
func (l *Limiter) Decide(ip netip.Addr, account string) Verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	var v Verdict
	worst := 0
	for _, c := range l.tallies(ip, account) {
		pending := 0
		if c.scope == ScopeAddress && c.n >= l.cfg.FreeFailures {
			pending = l.inflight[ipKey(ip)]
		}
		if c.n+pending >= c.max && !v.Refused {
			v.Refused, v.Scope = true, c.scope
		}
		if c.n > worst {
			worst = c.n
			if !v.Refused {
				v.Scope = c.scope
			}
		}
	}
	v.Delay = l.delay(worst)
	if v.Delay == 0 && !v.Refused {
		v.Scope = ""
	}
	if !v.Refused {
		l.inflight[ipKey(ip)]++
	}
	return v
}

// Done ends an attempt Decide admitted that has no outcome to report.
func (l *Limiter) Done(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endAttempt(ip)
}

func (l *Limiter) endAttempt(ip netip.Addr) {
	k := ipKey(ip)
	if l.inflight[k] <= 1 {
		delete(l.inflight, k)
		return
	}
	l.inflight[k]--
}

// tally is one count that applies to a login attempt, and its limit.
type tally struct {
	scope  string
	n, max int
}

// tallies are the counts that apply to a login attempt from ip for account: the account-wide
// one only when ip has not logged in to the account before.
func (l *Limiter) tallies(ip netip.Addr, account string) []tally {
	now, w := l.cfg.Now(), l.cfg.Window
	out := []tally{{ScopeAddress, l.ips.count(ipKey(ip), now, w), l.cfg.MaxIPFailures}}
	if account == "" {
		return out
	}
	pk := pairKey(ip, account)
	out = append(out, tally{ScopePair, l.pairs.count(pk, now, w), l.cfg.MaxAccountFailures})
	if l.known.count(pk, now, l.cfg.KnownFor) == 0 {
		out = append(out, tally{ScopeAccount, l.accounts.count(accountKey(account), now, w), l.cfg.MaxAccountFailures})
	}
	return out
}

// Check is Decide with the refusal as ErrTooManyFailures; like Decide, an admitted attempt ends
// with its Failure, Success or Done.
func (l *Limiter) Check(ip netip.Addr, account string) (time.Duration, error) {
	v := l.Decide(ip, account)
	if v.Refused {
		return v.Delay, ErrTooManyFailures
	}
	return v.Delay, nil
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
// (the client never named one) counts against the address only. It returns the scopes whose
// next attempt this failure made the first to be slowed, so that each throttled source is
// logged once.
func (l *Limiter) Failure(ip netip.Addr, account string) (nowThrottled []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endAttempt(ip)
	now, w := l.cfg.Now(), l.cfg.Window
	add := func(scope string, n int) {
		if n == l.cfg.FreeFailures {
			nowThrottled = append(nowThrottled, scope)
		}
	}
	add(ScopeAddress, l.ips.add(ipKey(ip), now, w))
	if account == "" {
		return nowThrottled
	}
	pk := pairKey(ip, account)
	add(ScopePair, l.pairs.add(pk, now, w))
	if l.known.count(pk, now, l.cfg.KnownFor) == 0 {
		add(ScopeAccount, l.accounts.add(accountKey(account), now, w))
	}
	return nowThrottled
}

// Success records a successful login: the address becomes known for the account, and the
// failures from this address for this account are forgiven wherever they were counted. It
// does not clear the address's other failures: an attacker holding one valid account could
// otherwise log into it between guesses at other accounts and never be refused.
func (l *Limiter) Success(ip netip.Addr, account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endAttempt(ip)
	if account == "" {
		return
	}
	now := l.cfg.Now()
	pk := pairKey(ip, account)
	n := l.pairs.remove(pk, now, l.cfg.Window)
	l.ips.subtract(ipKey(ip), n)
	if l.known.count(pk, now, l.cfg.KnownFor) == 0 {
		l.accounts.subtract(accountKey(account), n)
	}
	l.known.add(pk, now, l.cfg.KnownFor)
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

// pairKey keys an (address, account) pair the same way.
func pairKey(ip netip.Addr, account string) [sha256.Size]byte {
	b, _ := ipKey(ip).MarshalBinary()
	return sha256.Sum256(append(append(b, 0), strings.ToLower(account)...))
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

// add counts one failure of k and returns its count within window.
func (t *failureTable[K]) add(k K, now time.Time, window time.Duration) int {
	t.expire(now, window)
	if el, ok := t.entries[k]; ok {
		e := el.Value.(*failureEntry[K])
		if now.Sub(e.last) >= window {
			e.n = 0
		}
		e.n++
		e.last = now
		t.order.MoveToFront(el)
		return e.n
	}
	for len(t.entries) >= t.max {
		t.drop(t.order.Back())
	}
	t.entries[k] = t.order.PushFront(&failureEntry[K]{key: k, n: 1, last: now})
	return 1
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
