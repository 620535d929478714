package queue

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// fakeTransport answers from a function and records every attempt.
type fakeTransport struct {
	mu       sync.Mutex
	attempts []Delivery
	answer   func(n int, rcpt string) Result
}

func (f *fakeTransport) Deliver(_ context.Context, d *Delivery) []Result {
	f.mu.Lock()
	f.attempts = append(f.attempts, *d)
	n := len(f.attempts)
	f.mu.Unlock()
	var out []Result
	for _, r := range d.Recipients {
		res := f.answer(n, r)
		res.Recipient = r
		out = append(out, res)
	}
	return out
}

func (f *fakeTransport) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.attempts)
}

type dsnSink struct {
	mu   sync.Mutex
	dsns map[string][]string
}

func (s *dsnSink) take(to string, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dsns == nil {
		s.dsns = map[string][]string{}
	}
	s.dsns[to] = append(s.dsns[to], string(msg))
	return nil
}

func (s *dsnSink) get(to string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.dsns[to]...)
}

func open(t *testing.T, dir string, tr Transport, sink *dsnSink, tweak ...func(*Config)) *Queue {
	t.Helper()
	cfg := Config{Dir: dir, Hostname: "mail.example.com", Transport: tr, Workers: 2,
		RetryInitial: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, Metrics: metrics.New()}
	if sink != nil {
		cfg.ReturnDSN = sink.take
	}
	for _, f := range tweak {
		f(&cfg)
	}
	q, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Shutdown(context.Background()) })
	return q
}

const testMsg = "From: alice@example.com\nTo: bob@example.org\nSubject: hi\n\nhello\n"

