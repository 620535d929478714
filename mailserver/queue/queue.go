// Package queue is the outbound mail queue: messages for other servers wait on the data volume
// until a Transport delivers them, with exponential back-off for days, and the sender gets a
// delivery status notification (RFC 3464) for every recipient that cannot be reached.
//
// On disk, under the queue directory:
//
//	messages/<id>      the message as it will be sent (written once, never changed)
//	state/<id>.json    envelope, per-recipient state, attempts, next attempt time
//
// Enqueue writes and fsyncs the message file, fsyncs messages/, then writes the state file the
// same way: the state file is the commit point. Every state change replaces the state file
// atomically (temporary file, fsync, rename, directory fsync). A message file without a state
// file is debris of a crash before the commit and is removed at start.
package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubemail/kubemail/mailserver/durable"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Status is where one recipient of a queued message stands.
type Status string

// Recipient states. A message leaves the queue when no recipient is pending.
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusFailed    Status = "failed"
)

// Recipient is one envelope recipient of a queued message.
type Recipient struct {
	Address  string `json:"address"`
	Status   Status `json:"status"`
	Attempts int    `json:"attempts,omitempty"`
	// LastResult is the last answer for this recipient ("550 5.1.1 No such user" or this
	// server's own reason, such as a connection failure).
	LastResult string    `json:"lastResult,omitempty"`
	RemoteMTA  string    `json:"remoteMTA,omitempty"`
	Updated    time.Time `json:"updated,omitempty"`
	// result keeps the structured form of LastResult for the DSN of this attempt.
	result *Result
}

// Message is a queued message's envelope and state (the state file's content).
type Message struct {
	ID string `json:"id"`
	// From is the envelope sender; empty for the null sender (such a message is never bounced).
	From        string      `json:"from"`
	Recipients  []Recipient `json:"recipients"`
	Size        int64       `json:"size"`
	Queued      time.Time   `json:"queued"`
	Attempts    int         `json:"attempts"`
	LastAttempt time.Time   `json:"lastAttempt,omitempty"`
	NextAttempt time.Time   `json:"nextAttempt"`
}

// Pending returns the addresses still to be delivered.
func (m *Message) Pending() []string {
	var out []string
	for _, r := range m.Recipients {
		if r.Status == StatusPending {
			out = append(out, r.Address)
		}
	}
	return out
}

// Delivery is one attempt handed to a Transport.
type Delivery struct {
	ID         string
	From       string
	Recipients []string
	// Data is the message in wire format (CRLF line endings).
	Data []byte
}

// Result is a Transport's answer for one recipient.
type Result struct {
	Recipient string
	Delivered bool
	// Permanent marks a failure that retrying cannot fix (5xx replies, a domain without mail
	// servers). Other failures are retried.
	Permanent bool
	// Code is the remote server's reply code; 0 when this server gave up on its own (DNS or
	// connection failures).
	Code int
	// Status is the enhanced status code ("5.1.1").
	Status string
	Text   string
	// RemoteMTA is the server that answered, if one did.
	RemoteMTA string
	// TLS says how the session was protected: "verified", "unverified" (opportunistic TLS
	// with a certificate that did not verify) or "none".
	TLS string
}

// String formats the result the way queue listings and logs show it.
func (r Result) String() string {
	var b strings.Builder
	if r.Code > 0 {
		fmt.Fprintf(&b, "%d ", r.Code)
	}
	if r.Status != "" {
		b.WriteString(r.Status + " ")
	}
	b.WriteString(oneLine(r.Text))
	return strings.TrimSpace(b.String())
}

// Transport delivers a message to other servers and reports one Result per recipient. It
// returns when every recipient has an answer or ctx ends (unanswered recipients are then
// temporary failures).
type Transport interface {
	Deliver(ctx context.Context, d *Delivery) []Result
}

