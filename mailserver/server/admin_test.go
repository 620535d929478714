package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
)

const adminToken = "0123456789abcdef-admin-token"

// withAdmin enables the admin API with the token in a file next to the data folder.
func withAdmin(t *testing.T, token string) func(*config.Config) {
	return func(cfg *config.Config) {
		path := filepath.Join(t.TempDir(), "admin-token")
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Admin.TokenFile = path
	}
}

// TestAdminAPIRequiresTheToken: every admin endpoint answers 401 without the exact bearer
// token from the file, which is read on each request (so a rotated token takes effect at once).
func TestAdminAPIRequiresTheToken(t *testing.T) {
	s := startServer(t, withAdmin(t, adminToken))
	endpoints := []struct{ method, path string }{
		{"GET", "/admin/v1/mailboxes"},
		{"DELETE", "/admin/v1/mailboxes/gone@example.com"},
		{"GET", "/admin/v1/queue"},
		{"DELETE", "/admin/v1/queue/some-id"},
		{"GET", "/admin/v1/handoff"},
		{"POST", "/admin/v1/handoff/retry"},
		{"GET", "/admin/v1/directory/mailboxes/alice@example.com"},
		{"POST", "/admin/v1/moves/alice@example.com/pull?from=1"},
		{"POST", "/admin/v1/moves/alice@example.com/adopt"},
		{"POST", "/admin/v1/moves/alice@example.com/end-sessions"},
	}
	for _, auth := range []string{"", adminToken, "Bearer", "Bearer wrong-token-of-enough-length", "Basic " + adminToken,
		"Bearer " + adminToken[:len(adminToken)-1]} {
		for _, e := range endpoints {
			if code, body := s.request(t, e.method, e.path, auth); code != http.StatusUnauthorized {
				t.Errorf("%s %s with Authorization %q = %d %q, want 401", e.method, e.path, auth, code, body)
			}
		}
	}
	if code, body := s.request(t, "GET", "/admin/v1/queue", "Bearer "+adminToken); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("GET /admin/v1/queue with the token = %d %q, want 200 []", code, body)
	}

	// Rotated: the old token stops working, the new one works, without a restart.
	rotated := "fedcba9876543210-rotated-token"
	if err := os.WriteFile(s.cfg.Admin.TokenFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.request(t, "GET", "/admin/v1/queue", "Bearer "+adminToken); code != http.StatusUnauthorized {
		t.Errorf("the old token after rotation: %d, want 401", code)
	}
	if code, _ := s.request(t, "GET", "/admin/v1/queue", "Bearer "+rotated); code != http.StatusOK {
		t.Errorf("the new token after rotation: %d, want 200", code)
	}

	// A token too short to be a secret is refused even when it matches.
	if err := os.WriteFile(s.cfg.Admin.TokenFile, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := s.request(t, "GET", "/admin/v1/queue", "Bearer short"); code != http.StatusUnauthorized {
		t.Errorf("a 5-character token: %d, want 401", code)
	}
	// So is every request once the file is gone.
	os.Remove(s.cfg.Admin.TokenFile)
	if code, _ := s.request(t, "GET", "/admin/v1/queue", "Bearer "+rotated); code != http.StatusUnauthorized {
		t.Errorf("with the token file gone: %d, want 401", code)
	}
}

// TestAdminAPIOffWithoutTokenFile: without a token file the admin API is closed to everyone.
func TestAdminAPIOffWithoutTokenFile(t *testing.T) {
	s := startServer(t, nil)
	if code, _ := s.request(t, "GET", "/admin/v1/mailboxes", "Bearer "+adminToken); code != http.StatusUnauthorized {
		t.Errorf("GET /admin/v1/mailboxes with no token configured = %d, want 401", code)
	}
}

// TestAdminAPIMailboxes: usage of every stored mailbox, and purging only mailboxes the
// directory no longer has.
func TestAdminAPIMailboxes(t *testing.T) {
	s := startServer(t, func(cfg *config.Config) {
		withAdmin(t, adminToken)(cfg)
		cfg.Listeners.SMTP = config.Listener{Address: "127.0.0.1:0"}
	})
	bearer := "Bearer " + adminToken
	c, err := smtp.Dial(s.addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "From: sender@elsewhere.net\r\nSubject: usage\r\n\r\nHello.\r\n"
	if err := c.SendMail("sender@elsewhere.net", []string{"alice@example.com"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	// Stored mail of a mailbox that has left the directory.
	box, err := s.store.Mailbox("gone@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.Inbox().Append(strings.NewReader(msg), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}

	code, body := s.request(t, "GET", "/admin/v1/mailboxes", bearer)
	if code != http.StatusOK {
		t.Fatalf("GET /admin/v1/mailboxes = %d %q", code, body)
	}
	var usage []MailboxUsage
	if err := json.Unmarshal([]byte(body), &usage); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	got := map[string]MailboxUsage{}
	for _, u := range usage {
		got[u.Address] = u
	}
	if a := got["alice@example.com"]; a.Messages != 1 || a.Bytes <= int64(len(msg)) {
		t.Errorf("alice's usage %+v, want 1 message of more than the %d bytes sent (with trace fields)", a, len(msg))
	}
	if g := got["gone@example.com"]; g.Messages != 1 {
		t.Errorf("gone's usage %+v, want 1 message", g)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/admin/v1/mailboxes/alice@example.com", http.StatusConflict}, // still in the directory
		{"/admin/v1/mailboxes/not-an-address", http.StatusBadRequest},
		{"/admin/v1/mailboxes/gone@example.com", http.StatusNoContent},
	} {
		if code, body := s.request(t, "DELETE", tc.path, bearer); code != tc.want {
			t.Errorf("DELETE %s = %d %q, want %d", tc.path, code, body, tc.want)
		}
	}
	_, body = s.request(t, "GET", "/admin/v1/mailboxes", bearer)
	if strings.Contains(body, "gone@example.com") || !strings.Contains(body, "alice@example.com") {
		t.Errorf("after purging gone@example.com: %s", body)
	}
}
