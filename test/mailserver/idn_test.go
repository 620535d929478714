package mailserver_test

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// Internationalised mail (RFC 6530-6533, 6855, 6856) through the real binary, with Python's
// smtplib, imaplib and poplib as the clients.

const joergPW = "jörgs-geheimes-passwort"

// idnDirectory serves bücher.example, declared in U-labels, with jörg's mailbox, and
// example.com, whose alice has an alias in UTF-8.
func idnDirectory(t *testing.T) *dirspec.Spec {
	return &dirspec.Spec{
		Domains: []dirspec.DomainSpec{{Name: "bücher.example"}, {Name: "example.com"}},
		Mailboxes: []dirspec.MailboxSpec{
			{Address: "jörg@bücher.example", PasswordHash: hashPW(t, joergPW)},
			{Address: "alice@example.com", PasswordHash: hashPW(t, alicePW), Aliases: []string{"alice.müller@example.com"}},
		},
	}
}

const idnScript = `
import base64, imaplib, poplib, smtplib, ssl, sys
action, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def show(code, msg):
    print(code, msg.decode("utf-8") if isinstance(msg, bytes) else msg)

def raw(s, line):
    s.send(line.encode("utf-8") + b"\r\n")
    show(*s.getreply())

def plain(user, pw):
    return base64.b64encode(("\0%s\0%s" % (user, pw)).encode("utf-8")).decode("ascii")

MSG = ("From: Jürgen <jürgen@example.net>\r\nTo: Jörg <jörg@bücher.example>\r\n"
       "Subject: Grüße aus Köln\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
       "\r\nSchöne Grüße, Jürgen\r\n").encode("utf-8")

if action == "mx":
    s = smtplib.SMTP(host, port, timeout=30)
    s.ehlo("client.example.net")
    print("SMTPUTF8 advertised:", s.has_extn("smtputf8"))
    # From and to internationalised addresses; the U-label and A-label forms are one domain.
    s.sendmail("jürgen@example.net", ["jörg@bücher.example"], MSG, mail_options=["SMTPUTF8"])
    s.sendmail("jürgen@example.net", ["JÖRG@xn--bcher-kva.example"], MSG.replace(b"K\xc3\xb6ln", b"Bonn"), mail_options=["SMTPUTF8"])
    print("sent with SMTPUTF8")
    # The same without SMTPUTF8 is refused at once, with a reason.
    raw(s, "MAIL FROM:<jürgen@example.net>")
    raw(s, "MAIL FROM:<x@example.net>")
    raw(s, "RCPT TO:<jörg@bücher.example>")
    raw(s, "RSET")
    s.quit()
elif action == "submission":
    s = smtplib.SMTP(host, port, timeout=30)
    s.starttls(context=ctx)
    s.ehlo("client.example.net")
    # smtplib's login() encodes credentials as ASCII; AUTH PLAIN carries UTF-8 (RFC 4616).
    show(*s.docmd("AUTH", "PLAIN " + plain("Jörg@Bücher.example", "jörgs-geheimes-passwort")))
    s.sendmail("jörg@xn--bcher-kva.example", ["alice.müller@example.com"],
        ("From: jörg@bücher.example\r\nTo: alice.müller@example.com\r\nSubject: Antwort\r\n\r\nDanke!\r\n").encode("utf-8"),
        mail_options=["SMTPUTF8"])
    print("submitted with SMTPUTF8")
    s.quit()
elif action == "imap":
    m = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
    m.authenticate("PLAIN", lambda _: ("\0jörg@bücher.example\0jörgs-geheimes-passwort").encode("utf-8"))
    # imaplib reads the capability list once, before login; ENABLE is offered after it.
    typ, data = m.capability()
    m.capabilities = tuple(data[-1].decode().upper().split())
    print("UTF8=ACCEPT advertised:", "UTF8=ACCEPT" in m.capabilities)
    print("ENABLE:", *m.enable("UTF8=ACCEPT"))
    print("utf8 mode:", m.utf8_enabled)
    m.create("Entwürfe")
    typ, data = m.list()
    print("LIST:", [d.decode("utf-8") for d in data])
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(ENVELOPE BODY.PEEK[])")
    for d in data:
        if isinstance(d, tuple):
            print("FETCH:", d[0].decode("utf-8"))
            print("BODY:", d[1].decode("utf-8"))
        else:
            print("FETCH tail:", d.decode("utf-8"))
    m.logout()
    # LOGIN with the user name in UTF-8, as a quoted string and as a literal (imaplib's login()
    # sends ASCII only, so these go over the socket as they are).
    import socket
    for login in ['a1 LOGIN "jörg@bücher.example" "jörgs-geheimes-passwort"\r\n'.encode("utf-8"),
                  b"a1 LOGIN {%d+}\r\n" % len("JÖRG@xn--bcher-kva.example".encode("utf-8")) +
                  "JÖRG@xn--bcher-kva.example".encode("utf-8") + b' "j\xc3\xb6rgs-geheimes-passwort"\r\n']:
        with ctx.wrap_socket(socket.create_connection((host, port), timeout=30)) as c:
            f = c.makefile("rb")
            f.readline()
            c.sendall(login)
            line = f.readline()
            while line.startswith(b"* "):
                line = f.readline()
            print("LOGIN:", line.decode("utf-8").strip())
elif action == "pop3":
    p = poplib.POP3_SSL(host, port, context=ctx)
    print("CAPA:", p.capa())
    print("UTF8:", p.utf8().decode())
    p.user("jörg@bücher.example")
    print("PASS:", p.pass_("jörgs-geheimes-passwort").decode())
    resp, lines, octets = p.retr(1)
    print("RETR:", b"\n".join(lines).decode("utf-8"))
    p.quit()
`