// Config configures a Queue.
type Config struct {
	// Dir is the queue directory, normally <dataDir>/queue.
	Dir string
	// Hostname names this server in DSNs.
	Hostname  string
	Transport Transport
	// Workers is how many messages are attempted at once (default 8).
	Workers int
	// MaxAge is how long a message is retried before it is given up (default 5 days).
	MaxAge time.Duration
	// RetryInitial is the first back-off interval; it doubles after each attempt up to
	// RetryMax (defaults 5 minutes and 4 hours).
	RetryInitial time.Duration
	RetryMax     time.Duration
	// Sign returns header fields to prepend to a message entering the queue (a DKIM-Signature),
	// or "" to leave it unsigned. It may be nil.
	Sign func(msg []byte) string
	// ReturnDSN hands a delivery status notification to the original sender. Nil queues it
	// like any other message, from the null sender.
	ReturnDSN func(to string, msg []byte) error
	// Handoff marks the queue of mail for the cluster's other replicas, counted in the
	// handoff metrics instead of the outbound ones.
	Handoff bool
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Errors of the administrative operations.
var (
	ErrNotFound = errors.New("no such message in the queue")
)

// Queue is the outbound queue. Enqueue is safe for concurrent use.
type Queue struct {
	cfg      Config
	msgDir   string
	stateDir string

	mu     sync.Mutex
	items  map[string]*item
	closed bool

	wake     chan struct{}
	work     chan *item
	stop     chan struct{}
	attempts sync.WaitGroup // attempts in flight
	loops    sync.WaitGroup // scheduler and workers
	// deliverCtx is handed to the Transport; cancelling it aborts attempts in flight.
	deliverCtx    context.Context
	cancelDeliver context.CancelFunc
}

type item struct {
	msg     Message
	running bool
	// deleted asks the worker running this message to remove it when the attempt ends.
	deleted bool
}

// Open loads the queue directory, creating it, and removes debris of earlier crashes. Start
// begins delivery.
func Open(cfg Config) (*Queue, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * 24 * time.Hour
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 5 * time.Minute
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 4 * time.Hour
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = cfg.RetryInitial
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	q := &Queue{cfg: cfg, msgDir: filepath.Join(cfg.Dir, "messages"), stateDir: filepath.Join(cfg.Dir, "state"),
		items: map[string]*item{}, wake: make(chan struct{}, 1), work: make(chan *item), stop: make(chan struct{})}
	q.deliverCtx, q.cancelDeliver = context.WithCancel(context.Background())
	for _, d := range []string{q.msgDir, q.stateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("opening the outbound queue: %w", err)
		}
	}
	if err := q.load(); err != nil {
		return nil, fmt.Errorf("opening the outbound queue %s: %w", cfg.Dir, err)
	}
	q.updateGauges()
	return q, nil
}

// load reads every state file and removes files no committed message owns.
func (q *Queue) load() error {
	states, err := os.ReadDir(q.stateDir)
	if err != nil {
		return err
	}
	for _, e := range states {
		name := e.Name()
		path := filepath.Join(q.stateDir, name)
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !validID(id) {
			// A temporary file of an interrupted state update; the previous state is in force.
			os.Remove(path)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil || m.ID != id {
			q.cfg.Log.Error("unreadable queue state file; moving it aside", "file", path, "err", err)
			os.Rename(path, path+".broken")
			continue
		}
		if _, err := os.Stat(filepath.Join(q.msgDir, id)); err != nil {
			q.cfg.Log.Error("queued message file is missing; dropping its state", "id", id, "err", err)
			os.Remove(path)
			continue
		}
		q.items[id] = &item{msg: m}
	}
	msgs, err := os.ReadDir(q.msgDir)
	if err != nil {
		return err
	}
	removed := false
	for _, e := range msgs {
		if _, ok := q.items[e.Name()]; !ok {
			// Written but never committed: the sender was not told 250, so it will retry.
			os.Remove(filepath.Join(q.msgDir, e.Name()))
			removed = true
		}
	}
	if removed {
		return durable.SyncDir(q.msgDir)
	}
	if len(q.items) > 0 {
		q.cfg.Log.Info("outbound queue loaded", "messages", len(q.items))
	}
	return nil
}

var idRE = regexp.MustCompile(`^[0-9a-f]{8,40}$`)

func validID(id string) bool { return idRE.MatchString(id) }

// newID returns a queue ID that sorts by time of arrival.
func newID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%013x%s", time.Now().UnixMicro(), hex.EncodeToString(b))
}

// Start begins delivering: one scheduler and the configured number of workers.
func (q *Queue) Start() {
	q.loops.Add(1 + q.cfg.Workers)
	go q.schedule()
	for i := 0; i < q.cfg.Workers; i++ {
		go q.worker()
	}
}

