package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestLimiter(cfg LimiterConfig) (*Limiter, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = clock.now
	return NewLimiter(cfg), clock
}

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("192.0.2.2")
)

func TestLimiterDelaysGrow(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{})
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
	for i, w := range want {
		delay, err := l.Check(ip1, "alice@example.com")
		if err != nil {
			t.Fatalf("attempt %d: refused (%v) before the account limit", i+1, err)
		}
		if delay != w {
			t.Errorf("attempt %d after %d failures: delay %v, want %v", i+1, i, delay, w)
		}
		l.Failure(ip1, "alice@example.com")
	}
}

func TestLimiterRefusesAccount(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxAccountFailures: 5})
	// A distributed guess: every attempt from a new address.
	for i := range 5 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if _, err := l.Check(ip, "alice@example.com"); err != nil {
			t.Fatalf("attempt %d refused early: %v", i+1, err)
		}
		l.Failure(ip, "alice@example.com")
	}
	fresh := netip.MustParseAddr("203.0.113.9")
	if _, err := l.Check(fresh, "alice@example.com"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("6th attempt at alice from a fresh address: err = %v, want ErrTooManyFailures", err)
	}
	if _, err := l.Check(fresh, "Alice@Example.COM"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("same account in other case: err = %v, want ErrTooManyFailures", err)
	}
	if delay, err := l.Check(fresh, "bob@example.com"); err != nil || delay != 0 {
		t.Errorf("another account from a fresh address: %v, %v; want 0, nil", delay, err)
	}
}

func TestLimiterRefusesIP(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxIPFailures: 8})
	// Password spraying: one guess per account, all from one address.
	for i := range 8 {
		account := fmt.Sprintf("user%d@example.com", i)
		if _, err := l.Check(ip1, account); err != nil {
			t.Fatalf("attempt %d refused early: %v", i+1, err)
		}
		l.Failure(ip1, account)
	}
	delay, err := l.Check(ip1, "never-tried@example.com")
	if !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("9th attempt from the same address: err = %v, want ErrTooManyFailures", err)
	}
	if delay != 16*time.Second {
		t.Errorf("refused attempt: delay %v, want the cap 16s so refusals are not answered at full speed", delay)
	}
	if delay, err := l.Check(ip2, "user0@example.com"); err != nil || delay != 0 {
		t.Errorf("another address: %v, %v; want 0, nil", delay, err)
	}
}

func TestLimiterDecays(t *testing.T) {
	l, clock := newTestLimiter(LimiterConfig{MaxIPFailures: 6})
	for range 6 {
		l.Failure(ip1, "alice@example.com")
	}
	clock.advance(15*time.Minute - time.Second)
	if _, err := l.Check(ip1, "alice@example.com"); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("just inside the window: err = %v, want ErrTooManyFailures", err)
	}
	clock.advance(time.Second)
	if delay, err := l.Check(ip1, "alice@example.com"); err != nil || delay != 0 {
		t.Fatalf("a window after the last failure: %v, %v; want 0, nil", delay, err)
	}
	// The count starts again from zero rather than resuming.
	l.Failure(ip1, "alice@example.com")
	if delay, err := l.Check(ip1, "alice@example.com"); err != nil || delay != 0 {
		t.Errorf("one failure after the window: %v, %v; want 0, nil", delay, err)
	}
}

func TestLimiterFailureExtendsWindow(t *testing.T) {
	l, clock := newTestLimiter(LimiterConfig{MaxIPFailures: 3})
	for range 3 {
		l.Failure(ip1, "")
		clock.advance(10 * time.Minute)
	}
	// 20 minutes after the first failure, but the count is kept while failures keep coming.
	if _, err := l.Check(ip1, ""); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("failures 10 minutes apart: err = %v, want ErrTooManyFailures", err)
	}
}

func TestLimiterSuccessResets(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{})
	for range 5 {
		l.Failure(ip1, "alice@example.com")
	}
	l.Success(ip1, "alice@example.com")
	if delay, err := l.Check(ip1, "alice@example.com"); err != nil || delay != 0 {
		t.Errorf("after a successful login: %v, %v; want 0, nil", delay, err)
	}
	// The account is clear from everywhere.
	if delay, err := l.Check(ip2, "alice@example.com"); err != nil || delay != 0 {
		t.Errorf("account from another address after success: %v, %v; want 0, nil", delay, err)
	}
}

