// Package sendlimit bounds how many messages one authenticated user may submit within a sliding
// window (an hour), so that a stolen password or a runaway client cannot send without end.
package sendlimit

import (
	"strings"
	"sync"
	"time"
)

// Config tunes a Limiter. Zero fields other than Limit take the defaults shown.
type Config struct {
	// Limit is how many messages a user may submit within Window. 0 or less: no limit, and New
	// returns nil.
	Limit int
	// Window is the length of the sliding window (1h).
	Window time.Duration
	// MaxUsers bounds the users tracked at once (10000); beyond it the user whose last message
	// is oldest is forgotten. Only users with messages inside the window are tracked.
	MaxUsers int
	// Now is the clock (time.Now); tests inject their own.
	Now func() time.Time
}

// Limiter counts accepted messages per user in a sliding window. A nil *Limiter allows
// everything. Safe for concurrent use.
//
// The count is checked when a transaction starts (Allow) and raised when a message has been
// accepted (Record), so sessions of one user running in parallel may each finish a message
// already under way: the overshoot is at most one message per concurrent session.
type Limiter struct {
	cfg Config

	mu        sync.Mutex
	users     map[string]*ring
	lastSweep time.Time
}

// ring holds the send times of a user's messages inside the window, oldest first. It grows
// up to the limit, so a user who sends little costs little.
type ring struct {
	times []int64 // Unix nanoseconds; capacity, at most the limit; the i-th oldest is times[(start+i)%len(times)]
	start int
	n     int
}

// New returns a Limiter, or nil when cfg.Limit is 0 or less.
func New(cfg Config) *Limiter {
	if cfg.Limit <= 0 {
		return nil
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, users: map[string]*ring{}}
}

// Limit is the number of messages allowed per window (0 for a nil Limiter).
func (l *Limiter) Limit() int {
	if l == nil {
		return 0
	}
	return l.cfg.Limit
}

// Allow reports whether user may start another message now.
func (l *Limiter) Allow(user string) bool {
	if l == nil {
		return true
	}
	key := strings.ToLower(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.users[key]
	if r == nil {
		return true
	}
	r.expire(l.cfg.Now().Add(-l.cfg.Window).UnixNano())
	if r.n == 0 {
		delete(l.users, key)
		return true
	}
	return r.n < l.cfg.Limit
}

// Record counts a message of user accepted now.
func (l *Limiter) Record(user string) {
	if l == nil {
		return
	}
	key := strings.ToLower(user)
	now := l.cfg.Now()
	cutoff := now.Add(-l.cfg.Window).UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.cfg.Window/60 {
		l.sweep(cutoff)
		l.lastSweep = now
	}
	r := l.users[key]
	if r == nil {
		if len(l.users) >= l.cfg.MaxUsers {
			l.sweep(cutoff)
			if len(l.users) >= l.cfg.MaxUsers {
				l.evictOldest()
			}
		}
		r = &ring{}
		l.users[key] = r
	}
	r.expire(cutoff)
	r.add(now.UnixNano(), l.cfg.Limit)
}

// Users is how many users are tracked now.
func (l *Limiter) Users() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}

// sweep forgets users whose window is empty.
func (l *Limiter) sweep(cutoff int64) {
	for k, r := range l.users {
		if r.expire(cutoff); r.n == 0 {
			delete(l.users, k)
		}
	}
}

// evictOldest forgets the user whose last message is the oldest.
func (l *Limiter) evictOldest() {
	var oldestKey string
	var oldest int64
	for k, r := range l.users {
		if t := r.newest(); oldestKey == "" || t < oldest {
			oldestKey, oldest = k, t
		}
	}
	delete(l.users, oldestKey)
}

func (r *ring) at(i int) int64 { return r.times[(r.start+i)%len(r.times)] }

func (r *ring) newest() int64 {
	if r.n == 0 {
		return 0
	}
	return r.at(r.n - 1)
}

// expire drops the times at or before cutoff.
func (r *ring) expire(cutoff int64) {
	for r.n > 0 && r.at(0) <= cutoff {
		r.start = (r.start + 1) % len(r.times)
		r.n--
	}
	if r.n == 0 {
		r.start = 0
	}
}

// add records t, dropping the oldest time when the ring already holds limit of them.
func (r *ring) add(t int64, limit int) {
	if r.n < len(r.times) {
		r.times[(r.start+r.n)%len(r.times)] = t
		r.n++
		return
	}
	if len(r.times) < limit {
		grown := make([]int64, min(limit, max(4, 2*len(r.times))))
		for i := 0; i < r.n; i++ {
			grown[i] = r.at(i)
		}
		grown[r.n] = t
		r.times, r.start, r.n = grown, 0, r.n+1
		return
	}
	// Full at the limit: the oldest time makes room (Allow refuses before this happens, but a
	// message started before the limit was reached may still end here).
	r.times[r.start] = t
	r.start = (r.start + 1) % len(r.times)
}
