package smtpd

import (
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestSubmissionAuthOnlyOverTLS: passwords never cross the network in the clear, and nothing
// is accepted from a client that has not logged in.
func TestSubmissionAuthOnlyOverTLS(t *testing.T) {
	e := newEnv(t, envOptions{})

	c := e.dial(t, e.submission)
	if ok, mechs := c.Extension("AUTH"); ok {
		t.Errorf("AUTH %s offered before STARTTLS", mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.com", password)); err == nil {
		t.Fatal("AUTH PLAIN with good credentials succeeded without TLS")
	}
	wantReply(t, "MAIL FROM without AUTH", c.Mail("alice@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})

	c = e.dialTLS(t, e.submission)
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
		t.Errorf("over TLS: AUTH offered %v with %q, want PLAIN and LOGIN", ok, mechs)
	}
	wantReply(t, "MAIL FROM over TLS before AUTH", c.Mail("alice@example.com", nil), 530, smtp.EnhancedCode{5, 7, 0})
	wantReply(t, "AUTH with a wrong password", c.Auth(sasl.NewPlainClient("", "alice@example.com", "wrong")),
		535, smtp.EnhancedCode{5, 7, 8})
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.com", password)); err != nil {
		t.Fatalf("AUTH PLAIN over TLS: %v", err)
	}
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Errorf("MAIL FROM after AUTH: %v", err)
	}

	c = e.dialTLS(t, e.submission)
	if err := c.Auth(sasl.NewLoginClient("bob@example.com", password)); err != nil {
		t.Errorf("AUTH LOGIN over TLS: %v", err)
	}

	c = e.dialTLS(t, e.submission)
	wantReply(t, "AUTH as a disabled account", c.Auth(sasl.NewPlainClient("", "dave@example.com", password)),
		525, smtp.EnhancedCode{5, 7, 13})
}

// TestSubmissionSendsAsOwnAddressesOnly: the envelope sender and the From header must be the
// user's own address or one of its aliases.
func TestSubmissionSendsAsOwnAddressesOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.login(t, "alice@example.com")
	wantReply(t, "MAIL FROM another user", c.Mail("bob@example.com", nil), 553, smtp.EnhancedCode{5, 7, 1})
	wantReply(t, "MAIL FROM the null sender", c.Mail("", nil), 553, smtp.EnhancedCode{5, 7, 1})
	if err := c.Mail("postmaster@example.com", nil); err != nil {
		t.Fatalf("MAIL FROM her alias: %v", err)
	}
	if err := c.Rcpt("bob@example.com", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "a From header of another user", send(t, c, message("bob@example.com", "bob@example.com", "forged")),
		550, smtp.EnhancedCode{5, 7, 1})
	if n := len(e.inbox(t, "bob@example.com")); n != 0 {
		t.Errorf("bob received %d messages with a forged From", n)
	}

	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if err := send(t, c, message("Alice <postmaster@example.com>", "bob@example.com", "own alias")); err != nil {
		t.Fatalf("a From header with her alias: %v", err)
	}
	if n := len(e.inbox(t, "bob@example.com")); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
}

// TestSubmissionRecipients: unlike the MX role, submission relays to other domains (through the
// outbound queue), and it delivers local recipients at once.
func TestSubmissionRecipients(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.login(t, "alice@example.com")
	if err := c.Mail("alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"friend@elsewhere.net", "bob@example.com"} {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT %s: %v", rcpt, err)
		}
	}
	wantReply(t, "RCPT to an unknown local user", c.Rcpt("nobody@example.com", nil), 550, smtp.EnhancedCode{5, 1, 1})
	wantReply(t, "RCPT to an unavailable domain", c.Rcpt("anyone@gone.example", nil), 451, smtp.EnhancedCode{4, 3, 0})
	if err := send(t, c, message("alice@example.com", "friend@elsewhere.net", "out")); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}

	q := e.outbound.queued()
	if len(q) != 1 || q[0].from != "alice@example.com" || len(q[0].rcpts) != 1 || q[0].rcpts[0] != "friend@elsewhere.net" {
		t.Fatalf("queued %+v, want one message from alice to friend@elsewhere.net only", q)
	}
	if rcv := received(q[0].msg); !strings.Contains(rcv, " with ESMTPSA id ") {
		t.Errorf("queued message's Received field %q does not say ESMTPSA (TLS and AUTH)", rcv)
	}
	if n := len(e.inbox(t, "bob@example.com")); n != 1 {
		t.Errorf("bob has %d messages, want the local copy", n)
	}
	if n := counter(t, e.metrics.MessagesAccepted, "submission"); n != 1 {
		t.Errorf("messages_accepted_total{listener=submission} = %v, want 1", n)
	}
}

// TestWithoutOutbound: with no outbound queue, mail that would have to leave this server is
// refused at RCPT with a temporary error, before the message is sent: on the MX role a local
// address that forwards outside, on submission any other domain. Local mail still flows.
func TestWithoutOutbound(t *testing.T) {
	e := newEnv(t, envOptions{noOutbound: true})
	for _, tc := range []struct {
		role               string
		c                  *smtp.Client
		from, leaves, stay string
	}{
		{"MX", e.dial(t, e.mx), "sender@elsewhere.net", "carol@example.com", "alice@example.com"},
		{"submission", e.login(t, "alice@example.com"), "alice@example.com", "friend@elsewhere.net", "bob@example.com"},
	} {
		if err := tc.c.Mail(tc.from, nil); err != nil {
			t.Fatalf("%s: MAIL FROM: %v", tc.role, err)
		}
		wantReply(t, tc.role+": RCPT "+tc.leaves, tc.c.Rcpt(tc.leaves, nil), 451, smtp.EnhancedCode{4, 3, 2})
		if err := tc.c.Rcpt(tc.stay, nil); err != nil {
			t.Errorf("%s: RCPT %s: %v", tc.role, tc.stay, err)
		}
	}
}

// TestSubmissionHourlyLimit: a user over the hourly message limit is told to wait at MAIL FROM;
// other users are not affected.
func TestSubmissionHourlyLimit(t *testing.T) {
	e := newEnv(t, envOptions{sendLimit: 1})
	c := e.login(t, "alice@example.com")
	if err := c.SendMail("alice@example.com", []string{"bob@example.com"}, strings.NewReader(message("alice@example.com", "bob@example.com", "first"))); err != nil {
		t.Fatalf("first message: %v", err)
	}
	wantReply(t, "MAIL FROM over the limit", c.Mail("alice@example.com", nil), 450, smtp.EnhancedCode{4, 7, 1})
	if n := counter(t, e.metrics.MessagesRejected, "submission", "rate_limit"); n != 1 {
		t.Errorf("messages_rejected_total{reason=rate_limit} = %v, want 1", n)
	}
	b := e.login(t, "bob@example.com")
	if err := b.Mail("bob@example.com", nil); err != nil {
		t.Errorf("another user's MAIL FROM: %v", err)
	}
}
