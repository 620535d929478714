// Package delivery stores an accepted message in local mailboxes: it adds the per-recipient
// trace headers and returns only when the message is durable in every mailbox.
package delivery

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/store"
)

// Envelope is the SMTP envelope and trace information of one message.
type Envelope struct {
	// From is the envelope sender; empty for the null sender (bounces).
	From string
	// Received is the complete Received header field (name, value and CRLF) to prepend.
	Received string
}

// Local delivers into the store.
type Local struct {
	Store *store.Store
}

// Deliver stores msg (header and body, CRLF or LF line endings) in the INBOX of every mailbox,
// concurrently, and returns when all copies are durable. Each copy gets its own Return-Path and
// Delivered-To. An error means some copies may be missing and the sender must retry.
func (l *Local) Deliver(env Envelope, mailboxes []*directory.Mailbox, msg []byte) error {
	now := time.Now()
	errs := make([]error, len(mailboxes))
	var wg sync.WaitGroup
	for i, mb := range mailboxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.deliverOne(env, mb, msg, now)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Usage is the bytes a mailbox holds, for quota checks before a message is accepted. ok is
// always true here: every mailbox of the store is this server's.
func (l *Local) Usage(mb *directory.Mailbox) (used int64, ok bool, err error) {
	box, err := l.Store.Mailbox(mb.Address)
	if err != nil {
		return 0, false, fmt.Errorf("opening mailbox %s: %w", mb.Address, err)
	}
	return box.Usage(), true, nil
}

func (l *Local) deliverOne(env Envelope, mb *directory.Mailbox, msg []byte, now time.Time) error {
	box, err := l.Store.Mailbox(mb.Address)
	if err != nil {
		return fmt.Errorf("opening mailbox %s: %w", mb.Address, err)
	}
	var hdr strings.Builder
	fmt.Fprintf(&hdr, "Return-Path: <%s>\r\n", env.From)
	fmt.Fprintf(&hdr, "Delivered-To: %s\r\n", mb.Address)
	hdr.WriteString(env.Received)
	r := io.MultiReader(strings.NewReader(hdr.String()), bytes.NewReader(msg))
	if _, err := box.Inbox().Append(r, nil, now); err != nil {
		return fmt.Errorf("delivering to %s: %w", mb.Address, err)
	}
	return nil
}
