package mailserver_test

import (
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/config"
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
	// A header search reads the header cache: the first one fills it, the second is answered
	// from it, and the metrics say so.
	for i := 0; i < 2; i++ {
		out, err := run(t, "", "curl", "-sS", "-k", "--url", "imaps://"+s.addr("imaps")+"/INBOX", "--user", user,
			"--request", "UID SEARCH SUBJECT read")
		if err != nil || !strings.Contains(out, "* SEARCH 1") {
			t.Errorf("UID SEARCH SUBJECT: %v\n%s", err, out)
		}
	}
	for _, want := range []string{"kubemail_header_cache_misses_total 1", "kubemail_header_cache_hits_total 1",
		"kubemail_header_cache_entries 1", "kubemail_header_cache_budget_bytes 6.7108864e+07"} {
		if got := s.metric("kubemail_header_cache_"); !strings.Contains(got, want) {
			t.Errorf("metrics lack %q:\n%s", want, got)
		}
	}
	for _, want := range []string{`kubemail_sessions_total{protocol="imap"}`, `kubemail_sessions_total{protocol="pop3"}`} {
		if got := s.metric("kubemail_sessions_total"); !strings.Contains(got, want) {
			t.Errorf("metrics lack %s:\n%s", want, got)
		}
	}
}
