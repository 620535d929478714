package mailserver_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
)

func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, "", "swaks", append([]string{"--timeout", "30", "--hide-informational"}, args...)...)
}

func TestInboundDelivery(t *testing.T) {
	s := startServer(t)
	out, err := swaks(t, "--server", s.addr("smtp"), "--from", "sender@elsewhere.net", "--to", "alice@example.com",
		"--header", "Subject: inbound test", "--body", "hello alice")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := s.messages("alice@example.com", "INBOX")
	if len(msgs) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	for _, want := range []string{"Return-Path: <sender@elsewhere.net>\r\n", "Delivered-To: alice@example.com\r\n",
		"Received: from ", "by mail.example.com (kubemail) with ESMTP id ", "Subject: inbound test\r\n", "hello alice\r\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("stored message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(strings.ReplaceAll(m, "\r\n", ""), "\n") {
		t.Error("stored message has bare LF line endings")
	}
	if got := s.metric("kubemail_messages_accepted_total"); !strings.Contains(got, `listener="smtp"} 1`) {
		t.Errorf("messages_accepted metric: %q", got)
	}
}

func TestRecipientRules(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name, to, want string
	}{
		{"relay denied", "someone@elsewhere.net", "550 5.7.1"},
		{"relay denied for a lookalike domain", "alice@example.com.evil.net", "550 5.7.1"},
		{"unknown user", "nobody@example.com", "550 5.1.1"},
		{"bad address", "not-an-address", "501 5.5.2"},
		{"invalid local part", "a..b@example.com", "501 5.1.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", tc.to)
			if err == nil || !strings.Contains(out, "<** "+tc.want) {
				t.Fatalf("want %s, got (err %v):\n%s", tc.want, err, out)
			}
		})
	}
	// Authenticated submission does not open the MX port: AUTH is not even offered there.
	out, _ := swaks(t, "--server", s.addr("smtp"), "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.com",
		"--auth-password", alicePW, "--from", "alice@example.com", "--to", "someone@elsewhere.net")
	if !strings.Contains(out, "Host did not advertise authentication") && !strings.Contains(out, "<** 5") {
		t.Fatalf("AUTH on the MX port should not work:\n%s", out)
	}
	if len(s.messages("alice@example.com", "INBOX")) != 0 {
		t.Fatal("a rejected recipient got mail")
	}
}

func TestAliasCatchAllForwarding(t *testing.T) {
	s := startServer(t)
	send := func(to string) {
		t.Helper()
		out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", to, "--header", "Subject: to "+to)
		if err != nil {
			t.Fatalf("to %s: %v\n%s", to, err, out)
		}
	}
	send("team@example.com")              // alias: alice and bob
	send("whoever@example.org")           // catch-all: bob
	send("carol@example.com")             // forwards to alice, keeps no copy
	send("postmaster@example.com")        // alice's mailbox alias
	send("alice+newsletters@example.com") // sub-address
	count := func(addr, subject string) int {
		n := 0
		for _, m := range s.messages(addr, "INBOX") {
			if strings.Contains(m, "Subject: "+subject+"\r\n") {
				n++
			}
		}
		return n
	}
	checks := []struct {
		addr, subject string
		want          int
	}{
		{"alice@example.com", "to team@example.com", 1},
		{"bob@example.org", "to team@example.com", 1},
		{"bob@example.org", "to whoever@example.org", 1},
		{"alice@example.com", "to carol@example.com", 1},
		{"carol@example.com", "to carol@example.com", 0},
		{"alice@example.com", "to postmaster@example.com", 1},
		{"alice@example.com", "to alice+newsletters@example.com", 1},
	}
	for _, c := range checks {
		if got := count(c.addr, c.subject); got != c.want {
			t.Errorf("%s has %d messages %q, want %d", c.addr, got, c.subject, c.want)
		}
	}
}

