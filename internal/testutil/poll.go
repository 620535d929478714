// Package testutil holds what kubemail's tests share that belongs to no part of the product:
// waiting for a condition with a deadline, and finding the outside clients tests drive. It
// imports only the standard library.
package testutil

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Default deadline and pace of a Poll whose fields are zero: long enough for a loaded machine,
// often enough that a test waits only a few milliseconds longer than it must.
const (
	DefaultWithin = 10 * time.Second
	DefaultEvery  = 10 * time.Millisecond
)

// Poll is how long to wait for a condition (Within) and how often to check it (Every). The
// zero value is DefaultWithin and DefaultEvery.
type Poll struct {
	Within, Every time.Duration
}

// Eventually fails t unless cond holds within DefaultWithin.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Poll{}.Eventually(t, what, cond)
}

// Eventually fails t unless cond holds within p.Within. what names the condition in the
// failure.
func (p Poll) Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	p.Until(t, what, func() (bool, string) { return cond(), "" })
}

// Until fails t unless cond reports true within p.Within. cond also says what it saw; the
// failure shows the last thing it said, which is usually why it never held.
func (p Poll) Until(t testing.TB, what string, cond func() (ok bool, saw string)) {
	t.Helper()
	if err := p.Wait(context.Background(), what, cond); err != nil {
		t.Fatal(err)
	}
}

// Wait is Until for code that reports errors instead of failing a test (test harnesses that
// return errors): it returns nil once cond holds, an error naming what and the last thing cond
// saw once p.Within has passed, or ctx's error when ctx ends first.
func (p Poll) Wait(ctx context.Context, what string, cond func() (ok bool, saw string)) error {
	within, every := p.Within, p.Every
	if within <= 0 {
		within = DefaultWithin
	}
	if every <= 0 {
		every = DefaultEvery
	}
	deadline := time.Now().Add(within)
	var last string
	for {
		ok, saw := cond()
		if ok {
			return nil
		}
		if saw != "" {
			last = saw
		}
		if time.Now().After(deadline) {
			if last != "" {
				return fmt.Errorf("%s: not within %s (last seen: %s)", what, within, last)
			}
			return fmt.Errorf("%s: not within %s", what, within)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(every):
		}
	}
}
