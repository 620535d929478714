package mailserver_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// TestAdminAPI checks the operator's endpoints: refused without the token, usage reported, and
// a purge refused while the mailbox is still in the directory.
func TestAdminAPI(t *testing.T) {
	token := "0123456789abcdef0123456789abcdef"
	var tokenFile string
	s := startServer(t, func(c *config.Config) {
		tokenFile = filepath.Join(filepath.Dir(c.DataDir), "admin-token")
		os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
		c.Admin.TokenFile = tokenFile
	})
	if out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", "alice@example.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	do := func(method, path, bearer string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+s.addr("http")+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	for _, bearer := range []string{"", "wrong-token-wrong-token-wrong-token"} {
		if code, _ := do("GET", "/admin/v1/mailboxes", bearer); code != http.StatusUnauthorized {
			t.Fatalf("admin API with token %q: %d, want 401", bearer, code)
		}
	}
	code, body := do("GET", "/admin/v1/mailboxes", token)
	var usage []struct {
		Address  string
		Bytes    int64
		Messages int64
	}
	if code != 200 || json.Unmarshal([]byte(body), &usage) != nil || len(usage) != 1 || usage[0].Address != "alice@example.com" ||
		usage[0].Messages != 1 || usage[0].Bytes < 100 {
		t.Fatalf("usage: %d %s", code, body)
	}
	if code, body := do("DELETE", "/admin/v1/mailboxes/alice@example.com", token); code != http.StatusConflict {
		t.Fatalf("purging a mailbox still in the directory: %d %s", code, body)
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 1 {
		t.Fatalf("alice has %d messages after a refused purge", n)
	}
}