// Enqueue adds a message for recipients on other servers and returns once it is durable.
func (q *Queue) Enqueue(from string, rcpts []string, msg []byte) error {
	_, err := q.Add(from, rcpts, msg)
	return err
}

// Add is Enqueue returning the new message's ID.
func (q *Queue) Add(from string, rcpts []string, msg []byte) (string, error) {
	if len(rcpts) == 0 {
		return "", errors.New("queueing a message without recipients")
	}
	data := toCRLF(msg)
	if q.cfg.Sign != nil {
		if sig := q.cfg.Sign(data); sig != "" {
			data = append([]byte(sig), data...)
		}
	}
	now := time.Now()
	m := Message{ID: newID(), From: from, Size: int64(len(data)), Queued: now, NextAttempt: now}
	seen := map[string]bool{}
	for _, r := range rcpts {
		if !seen[strings.ToLower(r)] {
			seen[strings.ToLower(r)] = true
			m.Recipients = append(m.Recipients, Recipient{Address: r, Status: StatusPending})
		}
	}
	msgPath := filepath.Join(q.msgDir, m.ID)
	if err := durable.WriteFileNoDirSync(msgPath, data, 0o600); err != nil {
		return "", fmt.Errorf("queueing a message: %w", err)
	}
	if err := durable.SyncDir(q.msgDir); err != nil {
		os.Remove(msgPath)
		return "", fmt.Errorf("queueing a message: %w", err)
	}
	if err := q.writeState(&m); err != nil {
		os.Remove(msgPath)
		return "", fmt.Errorf("queueing a message: %w", err)
	}
	q.mu.Lock()
	q.items[m.ID] = &item{msg: m}
	q.mu.Unlock()
	q.updateGauges()
	q.kick()
	q.cfg.Log.Info("message queued", "id", m.ID, "from", from, "recipients", len(m.Recipients), "size", m.Size)
	return m.ID, nil
}

func (q *Queue) writeState(m *Message) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(q.stateDir, m.ID+".json"), data, 0o600)
}

// remove deletes a message: the state file first (the commit point), then its data.
func (q *Queue) remove(id string) error {
	if err := durable.Remove(filepath.Join(q.stateDir, id+".json")); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(q.msgDir, id)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// schedule hands due messages to the workers and sleeps until the next one is due.
func (q *Queue) schedule() {
	defer q.loops.Done()
	defer close(q.work)
	const maxSleep = 5 * time.Second // also how often the gauges refresh
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
		now := time.Now()
		sleep := maxSleep
		var due []*item
		q.mu.Lock()
		for _, it := range q.items {
			if it.running {
				continue
			}
			if wait := it.msg.NextAttempt.Sub(now); wait <= 0 {
				it.running = true
				due = append(due, it)
			} else if wait < sleep {
				sleep = wait
			}
		}
		q.mu.Unlock()
		sort.Slice(due, func(i, j int) bool { return due[i].msg.ID < due[j].msg.ID })
		for i, it := range due {
			select {
			case q.work <- it:
			case <-q.stop:
				q.mu.Lock()
				for _, left := range due[i:] {
					left.running = false
				}
				q.mu.Unlock()
				return
			}
		}
		q.updateGauges()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(sleep)
	}
}

func (q *Queue) worker() {
	defer q.loops.Done()
	for it := range q.work {
		q.attempt(it)
	}
}