// storeName is a name as the store writes it on disk: bytes other than letters, digits and
// "-_+@." become %XX.
func storeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_+@.", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func idn(t *testing.T, action, addr string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := python(t, idnScript, action, host, port)
	if err != nil {
		t.Fatalf("python %s: %v\n%s", action, err, out)
	}
	return out
}

func wantAll(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, out)
		}
	}
}

// TestInternationalisedMail: smtplib sends from and to UTF-8 addresses and an IDN domain with
// SMTPUTF8 (and is refused without it); imaplib reads the mail back after ENABLE UTF8=ACCEPT,
// with its UTF-8 header; poplib reads it after UTF8.
func TestInternationalisedMail(t *testing.T) {
	s := startServerSpec(t, idnDirectory(t), func(c *config.Config) {
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
	})
	out := idn(t, "mx", s.addr("smtp"))
	wantAll(t, "smtplib to the MX", out, "SMTPUTF8 advertised: True", "sent with SMTPUTF8",
		"553 5.6.7 Non-ASCII sender address: add the SMTPUTF8 parameter to MAIL FROM",
		"553 5.6.7 Non-ASCII recipient address: add the SMTPUTF8 parameter to MAIL FROM")
	msgs := s.messages(storeName("jörg")+"@xn--bcher-kva.example", "INBOX")
	if len(msgs) != 2 {
		t.Fatalf("jörg has %d messages, want 2", len(msgs))
	}
	wantAll(t, "the stored message", msgs[0]+msgs[1], "Subject: Grüße aus Köln", "Subject: Grüße aus Bonn",
		"with UTF8SMTP id", "for <jörg@bücher.example>")

	out = idn(t, "submission", s.addr("submission"))
	wantAll(t, "smtplib to submission", out, "235 ", "submitted with SMTPUTF8")
	if msgs := s.messages("alice@example.com", "INBOX"); len(msgs) != 1 || !strings.Contains(msgs[0], "with UTF8SMTPSA id") {
		t.Errorf("alice's INBOX after jörg's submission: %q", msgs)
	}

	out = idn(t, "imap", s.addr("imaps"))
	wantAll(t, "imaplib", out, "UTF8=ACCEPT advertised: True", "ENABLE: OK", "utf8 mode: True",
		`"Entwürfe"`, // the folder name in UTF-8, not modified UTF-7
		// Addresses in the ENVELOPE are quoted UTF-8 strings, not literals. (Subject and
		// display names come as RFC 2047 encoded words: go-imap's ENVELOPE writer encodes them
		// for every client.)
		`NIL "jürgen" "example.net")`, `NIL "jörg" "bücher.example")`,
		"Subject: Grüße aus Köln", "From: Jürgen <jürgen@example.net>", "Schöne Grüße, Jürgen")
	if n := strings.Count(out, "LOGIN: a1 OK"); n != 2 {
		t.Errorf("%d of 2 LOGINs in UTF-8 succeeded:\n%s", n, out)
	}

	out = idn(t, "pop3", s.addr("pop3s"))
	wantAll(t, "poplib", out, "'UTF8': ['USER']", "UTF8: +OK", "PASS: +OK", "Subject: Grüße aus Köln")
}

