package mailserver_test

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// submitImplicitTLS sends a message through the submissions listener (TLS from the start).
func submitImplicitTLS(addr, user, pw, from string, to []string, msg string) error {
	c, err := smtp.DialTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	return sendAuthenticated(c, user, pw, from, to, msg)
}

func TestSubmissionRateLimitPerUser(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.Limits.MaxMessagesPerHour = 2 })
	to := []string{"bob@example.org"}
	for i, subject := range []string{"first", "second"} {
		msg := testMessage("alice@example.com", "bob@example.org", subject, "within the limit")
		if err := submit(s.addr("submission"), "alice@example.com", alicePW, "alice@example.com", to, msg); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	// The third within the hour is refused at MAIL FROM, whichever submission listener and
	// however the login is spelled.
	msg := testMessage("alice@example.com", "bob@example.org", "third", "over the limit")
	err := submitImplicitTLS(s.addr("submissions"), "Alice@Example.COM", alicePW, "alice@example.com", to, msg)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 450 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) ||
		!strings.Contains(se.Message, "in the last hour (limit 2)") {
		t.Fatalf("third message: %v; want 450 4.7.1 naming the limit", err)
	}
	if n := len(s.messages("bob@example.org", "INBOX")); n != 2 {
		t.Fatalf("bob has %d messages, want 2", n)
	}
	// Another user has a count of its own.
	msg = testMessage("bob@example.org", "alice@example.com", "from bob", "bob is not limited by alice")
	if err := submit(s.addr("submission"), "bob@example.org", bobPW, "bob@example.org", []string{"alice@example.com"}, msg); err != nil {
		t.Fatalf("bob: %v", err)
	}
	// Mail from other servers on the MX listener is not counted, not even to or as alice.
	for i := 0; i < 3; i++ {
		out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", "alice@example.com",
			"--header", "Subject: inbound")
		if err != nil {
			t.Fatalf("MX delivery %d: %v\n%s", i+1, err, out)
		}
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 4 {
		t.Fatalf("alice has %d messages, want 4 (one from bob, three over MX)", n)
	}
	if v := s.metricValue(`kubemail_messages_rejected_total{listener="submissions",reason="rate_limit"}`); v != 1 {
		t.Errorf("rate_limit rejections metric = %v, want 1", v)
	}
	logs := s.logs()
	if !strings.Contains(logs, "hourly message limit reached") || !strings.Contains(logs, "user=alice@example.com") {
		t.Errorf("the refusal is not logged with the user:\n%s", logs)
	}
	if strings.Contains(logs, alicePW) {
		t.Error("the log contains a password")
	}
}
