package smtpd

import (
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestMXRecipientDecisions: the MX role takes mail for the directory's own addresses only, and
// says why it refuses the others in the code a sending server acts on (5xx: bounce, 4xx: retry).
func TestMXRecipientDecisions(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name     string
		rcpt     string
		mail     *smtp.MailOptions
		code     int // 0: accepted
		enhanced smtp.EnhancedCode
		reason   string // recipients_rejected_total reason
	}{
		{name: "mailbox", rcpt: "alice@example.com"},
		{name: "alias", rcpt: "postmaster@example.com"},
		{name: "forwarded outside", rcpt: "carol@example.com"},
		{name: "unknown user", rcpt: "nobody@example.com", code: 550, enhanced: smtp.EnhancedCode{5, 1, 1}, reason: "unknown_user"},
		{name: "other domain: no relaying", rcpt: "someone@elsewhere.net", code: 550, enhanced: smtp.EnhancedCode{5, 7, 1}, reason: "relay"},
		{name: "unavailable domain", rcpt: "anyone@gone.example", code: 451, enhanced: smtp.EnhancedCode{4, 3, 0}, reason: "domain_unavailable"},
		{name: "message larger than the room left", rcpt: "tiny@example.com", mail: &smtp.MailOptions{Size: 2000},
			code: 452, enhanced: smtp.EnhancedCode{4, 2, 2}, reason: "over_quota"},
		{name: "non-ASCII without SMTPUTF8", rcpt: "jörg@example.com", code: 553, enhanced: smtp.EnhancedCode{5, 6, 7}, reason: "needs_smtputf8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, e.mx)
			if err := c.Mail("sender@elsewhere.net", tc.mail); err != nil {
				t.Fatalf("MAIL FROM: %v", err)
			}
			before := 0.0
			if tc.reason != "" {
				before = counter(t, e.metrics.RecipientsRejected, "smtp", tc.reason)
			}
			err := c.Rcpt(tc.rcpt, nil)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("RCPT TO:<%s> = %v, want it accepted", tc.rcpt, err)
				}
				return
			}
			wantReply(t, "RCPT TO:<"+tc.rcpt+">", err, tc.code, tc.enhanced)
			if n := counter(t, e.metrics.RecipientsRejected, "smtp", tc.reason) - before; n != 1 {
				t.Errorf("recipients_rejected_total{listener=smtp,reason=%s} rose by %v, want 1", tc.reason, n)
			}
		})
	}
}

// TestMXDelivery: an accepted message is stored once per mailbox (an alias and its mailbox in
// one transaction make one copy) under a Received field that names the client and the
// protocol, and forwarded mail goes to the outbound queue.
func TestMXDelivery(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial(t, e.mx)
	if err := c.Mail("sender@elsewhere.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"alice@example.com", "postmaster@example.com", "carol@example.com"} {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT %s: %v", rcpt, err)
		}
	}
	if err := send(t, c, message("sender@elsewhere.net", "alice@example.com", "plain")); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}

	inbox := e.inbox(t, "alice@example.com")
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want 1 (her alias in the same transaction adds no copy)", len(inbox))
	}
	rcv := received(inbox[0])
	for _, want := range []string{"from client.example.net ([127.0.0.1])", "by mail.example.com (kubemail) with ESMTP id "} {
		if !strings.Contains(rcv, want) {
			t.Errorf("Received field %q lacks %q", rcv, want)
		}
	}
	if !strings.Contains(inbox[0], "Subject: plain\r\n") {
		t.Errorf("stored message:\n%s", inbox[0])
	}
	if n := len(e.inbox(t, "carol@example.com")); n != 0 {
		t.Errorf("carol (forwarding, no copy kept) has %d messages", n)
	}
	q := e.outbound.queued()
	if len(q) != 1 || q[0].from != "sender@elsewhere.net" || len(q[0].rcpts) != 1 || q[0].rcpts[0] != "carol@elsewhere.net" {
		t.Fatalf("queued %+v, want one message from sender@elsewhere.net to carol@elsewhere.net", q)
	}
	if !strings.HasPrefix(q[0].msg, "Received: ") || !strings.Contains(q[0].msg, "Subject: plain\r\n") {
		t.Errorf("queued message does not start with our Received field:\n%s", q[0].msg)
	}
	if n := counter(t, e.metrics.MessagesAccepted, "smtp"); n != 1 {
		t.Errorf("messages_accepted_total{listener=smtp} = %v, want 1", n)
	}

	// Over STARTTLS the protocol says so.
	c = e.dialTLS(t, e.mx)
	if err := c.SendMail("sender@elsewhere.net", []string{"bob@example.com"}, strings.NewReader(message("sender@elsewhere.net", "bob@example.com", "tls"))); err != nil {
		t.Fatal(err)
	}
	bob := e.inbox(t, "bob@example.com")
	if len(bob) != 1 || !strings.Contains(received(bob[0]), " with ESMTPS id ") {
		t.Errorf("bob's messages %q, want one received with ESMTPS", bob)
	}
}

// TestMXOffersNoAuth: the MX port is not a way to send mail, even over TLS.
func TestMXOffersNoAuth(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dialTLS(t, e.mx)
	if ok, mechs := c.Extension("AUTH"); ok {
		t.Errorf("MX offers AUTH %s over TLS", mechs)
	}
	err := c.Auth(sasl.NewPlainClient("", "alice@example.com", password))
	if err == nil {
		t.Fatal("AUTH PLAIN with good credentials succeeded on the MX port")
	}
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "relaying after an AUTH attempt", c.Rcpt("someone@elsewhere.net", nil), 550, smtp.EnhancedCode{5, 7, 1})
}

// TestMXRefusesMailLoops: a message that has passed MaxHops servers is refused, not stored.
func TestMXRefusesMailLoops(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial(t, e.mx)
	if err := c.Mail("sender@elsewhere.net", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("Received: from a.example by b.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n", 5) +
		message("sender@elsewhere.net", "alice@example.com", "loop")
	wantReply(t, "end of DATA", send(t, c, msg), 554, smtp.EnhancedCode{5, 4, 6})
	if n := len(e.inbox(t, "alice@example.com")); n != 0 {
		t.Errorf("alice has %d messages after a refused loop", n)
	}
	if n := counter(t, e.metrics.MessagesRejected, "smtp", "loop"); n != 1 {
		t.Errorf("messages_rejected_total{reason=loop} = %v, want 1", n)
	}
}
