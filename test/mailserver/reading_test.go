package mailserver_test

import (
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/config"
)

// TestReadByIMAPAndPOP3 delivers through the real binary and reads back with curl over every
// reading listener, checking the TLS-only login rule along the way.
func TestReadByIMAPAndPOP3(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Listeners.IMAP = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3 = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
	})
	out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", "bob@example.org",
		"--header", "Subject: read me", "--body", "fetched by curl")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	user := "bob@example.org:" + bobPW
	for _, tc := range []struct{ name, url string }{
		{"imap STARTTLS", "imap://" + s.addr("imap") + "/INBOX;UID=1"},
		{"imaps", "imaps://" + s.addr("imaps") + "/INBOX;UID=1"},
		{"pop3 STLS", "pop3://" + s.addr("pop3") + "/1"},
		{"pop3s", "pop3s://" + s.addr("pop3s") + "/1"},
	} {
		out, err := run(t, "", "curl", "-sS", "--ssl-reqd", "-k", "--url", tc.url, "--user", user)
		if err != nil || !strings.Contains(out, "Subject: read me") || !strings.Contains(out, "fetched by curl") {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
		}
	}
	// Without TLS neither protocol lets anyone log in.
	for _, url := range []string{"imap://" + s.addr("imap") + "/INBOX;UID=1", "pop3://" + s.addr("pop3") + "/1"} {
		if out, err := run(t, "", "curl", "-sS", "--url", url, "--user", user); err == nil {
			t.Errorf("%s without TLS logged in:\n%s", url, out)
		}
	}
	for _, want := range []string{`kubemail_sessions_total{protocol="imap"}`, `kubemail_sessions_total{protocol="pop3"}`} {
		if got := s.metric("kubemail_sessions_total"); !strings.Contains(got, want) {
			t.Errorf("metrics lack %s:\n%s", want, got)
		}
	}
}
