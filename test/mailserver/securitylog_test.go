package mailserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/testenv"
)

// attackScript makes, from a source address of its choice, failed AUTH attempts on the
// submissions port and relay attempts on the MX, with Python's smtplib.
const attackScript = `
import smtplib, ssl, sys
kind, addr, source, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
host, port = addr.rsplit(":", 1)
for i in range(count):
    if kind == "auth":
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        s = smtplib.SMTP_SSL(host, int(port), source_address=(source, 0), context=ctx)
        s.ehlo()
        s.user, s.password = "alice@example.com", "guess-%d" % i
        try:
            s.auth("PLAIN", s.auth_plain)  # one mechanism: one failed attempt per round
        except smtplib.SMTPAuthenticationError:
            pass
    else:
        s = smtplib.SMTP(host, int(port), source_address=(source, 0))
        s.ehlo("spammer.test")
        s.mail("spam@spammer.test")
        code, _ = s.rcpt("victim%d@elsewhere.test" % i)
        assert code >= 500, code
    s.quit()
print("done")
`

// TestSecurityLogFeedsFail2ban: the server's own log of failed logins and relay attempts, read
// by Debian's fail2ban-regex with the filter in docs/fail2ban, names the attacking addresses as
// often as they tried, and nobody else; and every line the server wrote is JSON with unique
// keys, as strict log parsers want.
func TestSecurityLogFeedsFail2ban(t *testing.T) {
	regexBin := testutil.Program(t, "fail2ban-regex")
	s := startServer(t, func(c *config.Config) {
		c.LogFormat = "json"
		// Every guess answered at once: this test is about what the log says, not the throttle.
		c.Limits.LoginFailures.FreeFailures = 100
	})
	for _, attack := range []struct{ kind, listener, source string }{
		{"auth", "submissions", "127.0.0.7"},
		{"relay", "smtp", "127.0.0.8"},
	} {
		if out, err := python(t, attackScript, attack.kind, s.addr(attack.listener), attack.source, "4"); err != nil || !strings.Contains(out, "done") {
			t.Fatalf("%s attack: %v\n%s", attack.kind, err, out)
		}
	}
	// A legitimate message, which must not count against its sender.
	if out, err := swaks(t, "--server", s.addr("smtp"), "--from", "friend@elsewhere.net", "--to", "alice@example.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}

	logFile := filepath.Join(t.TempDir(), "mailserver.log")
	if err := os.WriteFile(logFile, []byte(s.logs()), 0o600); err != nil {
		t.Fatal(err)
	}
	filter := filepath.Join(testenv.RepoRoot(), "docs", "fail2ban", "kubemail.conf")
	out, err := exec.Command(regexBin, "--print-all-matched", logFile, filter).CombinedOutput()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	hits := map[string]int{}
	for _, m := range regexp.MustCompile(`"remote":"([0-9.]+)"`).FindAllStringSubmatch(matchedLines(string(out)), -1) {
		hits[m[1]]++
	}
	if hits["127.0.0.7"] != 4 || hits["127.0.0.8"] != 4 || len(hits) != 2 {
		t.Errorf("fail2ban matched %v; want 4 failed logins from 127.0.0.7 and 4 relay attempts from 127.0.0.8, nothing else\n%s", hits, out)
	}
	for i, line := range strings.Split(strings.TrimSpace(s.logs()), "\n") {
		if err := uniqueKeys([]byte(line)); err != nil {
			t.Errorf("log line %d: %v\n%s", i+1, err, line)
		}
	}
}

// matchedLines is the part of fail2ban-regex's output that lists the matched lines.
func matchedLines(out string) string {
	_, after, _ := strings.Cut(out, "Matched line(s):")
	before, _, _ := strings.Cut(after, "`-")
	return before
}

// uniqueKeys checks that data is one JSON object in which no object repeats a key.
func uniqueKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := checkValue(dec); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("more than one JSON value")
	}
	return nil
}

func checkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return err
			}
			if seen[key.(string)] {
				return fmt.Errorf("key %q appears twice", key)
			}
			seen[key.(string)] = true
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}