func TestDeliveredMessageLeavesTheQueue(t *testing.T) {
	dir := t.TempDir()
	tr := &fakeTransport{answer: func(int, string) Result { return Result{Delivered: true, Code: 250} }}
	q := open(t, dir, tr, nil)
	id, err := q.Add("alice@example.com", []string{"bob@example.org", "carol@example.net"}, []byte(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	// Durable before Add returned: both files are there.
	for _, p := range []string{filepath.Join(dir, "messages", id), filepath.Join(dir, "state", id+".json")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("after Add: %v", err)
		}
	}
	q.Start()
	testutil.Eventually(t, "delivery", func() bool { return len(q.List()) == 0 })
	if tr.count() != 1 {
		t.Fatalf("%d attempts, want 1", tr.count())
	}
	got := tr.attempts[0]
	if string(got.Data) != strings.ReplaceAll(testMsg, "\n", "\r\n") {
		t.Errorf("sent data is not the message in CRLF form: %q", got.Data)
	}
	if len(got.Recipients) != 2 {
		t.Errorf("recipients %v", got.Recipients)
	}
	for _, sub := range []string{"messages", "state"} {
		if entries, _ := os.ReadDir(filepath.Join(dir, sub)); len(entries) != 0 {
			t.Errorf("%s/ still holds %d files", sub, len(entries))
		}
	}
}

func TestTemporaryFailuresAreRetriedThenDelivered(t *testing.T) {
	tr := &fakeTransport{answer: func(n int, rcpt string) Result {
		if n < 4 {
			return Result{Code: 451, Status: "4.3.0", Text: "try later"}
		}
		return Result{Delivered: true}
	}}
	sink := &dsnSink{}
	q := open(t, t.TempDir(), tr, sink)
	q.Start()
	if err := q.Enqueue("alice@example.com", []string{"bob@example.org"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "delivery after retries", func() bool { return len(q.List()) == 0 })
	if tr.count() != 4 {
		t.Errorf("%d attempts, want 4", tr.count())
	}
	if len(sink.get("alice@example.com")) != 0 {
		t.Error("a message delivered in the end was bounced")
	}
}

func TestBackoffDoublesUpToTheMaximum(t *testing.T) {
	q := &Queue{cfg: Config{RetryInitial: time.Minute, RetryMax: 10 * time.Minute}}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	for i, w := range want {
		if got := q.backoff(i + 1); got != w {
			t.Errorf("after %d attempts: %v, want %v", i+1, got, w)
		}
	}
}

func TestPermanentFailureBouncesOnlyTheFailedRecipient(t *testing.T) {
	tr := &fakeTransport{answer: func(_ int, rcpt string) Result {
		if rcpt == "nobody@example.org" {
			return Result{Permanent: true, Code: 550, Status: "5.1.1", Text: "No such user here", RemoteMTA: "mx.example.org", TLS: "unverified"}
		}
		return Result{Delivered: true}
	}}
	sink := &dsnSink{}
	q := open(t, t.TempDir(), tr, sink)
	q.Start()
	if err := q.Enqueue("alice@example.com", []string{"bob@example.org", "nobody@example.org"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the bounce", func() bool { return len(sink.get("alice@example.com")) == 1 })
	testutil.Eventually(t, "the queue to empty", func() bool { return len(q.List()) == 0 })
	dsn := sink.get("alice@example.com")[0]
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status;",
		"From: Mail Delivery System <MAILER-DAEMON@mail.example.com>",
		"Content-Type: message/delivery-status",
		"Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
		"Remote-MTA: dns; mx.example.org",
		"(answered by mx.example.org, TLS unverified)",
		"Diagnostic-Code: smtp; 550 5.1.1 No such user here",
		"Content-Type: text/rfc822-headers",
		"Subject: hi\r\n",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "bob@example.org") && strings.Contains(dsn, "Final-Recipient: rfc822; bob@example.org") {
		t.Error("the DSN names a delivered recipient")
	}
	if strings.Contains(dsn, "hello") {
		t.Error("the DSN returns the body; only the header is expected")
	}
}

func TestExpiredMessageBouncesWithLastError(t *testing.T) {
	tr := &fakeTransport{answer: func(int, string) Result {
		return Result{Status: "4.4.1", Text: "connection refused"}
	}}
	sink := &dsnSink{}
	q := open(t, t.TempDir(), tr, sink, func(c *Config) { c.MaxAge = 100 * time.Millisecond })
	q.Start()
	if err := q.Enqueue("alice@example.com", []string{"bob@example.org"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the bounce", func() bool { return len(sink.get("alice@example.com")) == 1 })
	dsn := sink.get("alice@example.com")[0]
	if !strings.Contains(dsn, "Status: 4.4.1") || !strings.Contains(dsn, "connection refused") ||
		!strings.Contains(dsn, "stopped trying") {
		t.Errorf("expiry DSN:\n%s", dsn)
	}
	// How many attempts fit into the 100 ms depends on the machine's load; at least one must
	// have been made, since the DSN quotes its error.
	if tr.count() < 1 {
		t.Errorf("no delivery attempt before expiry")
	}
	testutil.Eventually(t, "the queue to empty", func() bool { return len(q.List()) == 0 })
}

func TestNullSenderIsNeverBounced(t *testing.T) {
	tr := &fakeTransport{answer: func(int, string) Result { return Result{Permanent: true, Code: 550, Status: "5.1.1"} }}
	sink := &dsnSink{}
	q := open(t, t.TempDir(), tr, sink)
	q.Start()
	if err := q.Enqueue("", []string{"bob@example.org"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the queue to empty", func() bool { return len(q.List()) == 0 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.dsns) != 0 {
		t.Fatalf("a bounce was bounced: %v", sink.dsns)
	}
}

func TestDefaultDSNGoesBackIntoTheQueueFromTheNullSender(t *testing.T) {
	var mu sync.Mutex
	var dsnFrom []string
	tr := &fakeTransport{}
	tr.answer = func(int, string) Result { return Result{Permanent: true, Code: 550, Status: "5.1.1"} }
	q := open(t, t.TempDir(), transportFunc(func(ctx context.Context, d *Delivery) []Result {
		if strings.Contains(string(d.Data), "multipart/report") {
			mu.Lock()
			dsnFrom = append(dsnFrom, d.From+"->"+d.Recipients[0])
			mu.Unlock()
			return []Result{{Recipient: d.Recipients[0], Delivered: true}}
		}
		return tr.Deliver(ctx, d)
	}), nil)
	q.Start()
	if err := q.Enqueue("alice@example.net", []string{"bob@example.org"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the DSN to be sent", func() bool { mu.Lock(); defer mu.Unlock(); return len(dsnFrom) == 1 })
	if dsnFrom[0] != "->alice@example.net" {
		t.Fatalf("DSN envelope %q, want null sender to alice@example.net", dsnFrom[0])
	}
}

type transportFunc func(ctx context.Context, d *Delivery) []Result

func (f transportFunc) Deliver(ctx context.Context, d *Delivery) []Result { return f(ctx, d) }

func TestReopenResumesAndCleansDebris(t *testing.T) {
	dir := t.TempDir()
	never := &fakeTransport{answer: func(int, string) Result { return Result{Delivered: true} }}
	q1 := open(t, dir, never, nil)
	id, err := q1.Add("alice@example.com", []string{"bob@example.org"}, []byte(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	// Debris of a crash: a message written but never committed, an interrupted state update.
	os.WriteFile(filepath.Join(dir, "messages", "0000000000000deadbeef"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "state", ".tmp-"+id+".json-123"), []byte("{"), 0o600)

	tr := &fakeTransport{answer: func(int, string) Result { return Result{Delivered: true} }}
	q2 := open(t, dir, tr, nil)
	if l := q2.List(); len(l) != 1 || l[0].ID != id || l[0].From != "alice@example.com" {
		t.Fatalf("reopened queue holds %+v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "messages", "0000000000000deadbeef")); !os.IsNotExist(err) {
		t.Error("uncommitted message file survived the reopen")
	}
	if _, err := os.Stat(filepath.Join(dir, "state", ".tmp-"+id+".json-123")); !os.IsNotExist(err) {
		t.Error("temporary state file survived the reopen")
	}
	q2.Start()
	testutil.Eventually(t, "delivery after reopen", func() bool { return len(q2.List()) == 0 })
}

func TestStateOfEachRecipientIsKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	tr := &fakeTransport{answer: func(_ int, rcpt string) Result {
		if rcpt == "bob@example.org" {
			return Result{Delivered: true}
		}
		return Result{Code: 421, Status: "4.7.0", Text: "busy"}
	}}
	q := open(t, dir, tr, nil, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	q.Start()
	if err := q.Enqueue("alice@example.com", []string{"bob@example.org", "carol@example.net"}, []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the first attempt", func() bool { l := q.List(); return len(l) == 1 && l[0].Attempts == 1 })
	q.Shutdown(context.Background())

	tr2 := &fakeTransport{answer: func(int, string) Result { return Result{Delivered: true} }}
	q2 := open(t, dir, tr2, nil)
	l := q2.List()
	if len(l) != 1 || l[0].Recipients[0].Status != StatusDelivered || l[0].Recipients[1].Status != StatusPending ||
		l[0].Recipients[1].LastResult != "421 4.7.0 busy" {
		t.Fatalf("state after restart: %+v", l)
	}
	if err := q2.Retry(l[0].ID); err != nil {
		t.Fatal(err)
	}
	q2.Start()
	testutil.Eventually(t, "delivery", func() bool { return len(q2.List()) == 0 })
	if got := tr2.attempts[0].Recipients; len(got) != 1 || got[0] != "carol@example.net" {
		t.Fatalf("second run attempted %v; bob was already delivered", got)
	}
}

func TestDeleteAndRetry(t *testing.T) {
	tr := &fakeTransport{answer: func(int, string) Result { return Result{Code: 451, Status: "4.3.0"} }}
	q := open(t, t.TempDir(), tr, nil, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	q.Start()
	id, err := q.Add("alice@example.com", []string{"bob@example.org"}, []byte(testMsg))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the first attempt", func() bool { return tr.count() == 1 })
	testutil.Eventually(t, "the attempt to be recorded", func() bool { m, _, _ := q.Get(id); return m.Attempts == 1 })
	if err := q.Retry(id); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the retry", func() bool { return tr.count() == 2 })
	m, hdr, err := q.Get(id)
	if err != nil || !strings.Contains(hdr, "Subject: hi") || strings.Contains(hdr, "hello") {
		t.Fatalf("Get: %+v %q %v", m, hdr, err)
	}
	testutil.Eventually(t, "the second attempt to be recorded", func() bool { m, _, _ := q.Get(id); return m.Attempts == 2 })
	if err := q.Delete(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Get(id); err != ErrNotFound {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := q.Retry("0123456789abcdef"); err != ErrNotFound {
		t.Fatalf("Retry of an unknown ID: %v", err)
	}
}

func TestRetryAll(t *testing.T) {
	tr := &fakeTransport{answer: func(int, string) Result { return Result{Code: 451, Status: "4.3.0"} }}
	q := open(t, t.TempDir(), tr, nil, func(c *Config) { c.RetryInitial, c.RetryMax = time.Hour, time.Hour })
	q.Start()
	for range 2 {
		if _, err := q.Add("alice@example.com", []string{"bob@example.org"}, []byte(testMsg)); err != nil {
			t.Fatal(err)
		}
	}
	attempted := func(n int) func() bool {
		return func() bool {
			l := q.List()
			return len(l) == 2 && l[0].Attempts == n && l[1].Attempts == n
		}
	}
	testutil.Eventually(t, "the first attempts to be recorded", attempted(1))
	if n := q.RetryAll(); n != 2 {
		t.Fatalf("RetryAll: %d messages made due, want 2", n)
	}
	testutil.Eventually(t, "both messages attempted again at once", attempted(2))
}
