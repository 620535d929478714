package mailserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// guessScript tries wrong passwords over IMAPS with Python's imaplib, one connection per
// guess, and prints the server's answer to each.
const guessScript = `
import imaplib, ssl, sys
port, user, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for i in range(n):
    c = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
    try:
        c.login(user, "wrong-guess-%d" % i)
        print("LOGGED IN")
    except imaplib.IMAP4.error as e:
        print(e)
    c.shutdown()
`

// TestGuessingDoesNotLockOutTheOwner: 30 wrong passwords for alice from one address must not
// keep alice out from an address she has logged in from before; the guessing address is
// throttled, and reported once.
func TestGuessingDoesNotLockOutTheOwner(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		// Short delays keep the test quick; the limits are the defaults (10 per account, 20 per
		// address), which before this scheme locked alice out from everywhere.
		c.Limits.LoginFailures = config.LoginFailures{BaseDelay: config.Duration{Duration: 10 * time.Millisecond},
			MaxDelay: config.Duration{Duration: 50 * time.Millisecond}}
	})
	// curl connects from the owner's addresses: 127.0.0.2 has logged in before, 127.0.0.3 not.
	owner := func(from string) (string, error) {
		return run(t, "", "curl", "-sS", "-k", "--interface", from, "--url", "imaps://"+s.addr("imaps")+"/",
			"--user", "alice@example.com:"+alicePW)
	}
	if out, err := owner("127.0.0.2"); err != nil || !strings.Contains(out, "INBOX") {
		t.Fatalf("alice's first login from 127.0.0.2: %v\n%s", err, out)
	}

	_, port, _ := strings.Cut(s.addr("imaps"), ":")
	out, err := python(t, guessScript, port, "alice@example.com", "30")
	if err != nil {
		t.Fatalf("guessing: %v\n%s", err, out)
	}
	answers := strings.Split(strings.TrimSpace(out), "\n")
	if len(answers) != 30 || !strings.Contains(answers[0], "AUTHENTICATIONFAILED") ||
		!strings.Contains(answers[29], "UNAVAILABLE") || strings.Contains(out, "LOGGED IN") {
		t.Fatalf("want failed guesses, then refusals; got:\n%s", out)
	}

	start := time.Now()
	out, err = owner("127.0.0.2")
	if err != nil || !strings.Contains(out, "INBOX") {
		t.Fatalf("alice from 127.0.0.2 after 30 guesses from 127.0.0.1: %v\n%s", err, out)
	}
	t.Logf("alice logged in from a known address in %v after the guessing", time.Since(start).Round(time.Millisecond))
	// An address alice never used is held to the account-wide count, like the guesser.
	if out, err := owner("127.0.0.3"); err == nil {
		t.Errorf("a new address logged in to an account under attack:\n%s", out)
	}

	// 10 failures for alice from 127.0.0.1 refuse that pair; 20 would refuse the address for
	// every account.
	if got := s.metric(`kubemail_logins_throttled_total{action="refused",scope="pair"}`); got == "" {
		t.Errorf("no refusals of the guessing address counted:\n%s", s.metric("kubemail_logins_throttled_total"))
	}
	var reports []string
	for _, l := range strings.Split(s.logs(), "\n") {
		if strings.Contains(l, "logins throttled") {
			reports = append(reports, l)
		}
		if strings.Contains(l, "wrong-guess") {
			t.Errorf("a password in the log: %s", l)
		}
	}
	// Refused attempts are not failures, so the new address, refused at once, is not reported.
	if len(reports) != 1 || !strings.Contains(reports[0], "remote=127.0.0.1") {
		t.Errorf("want one report, for the guessing address; got:\n%s", strings.Join(reports, "\n"))
	}
}