const smtplibScript = `
import smtplib, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
action = sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def show(code, msg):
    print(code, msg.decode() if isinstance(msg, bytes) else msg)
if action == "quota":
    for i in range(3):
        s = smtplib.SMTP(host, port, timeout=30)
        s.ehlo("client.example.net")
        s.mail("x@elsewhere.net")
        code, msg = s.rcpt("tiny@example.com")
        show(code, msg)
        if code == 250:
            s.data(b"Subject: fill\r\n\r\n" + b"x" * 600 + b"\r\n")
        s.quit()
elif action == "too-many-rcpts":
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo("client.example.net")
    s.mail("x@elsewhere.net")
    for i in range(7):
        show(*s.rcpt("alice@example.com"))
    s.quit()
elif action == "auth-before-tls":
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo("client.example.net")
    print("AUTH advertised before TLS:", s.has_extn("auth"))
    code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAGFsaWNlLXNlY3JldC1wdw==")
    show(code, msg)
    code, msg = s.docmd("MAIL", "FROM:<alice@example.com>")
    show(code, msg)
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
    print("AUTH advertised after TLS:", s.has_extn("auth"), " ".join(s.esmtp_features.get("auth", "").split()))
    try:
        s.login("alice@example.com", "wrong-password")
    except smtplib.SMTPAuthenticationError as e:
        show(e.smtp_code, e.smtp_error)
    s.quit()
    s = smtplib.SMTP(host, port, timeout=30)
    s.starttls(context=ctx)
    s.login("alice@example.com", "alice-secret-pw")
    s.sendmail("alice@example.com", ["bob@example.org"], b"From: alice@example.com\r\nSubject: via starttls\r\n\r\nhi bob\r\n")
    print("sent after STARTTLS")
    s.quit()
elif action == "implicit-tls":
    s = smtplib.SMTP_SSL(host, port, context=ctx, timeout=30)
    s.login("bob@example.org", "bob-secret-pw")
    s.sendmail("bob@example.org", ["alice@example.com"], b"From: Bob <bob@example.org>\r\nSubject: via implicit tls\r\n\r\nhi alice\r\n")
    print("sent over implicit TLS")
    s.quit()
elif action == "spoof":
    s = smtplib.SMTP(host, port, timeout=30)
    s.starttls(context=ctx)
    s.login("alice@example.com", "alice-secret-pw")
    show(*s.mail("bob@example.org"))
    s.rset()
    show(*s.mail("postmaster@example.com"))
    show(*s.rcpt("bob@example.org"))
    show(*s.data(b"From: bob@example.org\r\nSubject: forged header\r\n\r\nx\r\n"))
    s.quit()
elif action == "unauthenticated-submission":
    s = smtplib.SMTP(host, port, timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
    show(*s.mail("alice@example.com"))
    s.quit()
elif action == "bad-passwords":
    for i in range(int(sys.argv[4])):
        s = smtplib.SMTP(host, port, timeout=60)
        s.starttls(context=ctx)
        try:
            s.login(sys.argv[5], "wrong-%d" % i)
        except smtplib.SMTPAuthenticationError as e:
            show(e.smtp_code, e.smtp_error)
        except smtplib.SMTPException as e:
            print("error", e)
        s.close()
`

func smtplib(t *testing.T, addr, action string, extra ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := python(t, smtplibScript, append([]string{host, port, action}, extra...)...)
	if err != nil {
		t.Fatalf("smtplib %s: %v\n%s", action, err, out)
	}
	return out
}

func TestOverQuota(t *testing.T) {
	s := startServer(t)
	out := smtplib(t, s.addr("smtp"), "quota")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "250") || !strings.HasPrefix(lines[1], "250") ||
		!strings.HasPrefix(lines[2], "452 4.2.2") {
		t.Fatalf("want two accepted and then 452 4.2.2 for a full mailbox, got:\n%s", out)
	}
	if n := len(s.messages("tiny@example.com", "INBOX")); n != 2 {
		t.Fatalf("tiny has %d messages, want 2", n)
	}
}

func TestTooBig(t *testing.T) {
	s := startServer(t)
	big := strings.Repeat("0123456789abcdef\r\n", 5000) // 90 KB > 64 KiB limit
	out, err := swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", "alice@example.com", "--body", big)
	if err == nil || !strings.Contains(out, "552 5.3.4") {
		t.Fatalf("want 552 5.3.4, got (err %v):\n%s", err, out[max(0, len(out)-2000):])
	}
	// SIZE is advertised and a declared size over the limit is refused at MAIL.
	out, _ = swaks(t, "--server", s.addr("smtp"), "--from", "x@elsewhere.net", "--to", "alice@example.com", "--quit-after", "EHLO")
	if !strings.Contains(out, "SIZE 65536") {
		t.Fatalf("SIZE not advertised:\n%s", out)
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 0 {
		t.Fatalf("an oversized message was stored")
	}
}

func TestTooManyRecipients(t *testing.T) {
	s := startServer(t)
	out := smtplib(t, s.addr("smtp"), "too-many-rcpts")
	if strings.Count(out, "250 ") != 5 || !strings.Contains(out, "452 4.5.3") {
		t.Fatalf("want 5 accepted then 452 4.5.3:\n%s", out)
	}
}

func TestSubmissionAuthOnlyOverTLS(t *testing.T) {
	s := startServer(t)
	out := smtplib(t, s.addr("submission"), "auth-before-tls")
	for _, want := range []string{
		"AUTH advertised before TLS: False",
		"523 ",                              // AUTH before STARTTLS: TLS is required
		"530 5.7.0 Authentication required", // MAIL before AUTH
		"AUTH advertised after TLS: True PLAIN LOGIN",
		"535 5.7.8", // wrong password
		"sent after STARTTLS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("smtplib output lacks %q:\n%s", want, out)
		}
	}
	out = smtplib(t, s.addr("submissions"), "implicit-tls")
	if !strings.Contains(out, "sent over implicit TLS") {
		t.Fatal(out)
	}
	var got []string
	for _, m := range append(s.messages("bob@example.org", "INBOX"), s.messages("alice@example.com", "INBOX")...) {
		if strings.Contains(m, "with ESMTPSA") {
			got = append(got, m)
		}
	}
	if len(got) != 2 {
		t.Fatalf("want 2 messages received with ESMTPSA, got %d", len(got))
	}
	out = smtplib(t, s.addr("submission"), "unauthenticated-submission")
	if !strings.Contains(out, "530 5.7.0") {
		t.Fatalf("unauthenticated MAIL on submission: %s", out)
	}
}