// legacyMX is an SMTP server without SMTPUTF8 (go-smtp's, as many older servers are): it takes
// mail for any recipient and records the recipients.
type legacyMX struct {
	mu    sync.Mutex
	rcpts []string
}

func (m *legacyMX) NewSession(*smtp.Conn) (smtp.Session, error) { return &legacySession{m: m}, nil }

type legacySession struct{ m *legacyMX }

func (s *legacySession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *legacySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	s.m.rcpts = append(s.m.rcpts, to)
	s.m.mu.Unlock()
	return nil
}
func (s *legacySession) Data(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
func (s *legacySession) Reset()                 {}
func (s *legacySession) Logout() error          { return nil }

func (m *legacyMX) received() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.rcpts...)
}

func startLegacyMX(t *testing.T, addr string) *legacyMX {
	t.Helper()
	m := &legacyMX{}
	srv := smtp.NewServer(m)
	srv.Domain = "mail.old.test"
	srv.EnableSMTPUTF8 = false
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return m
}

// TestOutboundToAServerWithoutSMTPUTF8: a message to a recipient in UTF-8 at a server that does
// not offer SMTPUTF8 is not sent mangled: the sender gets a DSN that says why, and the ASCII
// recipient of the same message at that server gets it.
func TestOutboundToAServerWithoutSMTPUTF8(t *testing.T) {
	w := newWorld(t)
	if err := w.dns.Add("old.test. MX 10 mail.old.test.", "mail.old.test. A "+ipB); err != nil {
		t.Fatal(err)
	}
	old := startLegacyMX(t, net.JoinHostPort(ipB, strconv.Itoa(w.port)))
	a := w.startA()
	msg := testMessage("alice@a.test", "jürgen@old.test, anna@old.test", "an Jürgen und Anna", "hallo")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"jürgen@old.test", "anna@old.test"}, msg); err != nil {
		t.Fatal(err)
	}
	dsn := a.waitMessages(t, "alice@a.test", 1)[0]
	wantAll(t, "the DSN", dsn, "Content-Type: message/global-delivery-status", "Final-Recipient: utf-8; jürgen@old.test",
		"Status: 5.6.7", "Remote-MTA: dns; mail.old.test",
		"the receiving server mail.old.test does not support internationalised addresses (SMTPUTF8)",
		"Subject: an Jürgen und Anna")
	if strings.Contains(dsn, "anna@old.test>:") || strings.Contains(dsn, "Final-Recipient: rfc822; anna@old.test") {
		t.Errorf("the DSN names anna, who got the message:\n%s", dsn)
	}
	serverPoll.Eventually(t, "anna's copy at the old server", func() bool { return slices.Equal(old.received(), []string{"anna@old.test"}) })
}

// TestOutboundToAnInternationalisedDomain: a user sends from a UTF-8 alias to a UTF-8 address
// at an IDN domain served by another kubemail; the MX is found through the A-labels and the
// mail arrives over SMTPUTF8.
func TestOutboundToAnInternationalisedDomain(t *testing.T) {
	w := newWorld(t)
	if err := w.dns.Add("xn--bcher-kva.test. MX 10 mail.b.test."); err != nil {
		t.Fatal(err)
	}
	specA := w.specA()
	specA.Mailboxes[0].Aliases = []string{"alice.müller@a.test"}
	a := startServerSpec(t, specA, w.serverOpts(ipA, "mail.a.test", srsKeyA))
	b := startServerSpec(t, &dirspec.Spec{
		Domains:   []dirspec.DomainSpec{{Name: "bücher.test"}},
		Mailboxes: []dirspec.MailboxSpec{{Address: "jürgen@bücher.test", PasswordHash: hashPW(t, "x")}},
	}, w.serverOpts(ipB, "mail.b.test", srsKeyB))
	msg := testMessage("Alice Müller <alice.müller@a.test>", "jürgen@bücher.test", "Grüße", "hallo Jürgen")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice.müller@a.test", []string{"JÜRGEN@bücher.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := b.waitMessages(t, storeName("jürgen")+"@xn--bcher-kva.test", 1)[0]
	wantAll(t, "the message at bücher.test", got, "Return-Path: <alice.müller@a.test>", "with UTF8SMTPS id",
		"Subject: Grüße", "DKIM-Signature:", "dkim=pass")
}
