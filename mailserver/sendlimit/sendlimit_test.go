package sendlimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }
func send(t *testing.T, l *Limiter, u string) {
	t.Helper()
	if !l.Allow(u) {
		t.Fatalf("%s refused before the limit", u)
	}
	l.Record(u)
}

func TestLimitInASlidingHour(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 3, Now: c.now})
	send(t, l, "alice@example.com")
	c.advance(20 * time.Minute)
	send(t, l, "alice@example.com")
	send(t, l, "alice@example.com")
	if l.Allow("alice@example.com") {
		t.Fatal("a fourth message within the hour was allowed")
	}
	// Another user has a count of its own.
	send(t, l, "bob@example.org")
	// 59 minutes after the first message it still counts.
	c.advance(39 * time.Minute)
	if l.Allow("alice@example.com") {
		t.Fatal("allowed before the first message left the window")
	}
	// An hour after the first message, one slot is free again, and only one.
	c.advance(time.Minute)
	send(t, l, "alice@example.com")
	if l.Allow("alice@example.com") {
		t.Fatal("allowed a second message when only the first left the window")
	}
	c.advance(20 * time.Minute)
	send(t, l, "alice@example.com")
	send(t, l, "alice@example.com")
	if l.Allow("alice@example.com") {
		t.Fatal("limit not enforced after the ring wrapped")
	}
}

func TestUserIsCaseInsensitive(t *testing.T) {
	l := New(Config{Limit: 2, Now: newClock().now})
	send(t, l, "Alice@Example.com")
	send(t, l, "alice@example.com")
	if l.Allow("ALICE@EXAMPLE.COM") {
		t.Fatal("differently cased logins were counted apart")
	}
}

func TestZeroMeansNoLimit(t *testing.T) {
	l := New(Config{Limit: 0})
	if l != nil {
		t.Fatal("New with no limit should return nil")
	}
	for i := 0; i < 1000; i++ {
		if !l.Allow("alice@example.com") {
			t.Fatal("a nil Limiter refused")
		}
		l.Record("alice@example.com")
	}
	if l.Limit() != 0 || l.Users() != 0 {
		t.Fatal("a nil Limiter reports state")
	}
}

func TestUsersWithAnEmptyWindowAreForgotten(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 5, Now: c.now})
	for i := 0; i < 50; i++ {
		send(t, l, fmt.Sprintf("user%d@example.com", i))
	}
	if l.Users() != 50 {
		t.Fatalf("tracking %d users, want 50", l.Users())
	}
	c.advance(time.Hour + time.Minute)
	send(t, l, "late@example.com")
	if l.Users() != 1 {
		t.Fatalf("tracking %d users an hour later, want only the one that just sent", l.Users())
	}
	// Allow alone also drops a user whose window emptied.
	c.advance(2 * time.Hour)
	if !l.Allow("late@example.com") || l.Users() != 0 {
		t.Fatalf("tracking %d users after their windows emptied", l.Users())
	}
}

func TestTrackedUsersAreCapped(t *testing.T) {
	c := newClock()
	l := New(Config{Limit: 1, MaxUsers: 10, Now: c.now})
	for i := 0; i < 100; i++ {
		c.advance(time.Second)
		send(t, l, fmt.Sprintf("user%d@example.com", i))
		if l.Users() > 10 {
			t.Fatalf("tracking %d users, cap is 10", l.Users())
		}
	}
	// The most recent senders are the ones kept.
	if l.Allow("user99@example.com") {
		t.Fatal("the latest sender was forgotten")
	}
	if !l.Allow("user0@example.com") {
		t.Fatal("the oldest sender should have been evicted")
	}
}

func TestConcurrentUse(t *testing.T) {
	l := New(Config{Limit: 100})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				u := fmt.Sprintf("user%d@example.com", i%5)
				if l.Allow(u) {
					l.Record(u)
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 5; i++ {
		if l.Allow(fmt.Sprintf("user%d@example.com", i)) {
			t.Errorf("user%d is under its limit after 320 attempts", i)
		}
	}
}