// An attacker who owns one account must not be able to wash out the address's failures at other
// accounts by logging into it between guesses.
func TestLimiterSuccessOnlyForgivesOwnFailures(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxIPFailures: 6})
	for i := range 4 {
		l.Failure(ip1, fmt.Sprintf("victim%d@example.com", i))
	}
	l.Failure(ip1, "mallory@example.com")
	l.Success(ip1, "mallory@example.com")
	// 5 failures, 1 forgiven: 4 remain, a 2s delay (3 free, then 1s, 2s).
	if delay, err := l.Check(ip1, "victim9@example.com"); err != nil || delay != 2*time.Second {
		t.Fatalf("after success on own account: %v, %v; want 2s, nil", delay, err)
	}
	for range 10 {
		l.Success(ip1, "mallory@example.com")
	}
	l.Failure(ip1, "victim4@example.com")
	l.Failure(ip1, "victim5@example.com")
	if _, err := l.Check(ip1, "victim6@example.com"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("6 failures at other accounts despite 11 successes at own: err = %v, want ErrTooManyFailures", err)
	}
}

func TestLimiterEmptyAccount(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxIPFailures: 4, MaxAccountFailures: 2})
	for range 3 {
		l.Failure(ip1, "")
	}
	if _, err := l.Check(ip2, ""); err != nil {
		t.Errorf("empty account from another address refused: %v", err)
	}
	if _, err := l.Check(ip1, "alice@example.com"); err != nil {
		t.Errorf("failures without an account counted against alice: %v", err)
	}
}

func TestLimiterIPv6GroupedBy64(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxIPFailures: 4})
	for _, s := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::5%eth0"} {
		l.Failure(netip.MustParseAddr(s), "")
	}
	if _, err := l.Check(netip.MustParseAddr("2001:db8:1:2:abcd::1"), ""); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("another address in the same /64: err = %v, want ErrTooManyFailures", err)
	}
	if _, err := l.Check(netip.MustParseAddr("2001:db8:1:3::1"), ""); err != nil {
		t.Errorf("address in the next /64 refused: %v", err)
	}

	// IPv4 stays per address, also when written IPv4-mapped.
	for range 4 {
		l.Failure(netip.MustParseAddr("::ffff:192.0.2.1"), "")
	}
	if _, err := l.Check(ip1, ""); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("192.0.2.1 after failures as ::ffff:192.0.2.1: err = %v, want ErrTooManyFailures", err)
	}
	if _, err := l.Check(ip2, ""); err != nil {
		t.Errorf("neighbouring IPv4 address refused: %v", err)
	}
}

func TestLimiterMemoryBound(t *testing.T) {
	l, clock := newTestLimiter(LimiterConfig{MaxIPFailures: 2})
	const attackers = 100_000
	for i := range attackers {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Failure(ip, fmt.Sprintf("user%d@example.com", i))
		l.Failure(ip, "")
	}
	limit := l.cfg.MaxEntries
	for name, n := range map[string][2]int{
		"addresses": {len(l.ips.entries), l.ips.order.Len()},
		"accounts":  {len(l.accounts.entries), l.accounts.order.Len()},
	} {
		if n[0] > limit || n[1] != n[0] {
			t.Errorf("%s: %d entries, %d in order after %d attackers; want at most %d, equal", name, n[0], n[1], attackers, limit)
		}
	}
	// The most recent attackers are still refused; the oldest were dropped.
	n := attackers - 1
	last := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	if _, err := l.Check(last, ""); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("most recent attacker: err = %v, want ErrTooManyFailures", err)
	}
	if _, err := l.Check(netip.AddrFrom4([4]byte{10, 0, 0, 0}), ""); err != nil {
		t.Errorf("oldest attacker still tracked: %v", err)
	}

	// Once the attack stops, the tables empty out as new failures come in.
	clock.advance(15 * time.Minute)
	l.Failure(ip1, "alice@example.com")
	if len(l.ips.entries) != 1 || len(l.accounts.entries) != 1 {
		t.Errorf("a window after the attack: %d addresses, %d accounts tracked; want 1 and 1", len(l.ips.entries), len(l.accounts.entries))
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(LimiterConfig{MaxEntries: 64})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(g*31 + i)})
				account := fmt.Sprintf("user%d", i%100)
				l.Check(ip, account)
				if i%7 == 0 {
					l.Success(ip, account)
				} else {
					l.Failure(ip, account)
				}
			}
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ips.entries) > 64 || len(l.accounts.entries) > 64 {
		t.Errorf("tables grew past MaxEntries: %d addresses, %d accounts", len(l.ips.entries), len(l.accounts.entries))
	}
}