// attempt tries the pending recipients of one message once and records the outcome durably.
func (q *Queue) attempt(it *item) {
	q.attempts.Add(1)
	defer q.attempts.Done()
	q.mu.Lock()
	m := it.msg // a copy; only this worker changes the message while it runs
	m.Recipients = append([]Recipient(nil), it.msg.Recipients...)
	deleted := it.deleted
	q.mu.Unlock()
	log := q.cfg.Log.With("id", m.ID)
	if deleted {
		q.finish(it, &m, true)
		return
	}
	data, err := os.ReadFile(filepath.Join(q.msgDir, m.ID))
	if err != nil {
		log.Error("reading a queued message failed; retrying later", "err", err)
		m.NextAttempt = time.Now().Add(q.cfg.RetryInitial)
		q.finish(it, &m, false)
		return
	}
	pending := m.Pending()
	results := q.cfg.Transport.Deliver(q.deliverCtx, &Delivery{ID: m.ID, From: m.From, Recipients: pending, Data: data})
	byRcpt := map[string]Result{}
	for _, r := range results {
		byRcpt[strings.ToLower(r.Recipient)] = r
	}
	now := time.Now()
	m.Attempts++
	m.LastAttempt = now
	expired := now.Sub(m.Queued) >= q.cfg.MaxAge
	var failed []Recipient
	for i := range m.Recipients {
		rc := &m.Recipients[i]
		if rc.Status != StatusPending {
			continue
		}
		r, ok := byRcpt[strings.ToLower(rc.Address)]
		if !ok {
			r = Result{Recipient: rc.Address, Status: "4.4.0", Text: "delivery attempt interrupted"}
		}
		rc.Attempts++
		rc.Updated = now
		rc.LastResult = r.String()
		rc.RemoteMTA = r.RemoteMTA
		rc.result = &r
		rlog := log.With("rcpt", rc.Address, "result", rc.LastResult, "remote", r.RemoteMTA, "tls", r.TLS)
		switch {
		case r.Delivered:
			rc.Status = StatusDelivered
			q.attemptCounter().WithLabelValues("delivered").Inc()
			rlog.Info("delivered")
		case r.Permanent:
			rc.Status = StatusFailed
			failed = append(failed, *rc)
			q.attemptCounter().WithLabelValues("failed").Inc()
			rlog.Warn("delivery failed permanently")
		case expired:
			rc.Status = StatusFailed
			failed = append(failed, *rc)
			q.attemptCounter().WithLabelValues("expired").Inc()
			rlog.Warn("giving up: the message is older than the maximum queue age", "queued", m.Queued)
		default:
			q.attemptCounter().WithLabelValues("deferred").Inc()
			rlog.Info("delivery deferred")
		}
	}
	m.NextAttempt = now.Add(q.backoff(m.Attempts))
	if len(failed) > 0 {
		if err := q.bounce(&m, failed, data, expired); err != nil {
			// Keep the recipients pending: the next attempt fails again and bounces then.
			log.Error("sending a delivery status notification failed; will try again", "to", m.From, "err", err)
			for i := range m.Recipients {
				for _, f := range failed {
					if m.Recipients[i].Address == f.Address {
						m.Recipients[i].Status = StatusPending
					}
				}
			}
			m.NextAttempt = now.Add(q.cfg.RetryInitial)
		}
	}
	q.finish(it, &m, false)
}

// finish records an attempt: the message leaves the queue when nothing is pending (or it was
// deleted), otherwise its new state is made durable.
func (q *Queue) finish(it *item, m *Message, remove bool) {
	q.mu.Lock()
	remove = remove || it.deleted
	q.mu.Unlock()
	if !remove && len(m.Pending()) == 0 {
		remove = true
	}
	var err error
	if remove {
		err = q.remove(m.ID)
	} else {
		err = q.writeState(m)
	}
	if err != nil {
		// The previous state stays on disk: recipients recorded as done may be tried again.
		q.cfg.Log.Error("recording a delivery attempt failed", "id", m.ID, "err", err)
	}
	q.mu.Lock()
	if remove && err == nil {
		delete(q.items, m.ID)
	} else {
		it.msg = *m
		it.running = false
	}
	q.mu.Unlock()
	q.updateGauges()
	q.kick()
}

// backoff is the wait after the given number of attempts: RetryInitial doubling to RetryMax.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.cfg.RetryInitial
	for i := 1; i < attempts && d < q.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, q.cfg.RetryMax)
}

// bounce sends the sender a DSN for the failed recipients. The null sender is never bounced.
func (q *Queue) bounce(m *Message, failed []Recipient, data []byte, expired bool) error {
	if m.From == "" {
		q.cfg.Log.Info("not bouncing a message from the null sender", "id", m.ID, "failed", len(failed))
		return nil
	}
	dsn := composeDSN(q.cfg.Hostname, m, failed, data, expired)
	var err error
	if q.cfg.ReturnDSN != nil {
		err = q.cfg.ReturnDSN(m.From, dsn)
	} else {
		err = q.Enqueue("", []string{m.From}, dsn)
	}
	if err != nil {
		return err
	}
	q.cfg.Metrics.DSNs.Inc()
	q.cfg.Log.Info("delivery status notification sent", "id", m.ID, "to", m.From, "failed", len(failed))
	return nil
}