func TestSubmissionWithCurl(t *testing.T) {
	s := startServer(t)
	msg := "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: curl submission\r\n\r\nsent by curl\r\n"
	out, err := run(t, msg, "curl", "-sS", "--ssl-reqd", "-k", "--url", "smtp://"+s.addr("submission"),
		"--user", "alice@example.com:"+alicePW, "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.org", "--upload-file", "-")
	if err != nil {
		t.Fatalf("curl smtp STARTTLS: %v\n%s", err, out)
	}
	out, err = run(t, msg, "curl", "-sS", "-k", "--url", "smtps://"+s.addr("submissions"),
		"--user", "alice@example.com:"+alicePW, "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.org", "--upload-file", "-")
	if err != nil {
		t.Fatalf("curl smtps: %v\n%s", err, out)
	}
	// Without TLS curl must not be able to log in.
	out, err = run(t, msg, "curl", "-sS", "--url", "smtp://"+s.addr("submission"),
		"--user", "alice@example.com:"+alicePW, "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.org", "--upload-file", "-")
	if err == nil {
		t.Fatalf("curl submitted without TLS:\n%s", out)
	}
	if n := len(s.messages("bob@example.org", "INBOX")); n != 2 {
		t.Fatalf("bob has %d messages, want 2", n)
	}
}

func TestSenderSpoofingRefused(t *testing.T) {
	s := startServer(t)
	out := smtplib(t, s.addr("submission"), "spoof")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "553 5.7.1") || !strings.HasPrefix(lines[1], "250") ||
		!strings.HasPrefix(lines[2], "250") || !strings.HasPrefix(lines[3], "550 5.7.1") {
		t.Fatalf("want 553 for another user's envelope sender, 250 for an own alias, 550 for a forged From header:\n%s", out)
	}
	if n := len(s.messages("bob@example.org", "INBOX")); n != 0 {
		t.Fatalf("a forged message was delivered")
	}
}

func TestFailedLoginsAreSlowedThenRefused(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Limits.LoginFailures = config.LoginFailures{FreeFailures: 2, BaseDelay: config.Duration{Duration: 50 * time.Millisecond}, MaxDelay: config.Duration{Duration: 200 * time.Millisecond},
			MaxAccountFailures: 4, MaxIPFailures: 100}
	})
	// A wrong password and an unknown user get the same answer.
	out := smtplib(t, s.addr("submission"), "bad-passwords", "1", "nobody@example.com")
	out2 := smtplib(t, s.addr("submission"), "bad-passwords", "1", "bob@example.org")
	if strings.TrimSpace(out) != strings.TrimSpace(out2) || !strings.HasPrefix(out, "535 5.7.8") {
		t.Fatalf("unknown user %q and wrong password %q answer differently", out, out2)
	}
	out = smtplib(t, s.addr("submission"), "bad-passwords", "6", "alice@example.com")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "535") || !strings.HasPrefix(lines[5], "454 4.7.0") {
		t.Fatalf("want failures and then 454 4.7.0 refusals:\n%s", out)
	}
	// The real password is refused too while the account is locked.
	out = smtplib(t, s.addr("submission"), "bad-passwords", "0", "alice@example.com")
	if got := s.metric("kubemail_auth_attempts_total"); !strings.Contains(got, `result="throttled"`) {
		t.Fatalf("no throttled logins counted: %s", got)
	}
	_ = out
}

// rawSMTP dials addr and returns a function that sends one command line (none for "") and
// reads the whole reply, its lines joined by newlines. The connection closes with the test.
func rawSMTP(t *testing.T, addr string, within time.Duration) func(line string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(within))
	r := bufio.NewReader(c)
	return func(line string) string {
		t.Helper()
		if line != "" {
			fmt.Fprintf(c, "%s\r\n", line)
		}
		var all []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the reply to %q: %v (so far %q)", line, err, all)
			}
			all = append(all, strings.TrimRight(l, "\r\n"))
			if len(l) < 4 || l[3] != '-' {
				return strings.Join(all, "\n")
			}
		}
	}
}

