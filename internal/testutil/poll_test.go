package testutil

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatal and Fatalf record the message and end the
// goroutine, as the real ones do.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// run calls f with a recorder on its own goroutine and returns what Fatalf said, if anything.
func run(t *testing.T, f func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	msg := run(t, func(tb testing.TB) {
		Eventually(tb, "the third call", func() bool { return calls.Add(1) == 3 })
	})
	if msg != "" {
		t.Errorf("failed: %s", msg)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3 (no more after it held)", n)
	}
}

func TestUntilFailsAtTheDeadlineWithTheLastThingSeen(t *testing.T) {
	p := Poll{Within: 100 * time.Millisecond, Every: 5 * time.Millisecond}
	var calls int
	start := time.Now()
	msg := run(t, func(tb testing.TB) {
		p.Until(tb, "the queue to drain", func() (bool, string) {
			calls++
			if calls%2 == 0 {
				return false, "" // says nothing: the last thing said stands
			}
			return false, fmt.Sprintf("%d left", calls)
		})
	})
	took := time.Since(start)
	if !strings.HasPrefix(msg, "the queue to drain: not within 100ms (last seen: ") || !strings.HasSuffix(msg, " left)") {
		t.Errorf("failure = %q", msg)
	}
	if took < p.Within {
		t.Errorf("gave up after %s, before the %s deadline", took, p.Within)
	}
	if calls < 3 {
		t.Errorf("cond called %d times in %s every %s", calls, p.Within, p.Every)
	}
}

func TestEventuallyFailureWithoutNote(t *testing.T) {
	msg := run(t, func(tb testing.TB) {
		Poll{Within: 20 * time.Millisecond}.Eventually(tb, "never", func() bool { return false })
	})
	if msg != "never: not within 20ms" {
		t.Errorf("failure = %q", msg)
	}
}

func TestWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Poll{Within: time.Minute}.Wait(ctx, "the directory", func() (bool, string) { return false, "not loaded" })
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "the directory: ") {
		t.Errorf("Wait with an ended context = %v", err)
	}
	if err := (Poll{}).Wait(ctx, "x", func() (bool, string) { return true, "" }); err != nil {
		t.Errorf("Wait for a condition that holds = %v", err)
	}
}
