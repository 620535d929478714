package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/directory"
)

// After a login the server may hand the connection to a Takeover (a cluster's owner replica):
// it gets the connection at the command boundary, what the client pipelined behind LOGIN, and
// the tag to answer; a mailbox the route does not claim is served here.
func TestLoginHandoff(t *testing.T) {
	got := make(chan *Handoff, 1)
	route := func(mb *directory.Mailbox) Takeover {
		if mb.Address != bob {
			return nil
		}
		return func(ctx context.Context, h *Handoff) error {
			fmt.Fprintf(h.Conn, "%s OK [CAPABILITY IMAP4rev1] served elsewhere\r\n", h.Tag)
			// The pending bytes come first, then the connection.
			r := bufio.NewReader(io.MultiReader(strings.NewReader(string(h.Pending)), h.Conn))
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			fmt.Fprintf(h.Conn, "* BYE elsewhere read %q\r\n", strings.TrimSpace(line))
			got <- h
			return nil
		}
	}
	e := newEnv(t, func(o *envOptions) { o.route = route })

	c := e.raw(t)
	// LOGIN and the next command in one write: the next one reaches the taker.
	c.send(fmt.Sprintf("a LOGIN %s %q\r\nb NOOP", bob, password))
	if line := c.expect("a "); line != "a OK [CAPABILITY IMAP4rev1] served elsewhere" {
		t.Errorf("login answered %q, want the taker's answer", line)
	}
	if line := c.expect("* BYE"); line != `* BYE elsewhere read "b NOOP"` {
		t.Errorf("the taker read %q, want the pipelined NOOP", line)
	}
	h := <-got
	if h.Mailbox.Address != bob || h.Tag != "a" {
		t.Errorf("handoff of %q with tag %q", h.Mailbox.Address, h.Tag)
	}
	if n := counter(t, e.metrics.Sessions, "imap"); n != 0 {
		t.Errorf("%v sessions counted here for a handed-off login", n)
	}

	// alice is not claimed: served here as always.
	local := e.client(alice, nil)
	if _, err := local.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("a local session after a handoff: %v", err)
	}
}