// TestMalformedCommands talks raw SMTP: garbage gets a 5xx and the session goes on.
func TestMalformedCommands(t *testing.T) {
	s := startServer(t)
	send := rawSMTP(t, s.addr("smtp"), 30*time.Second)
	if greet := send(""); !strings.HasPrefix(greet, "220 mail.example.com") {
		t.Fatalf("greeting %q", greet)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"BLAH", "5"},
		{"EHLO client.example.net", "250"},
		{"MAIL FROM:<broken", "5"},
		{"MAIL FROM:<x@elsewhere.net> SIZE=notanumber", "501"},
		{"RCPT TO:<alice@example.com>", "5"}, // no MAIL yet
		{"\x00\x01\x02 binary junk", "5"},
		{"MAIL FROM:<x@elsewhere.net>", "250"},
		{"RCPT TO:<alice@example.com>", "250"},
		{"NOOP", "250"},
		{"DATA", "354"},
	} {
		if got := send(tc.cmd); !strings.HasPrefix(got, tc.want) {
			t.Fatalf("%.40q: got %q, want %s...", tc.cmd, got, tc.want)
		}
	}
	if got := send("Subject: after garbage\r\n\r\nstill works\r\n."); !strings.HasPrefix(got, "250") {
		t.Fatalf("DATA end: %q", got)
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 1 {
		t.Fatalf("alice has %d messages", n)
	}
}

func TestDirectoryReloadKeepsConnections(t *testing.T) {
	s := startServer(t)
	raw := rawSMTP(t, s.addr("smtp"), 60*time.Second)
	cmd := func(line string) string {
		// The last line of the reply: its code is what the steps below check.
		reply := raw(line)
		return strings.TrimSpace(reply[strings.LastIndexByte(reply, '\n')+1:])
	}
	cmd("")
	cmd("EHLO client.example.net")
	cmd("MAIL FROM:<x@elsewhere.net>")
	if got := cmd("RCPT TO:<dave@example.com>"); !strings.HasPrefix(got, "550 5.1.1") {
		t.Fatalf("dave before reload: %q", got)
	}

	spec := testDirectory(t)
	h, _ := passwordhash.Hash("dave-pw")
	spec.Mailboxes = append(spec.Mailboxes, dirspec.MailboxSpec{Address: "dave@example.com", PasswordHash: h})
	writeDirectory(t, s.dirPath, spec)
	serverPoll.Eventually(t, "dave to exist", func() bool {
		return strings.HasPrefix(cmd("RCPT TO:<dave@example.com>"), "250")
	})
	cmd("DATA")
	if got := cmd("Subject: after reload\r\n\r\nhi dave\r\n."); !strings.HasPrefix(got, "250") {
		t.Fatalf("DATA: %q", got)
	}
	if n := len(s.messages("dave@example.com", "INBOX")); n != 1 {
		t.Fatalf("dave has %d messages", n)
	}

	// A broken file keeps the last good directory and lowers the directory_valid gauge.
	if err := os.WriteFile(s.dirPath, []byte("domains: [this is: broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	serverPoll.Eventually(t, "directory_valid to drop", func() bool {
		return strings.Contains(s.metric("kubemail_directory_valid"), "kubemail_directory_valid 0")
	})
	cmd("RSET")
	cmd("MAIL FROM:<x@elsewhere.net>")
	if got := cmd("RCPT TO:<dave@example.com>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("a broken directory file replaced the good one: %q", got)
	}
	if n := strings.Count(s.logs(), "directory file rejected"); n != 1 {
		t.Fatalf("broken directory logged %d times, want once", n)
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := startServer(t)
	c, err := net.Dial("tcp", s.addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	r.ReadString('\n')
	fmt.Fprintf(c, "EHLO x\r\nMAIL FROM:<x@elsewhere.net>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
	for i := 0; ; i++ {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "354") {
			break
		}
	}
	// SIGTERM mid-transaction: the transaction in flight still completes.
	s.proc.Signal(syscall.SIGTERM)
	serverPoll.Eventually(t, "shutdown to begin", func() bool { return strings.Contains(s.logs(), "shutting down") })
	fmt.Fprintf(c, "Subject: in flight\r\n\r\nbody\r\n.\r\n")
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "250") {
		t.Fatalf("transaction in flight at SIGTERM: %q %v", l, err)
	}
	fmt.Fprintf(c, "QUIT\r\n")
	c.Close()
	if err := s.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 1 {
		t.Fatalf("alice has %d messages", n)
	}
}

func writeDirectory(t *testing.T, path string, spec any) {
	t.Helper()
	data, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