// attemptCounter counts delivery attempts per recipient, in the outbound or the handoff metrics.
func (q *Queue) attemptCounter() *prometheus.CounterVec {
	if q.cfg.Handoff {
		return q.cfg.Metrics.HandoffAttempts
	}
	return q.cfg.Metrics.DeliveryAttempts
}

// Backlog returns how many messages are queued and when the oldest of them was (zero when none).
func (q *Queue) Backlog() (n int, oldest time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range q.items {
		if oldest.IsZero() || it.msg.Queued.Before(oldest) {
			oldest = it.msg.Queued
		}
	}
	return len(q.items), oldest
}

func (q *Queue) updateGauges() {
	n, oldest := q.Backlog()
	messages, oldestAge := q.cfg.Metrics.QueueMessages, q.cfg.Metrics.QueueOldestAge
	if q.cfg.Handoff {
		messages, oldestAge = q.cfg.Metrics.HandoffQueueMessages, q.cfg.Metrics.HandoffQueueOldestAge
	}
	messages.Set(float64(n))
	if n == 0 {
		oldestAge.Set(0)
	} else {
		oldestAge.Set(time.Since(oldest).Seconds())
	}
}

// List returns every queued message, oldest first.
func (q *Queue) List() []Message {
	q.mu.Lock()
	out := make([]Message, 0, len(q.items))
	for _, it := range q.items {
		out = append(out, it.msg)
	}
	q.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get returns one message's state and its header section.
func (q *Queue) Get(id string) (Message, string, error) {
	q.mu.Lock()
	it, ok := q.items[id]
	var m Message
	if ok {
		m = it.msg
	}
	q.mu.Unlock()
	if !ok {
		return Message{}, "", ErrNotFound
	}
	data, err := os.ReadFile(filepath.Join(q.msgDir, id))
	if err != nil {
		return m, "", err
	}
	return m, string(headerSection(data)), nil
}

// Retry makes a message due now.
func (q *Queue) Retry(id string) error {
	q.mu.Lock()
	it, ok := q.items[id]
	if ok && !it.running {
		it.msg.NextAttempt = time.Now()
	}
	q.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	q.kick()
	return nil
}

// RetryAll makes every waiting message due now and returns how many there were: a replica
// about to stop hands its queued handoffs over while it still runs.
func (q *Queue) RetryAll() int {
	now := time.Now()
	n := 0
	q.mu.Lock()
	for _, it := range q.items {
		if !it.running && it.msg.NextAttempt.After(now) {
			it.msg.NextAttempt = now
			n++
		}
	}
	q.mu.Unlock()
	q.kick()
	return n
}

// Delete removes a message without notifying its sender. A message being attempted right now
// is removed when the attempt ends.
func (q *Queue) Delete(id string) error {
	q.mu.Lock()
	it, ok := q.items[id]
	if !ok {
		q.mu.Unlock()
		return ErrNotFound
	}
	if it.running {
		it.deleted = true
		q.mu.Unlock()
		return nil
	}
	delete(q.items, id)
	q.mu.Unlock()
	err := q.remove(id)
	q.updateGauges()
	if err == nil {
		q.cfg.Log.Info("message deleted from the queue", "id", id)
	}
	return err
}

// Shutdown stops scheduling, lets attempts in flight finish until ctx ends, then aborts them.
// Whatever is not delivered stays queued for the next start.
func (q *Queue) Shutdown(ctx context.Context) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	done := make(chan struct{})
	go func() {
		q.attempts.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		q.cancelDeliver()
	}
	q.loops.Wait()
	q.cancelDeliver()
}

// toCRLF turns bare LF line endings into CRLF, the form messages are signed and sent in.
func toCRLF(msg []byte) []byte {
	if !bytes.Contains(msg, []byte("\n")) {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(msg)/40)
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// headerSection returns the message's header fields, up to and including the blank line.
func headerSection(data []byte) []byte {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return data[:i+2]
	}
	return data
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