// Anyone who knows an address can fail logins for it; the owner, from an address that has
// logged in before, must still get in at once.
func TestLimiterGuessingDoesNotLockOutTheOwner(t *testing.T) {
	l, clock := newTestLimiter(LimiterConfig{})
	ip3 := netip.MustParseAddr("192.0.2.3")
	l.Success(ip2, "alice@example.com") // the owner's phone, last week
	clock.advance(7 * 24 * time.Hour)
	for range 30 {
		if v := l.Decide(ip1, "alice@example.com"); !v.Refused {
			l.Failure(ip1, "alice@example.com")
		}
	}
	if v := l.Decide(ip2, "Alice@example.com"); v.Refused || v.Delay != 0 {
		t.Errorf("the owner's known address: %+v, want neither slowed nor refused", v)
	}
	if v := l.Decide(ip1, "alice@example.com"); !v.Refused || v.Delay != 16*time.Second {
		t.Errorf("the guessing address: %+v, want refused after the longest delay", v)
	}
	// Refused attempts are not failures: 10 were counted, under the address's limit of 20.
	if v := l.Decide(ip1, "bob@example.com"); v.Refused || v.Scope != ScopeAddress {
		t.Errorf("the guessing address, another account: %+v, want slowed, not refused", v)
	}
	if v := l.Decide(ip3, "alice@example.com"); !v.Refused || v.Scope != ScopeAccount {
		t.Errorf("an address alice never logged in from: %+v, want refused for the account", v)
	}
	// The owner's own typos from a known address do not count against the account.
	for range 3 {
		l.Failure(ip2, "alice@example.com")
	}
	l.Success(ip2, "alice@example.com")
	if v := l.Decide(ip2, "alice@example.com"); v.Refused || v.Delay != 0 {
		t.Errorf("the owner after typos and a success: %+v", v)
	}
	// A known address is forgotten KnownFor after its last success.
	clock.advance(30*24*time.Hour + time.Minute)
	for range 10 {
		l.Failure(ip1, "alice@example.com")
	}
	if v := l.Decide(ip2, "alice@example.com"); !v.Refused || v.Scope != ScopeAccount {
		t.Errorf("an address last used 30 days ago during a new attack: %+v, want refused for the account", v)
	}
}

func TestLimiterPairRefusedBeforeAddress(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{})
	l.Success(ip1, "alice@example.com")
	for range 10 {
		l.Failure(ip1, "alice@example.com")
	}
	// A known address that keeps failing for one account is refused for it ...
	if v := l.Decide(ip1, "alice@example.com"); !v.Refused || v.Scope != ScopePair {
		t.Errorf("10 failures from a known address: %+v, want the pair refused", v)
	}
	// ... slowed for the others, by the address's count, but not refused.
	if v := l.Decide(ip1, "bob@example.com"); v.Refused || v.Scope != ScopeAddress || v.Delay != 16*time.Second {
		t.Errorf("the same address, another account: %+v, want slowed by the address's count", v)
	}
	// Failures from a known address are not the account's: other addresses are not slowed.
	if v := l.Decide(ip2, "alice@example.com"); v.Refused || v.Delay != 0 {
		t.Errorf("another address: %+v", v)
	}
}

func TestLimiterReportsEachThrottledSourceOnce(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{FreeFailures: 2})
	var got [][]string
	for range 6 {
		got = append(got, l.Failure(ip1, "alice@example.com"))
	}
	want := fmt.Sprint([][]string{nil, {ScopeAddress, ScopePair, ScopeAccount}, nil, nil, nil, nil})
	if fmt.Sprint(got) != want {
		t.Errorf("newly throttled scopes per failure: %v, want %v", got, want)
	}
}

// Guesses sent in parallel all pass Decide before any failure is recorded; once an address is
// being slowed, its attempts under way count towards its refusal (not its delay), so a burst
// cannot overshoot the limit. An address without failures may log in on many connections at
// once.
func TestLimiterCountsAttemptsUnderWay(t *testing.T) {
	l, _ := newTestLimiter(LimiterConfig{MaxIPFailures: 8})
	for i := range 30 {
		if v := l.Decide(ip2, "office@example.com"); v.Refused || v.Delay != 0 {
			t.Fatalf("parallel login %d from an address without failures: %+v", i+1, v)
		}
	}
	for i := range 3 { // FreeFailures: from now on the address is slowed
		l.Decide(ip1, fmt.Sprintf("user%d@example.com", i))
		l.Failure(ip1, fmt.Sprintf("user%d@example.com", i))
	}
	admitted := 0
	for i := range 10 {
		if v := l.Decide(ip1, fmt.Sprintf("burst%d@example.com", i)); !v.Refused {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("%d parallel attempts admitted after 3 failures, want 5 (the limit of 8)", admitted)
	}
	// Attempts that end without an outcome free their place.
	for range 5 {
		l.Done(ip1)
	}
	if v := l.Decide(ip1, "user0@example.com"); v.Refused {
		t.Errorf("after the attempts ended without failures: %+v, want admitted", v)
	}
}
