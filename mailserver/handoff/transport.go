package handoff

import (
	"context"
	"fmt"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// Transport delivers the handoff queue's messages: each recipient to the replica that holds
// its mailbox now (the directory may have changed since the message was queued; a mailbox
// that came to this replica is stored here).
type Transport struct {
	Shard     int
	Directory *directory.Live
	Local     *delivery.Local
	Client    *Client
	// Holds, if set, admits each store here (see Holds).
	Holds *Holds
}

// Deliver implements queue.Transport.
func (t *Transport) Deliver(ctx context.Context, d *queue.Delivery) []queue.Result {
	dir := t.Directory.Load()
	results := make([]queue.Result, 0, len(d.Recipients))
	byShard := map[int][]string{}
	for _, r := range d.Recipients {
		mb, ok := dir.Mailbox(r)
		switch {
		case !ok:
			results = append(results, queue.Result{Recipient: r, Permanent: true, Code: 550, Status: "5.1.1",
				Text: "No such mailbox (it was removed while the message waited)"})
		case mb.Frozen:
			results = append(results, queue.Result{Recipient: r, Code: 451, Status: "4.2.0",
				Text: "The mailbox is moving between replicas; its mail waits until the move ends"})
		case mb.Shard == t.Shard:
			results = append(results, t.storeHere(mb, d))
		default:
			byShard[mb.Shard] = append(byShard[mb.Shard], r)
		}
	}
	for shard, rcpts := range byShard {
		out, err := t.Client.Send(ctx, shard, d.From, rcpts, d.Data)
		if err != nil {
			for _, r := range rcpts {
				results = append(results, queue.Result{Recipient: r, Text: err.Error()})
			}
			continue
		}
		for _, o := range out {
			res := queue.Result{Recipient: o.Rcpt, Delivered: o.Err == nil}
			if o.Err != nil {
				res.Permanent, res.Code, res.Text = o.Permanent(), o.Err.Code, o.Err.Message
				if c := o.Err.EnhancedCode; c[0] > 0 {
					res.Status = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
				}
			}
			results = append(results, res)
		}
	}
	return results
}

// storeHere delivers a queued handoff whose mailbox now lives on this replica. The queued data
// carries the accepting replica's trace field already.
func (t *Transport) storeHere(mb *directory.Mailbox, d *queue.Delivery) queue.Result {
	if t.Holds != nil {
		release, ok := t.Holds.Begin(mb.Address)
		if !ok {
			return queue.Result{Recipient: mb.Address, Code: 451, Status: "4.2.0", Text: "The mailbox is moving between replicas"}
		}
		defer release()
	}
	_, data := splitID(d.Data)
	if err := t.Local.Deliver(delivery.Envelope{From: d.From}, []*directory.Mailbox{mb}, data); err != nil {
		return queue.Result{Recipient: mb.Address, Text: err.Error()}
	}
	return queue.Result{Recipient: mb.Address, Delivered: true}
}
