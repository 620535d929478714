// Package handoff passes mail between the replicas of a cluster. Each mailbox lives on one
// replica (its shard); mail for it that reaches another replica, through the MX or the
// submission ports, is handed to the owner over LMTP (RFC 2033) on the cluster's internal
// listener. The client's 250 comes only once the message is durable: stored by the owner, which
// answers for each mailbox before the DATA transaction ends, or, owner unreachable or slow, in
// this replica's durable handoff queue, which delivers it when the owner is back.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Client speaks LMTP to the other replicas. It keeps the sessions it opened for the next
// messages (see pool.go): a TLS handshake per message would cost more than the message.
type Client struct {
	// Hostname is this replica's name in LHLO.
	Hostname string
	// Dial connects to the internal listener of the replica of shard, its LMTP service.
	Dial func(ctx context.Context, shard int) (net.Conn, error)

	pool pool
}

// Outcome is the owner's answer for one recipient: nil when the message is stored.
type Outcome struct {
	Rcpt string
	Err  *smtp.SMTPError
}

// Permanent reports a refusal that retrying cannot change (a 5xx answer).
func (o Outcome) Permanent() bool { return o.Err != nil && o.Err.Code >= 500 }

// Send hands data (the message as it is to be stored, trace fields included) for rcpts, all
// mailboxes of shard, to that replica. An error means the session failed as a whole (the
// owner unreachable, a broken connection) and no recipient may count as delivered; otherwise
// there is one Outcome per recipient, in order. A kept session that fails is replaced by a new
// one once: the handoff id makes a repeat harmless if the first had been stored.
func (c *Client) Send(ctx context.Context, shard int, from string, rcpts []string, data []byte) ([]Outcome, error) {
	for attempt := 0; ; attempt++ {
		s, reused, err := c.session(ctx, shard)
		if err != nil {
			return nil, err
		}
		out, err := s.transaction(ctx, from, rcpts, data)
		if err == nil {
			c.pool.put(shard, s)
			return out, nil
		}
		s.close()
		if !reused || attempt > 0 {
			return nil, err
		}
	}
}

// session is a kept LMTP session to shard's replica, or a new one.
func (c *Client) session(ctx context.Context, shard int) (s *lmtpSession, reused bool, err error) {
	if s := c.pool.get(shard); s != nil {
		return s, true, nil
	}
	conn, err := c.Dial(ctx, shard)
	if err != nil {
		return nil, false, fmt.Errorf("reaching the replica of shard %d: %w", shard, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	s, err = newLMTPSession(conn, c.Hostname)
	if err != nil {
		conn.Close()
		return nil, false, err
	}
	return s, false, nil
}

// Enqueuer keeps handoffs the owner did not take at once, durably (the handoff queue).
type Enqueuer interface {
	Enqueue(from string, rcpts []string, msg []byte) error
}

// Deliverer stores mail for this replica's mailboxes and hands the others' to their replicas:
// the cluster's smtpd.Deliverer.
type Deliverer struct {
	Local *delivery.Local
	// Shard is this replica's.
	Shard  int
	Client *Client
	// Queue takes what an owner did not take at once.
	Queue Enqueuer
	// Holds, if set, admits the deliveries to this replica's mailboxes (see Holds).
	Holds *Holds
	// Timeout bounds a synchronous handoff; the message is queued after it (default 10 s).
	Timeout time.Duration
	Metrics *metrics.Metrics
	Log     *slog.Logger
}

// Usage is known only for this replica's mailboxes; an owner checks its own quota.
func (d *Deliverer) Usage(mb *directory.Mailbox) (int64, bool, error) {
	if mb.Shard != d.Shard {
		return 0, false, nil
	}
	return d.Local.Usage(mb)
}

// Deliver stores msg for this replica's mailboxes and hands it to the other replicas, one
// LMTP session per shard, all at once. It returns once every copy is durable: stored here, on
// the owner, or in the handoff queue. A message that every recipient's owner refused
// permanently returns the first refusal, for the client; refusals beside a stored copy go to
// the queue too, whose attempt bounces them with a DSN.
func (d *Deliverer) Deliver(env delivery.Envelope, mailboxes []*directory.Mailbox, msg []byte) error {
	byShard := map[int][]*directory.Mailbox{}
	var local []*directory.Mailbox
	var frozen []string
	for _, mb := range mailboxes {
		switch {
		case mb.Frozen:
			frozen = append(frozen, mb.Address)
		case mb.Shard == d.Shard:
			local = append(local, mb)
		default:
			byShard[mb.Shard] = append(byShard[mb.Shard], mb)
		}
	}
	local, frozen, release := d.admit(local, frozen)
	defer release()
	// One id for every copy of this message, queued ones included: an owner stores each
	// once however often it is handed over. Mail for this replica alone copies nothing.
	var data []byte
	if len(byShard) > 0 || len(frozen) > 0 {
		data = withID(newID(), []byte(env.Received), msg)
	}
	if len(frozen) > 0 {
		// Moving: stored nowhere until the move's cut-over ends; the queue delivers it then.
		if err := d.Queue.Enqueue(env.From, frozen, data); err != nil {
			return fmt.Errorf("queueing mail for a moving mailbox: %w", err)
		}
		d.count("queued", len(frozen))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		refused []Outcome
		stored  = len(local) > 0 || len(frozen) > 0
	)
	if len(local) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Local.Deliver(env, local, msg); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	for shard, mbs := range byShard {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, no, err := d.handOver(shard, env.From, mbs, data)
			mu.Lock()
			defer mu.Unlock()
			stored = stored || ok
			refused = append(refused, no...)
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	switch {
	case len(errs) > 0:
		return errors.Join(errs...)
	case len(refused) == 0:
		return nil
	case !stored:
		return refused[0].Err
	}
	rcpts := make([]string, len(refused))
	for i, o := range refused {
		rcpts[i] = o.Rcpt
	}
	if err := d.Queue.Enqueue(env.From, rcpts, data); err != nil {
		return fmt.Errorf("queueing refused handoffs for their DSN: %w", err)
	}
	return nil
}

// admit begins the deliveries to this replica's mailboxes with Holds: one that may not be
// stored here now (its mailbox froze, or moved, since the session looked it up) joins frozen,
// to be queued. release ends the others once they are stored.
func (d *Deliverer) admit(local []*directory.Mailbox, frozen []string) (admitted []*directory.Mailbox, queued []string, release func()) {
	if d.Holds == nil {
		return local, frozen, func() {}
	}
	var releases []func()
	for _, mb := range local {
		if done, ok := d.Holds.Begin(mb.Address); ok {
			admitted = append(admitted, mb)
			releases = append(releases, done)
		} else {
			frozen = append(frozen, mb.Address)
		}
	}
	return admitted, frozen, func() {
		for _, r := range releases {
			r()
		}
	}
}

// handOver hands the message to the replica of one shard. ok says some of its mailboxes have
// it now (stored, or queued for a later attempt); refused are the owner's permanent refusals;
// an error means a copy that should be queued is not.
func (d *Deliverer) handOver(shard int, from string, mbs []*directory.Mailbox, data []byte) (ok bool, refused []Outcome, err error) {
	rcpts := make([]string, len(mbs))
	for i, mb := range mbs {
		rcpts[i] = mb.Address
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	out, sendErr := d.Client.Send(ctx, shard, from, rcpts, data)
	cancel()
	var later []string
	if sendErr != nil {
		d.Log.Warn("handing a message to its replica failed; queued", "shard", shard, "recipients", len(rcpts), "err", sendErr)
		d.count("queued", len(rcpts))
		later = rcpts
	}
	for _, o := range out {
		switch {
		case o.Err == nil:
			ok = true
			d.count("delivered", 1)
		case o.Permanent():
			refused = append(refused, o)
			d.count("refused", 1)
		default:
			d.Log.Info("the mailbox's replica deferred a handoff; queued", "shard", shard, "rcpt", o.Rcpt, "reply", o.Err.Error())
			d.count("queued", 1)
			later = append(later, o.Rcpt)
		}
	}
	if len(later) == 0 {
		return ok, refused, nil
	}
	if err := d.Queue.Enqueue(from, later, data); err != nil {
		return false, nil, fmt.Errorf("queueing a handoff to shard %d: %w", shard, err)
	}
	return true, refused, nil
}

func (d *Deliverer) count(result string, n int) {
	if d.Metrics != nil {
		d.Metrics.Handoffs.WithLabelValues(result).Add(float64(n))
	}
}

// lmtpReceived is the trace field the owner adds to a handed-off message.
func lmtpReceived(peer, hostname string) string {
	return fmt.Sprintf("Received: from %s\r\n\tby %s (kubemail) with LMTP;\r\n\t%s\r\n",
		strings.ReplaceAll(peer, "\r\n", ""), hostname, time.Now().Format(time.RFC1123Z))
}
