package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/store"
)

func TestCapabilitiesFollowTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	c.expect("CAPA", "+OK")
	plain := c.multi()
	for _, want := range []string{"TOP", "UIDL", "RESP-CODES", "PIPELINING", "STLS", "EXPIRE NEVER", "LOGIN-DELAY 0", "IMPLEMENTATION kubemail"} {
		if !slices.Contains(plain, want) {
			t.Errorf("CAPA before TLS lacks %q: %q", want, plain)
		}
	}
	for _, unwanted := range []string{"USER", "SASL PLAIN"} {
		if slices.Contains(plain, unwanted) {
			t.Errorf("CAPA before TLS offers %q", unwanted)
		}
	}
	c.stls()
	c.expect("CAPA", "+OK")
	secure := c.multi()
	if !slices.Contains(secure, "USER") || !slices.Contains(secure, "SASL PLAIN") || slices.Contains(secure, "STLS") {
		t.Errorf("CAPA after STLS: %q", secure)
	}
	c.expect("STLS", "-ERR")

	// Without a certificate there is no STLS to offer.
	noTLS := newEnv(t, envOptions{noTLS: true})
	c = dial(t, noTLS.addr)
	c.expect("CAPA", "+OK")
	if caps := c.multi(); slices.Contains(caps, "STLS") || slices.Contains(caps, "USER") {
		t.Errorf("CAPA without TLS configured: %q", caps)
	}
	c.expect("STLS", "-ERR")
	c.expect("USER "+alice, "-ERR [AUTH] TLS required")
}

func TestLoginRefusedBeforeTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	for _, line := range []string{"USER " + alice, "PASS " + password, "AUTH PLAIN " + plainResp("", alice, password), "AUTH"} {
		if got := c.cmd(line); got != "-ERR [AUTH] TLS required; use STLS" {
			t.Errorf("%s before TLS: %q", strings.Fields(line)[0], got)
		}
	}
	if n := e.counter("auth_attempts_total", "protocol=pop3", "result=success") + e.counter("auth_attempts_total", "protocol=pop3", "result=failure"); n != 0 {
		t.Errorf("%v logins checked on a plain connection", n)
	}
}

func TestWrongUserAndWrongPasswordLookTheSame(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	c.stls()
	wrongPass := c.login(alice, "not the password")
	noUser := c.login("nobody@example.com", password)
	badDomain := c.login("alice@elsewhere.net", password)
	if wrongPass != "-ERR [AUTH] Authentication failed" || noUser != wrongPass || badDomain != wrongPass {
		t.Errorf("wrong password %q, unknown user %q, unknown domain %q", wrongPass, noUser, badDomain)
	}
	if got := c.cmd("AUTH PLAIN " + plainResp("", "nobody@example.com", password)); got != wrongPass {
		t.Errorf("AUTH for an unknown user: %q", got)
	}
	// PASS needs a USER right before it.
	c.expect("PASS "+password, "-ERR")
	c.expect("USER "+alice, "+OK")
	c.expect("CAPA", "+OK")
	c.multi()
	c.expect("PASS "+password, "-ERR")
	if got := c.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login after failures: %q", got)
	}
}

func plainResp(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestAuthPlain(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	c := dial(t, e.addr)
	c.stls()

	c.expect("AUTH", "+OK")
	if mechs := c.multi(); !slices.Equal(mechs, []string{"PLAIN"}) {
		t.Errorf("mechanisms %q", mechs)
	}
	c.expect("AUTH CRAM-MD5", "-ERR")
	c.expect("AUTH PLAIN !!!", "-ERR")
	c.expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("no separators")), "-ERR")
	c.expect("AUTH PLAIN "+plainResp(bob, alice, password), "-ERR [AUTH] Authentication failed")
	c.expect("AUTH PLAIN =", "-ERR")

	// The continuation, cancelled.
	if got := c.cmd("AUTH PLAIN"); got != "+ " {
		t.Fatalf("AUTH PLAIN without initial response: %q", got)
	}
	c.expect("*", "-ERR")

	// The continuation, with a wrong and then a right password.
	c.expect("AUTH PLAIN", "+ ")
	c.expect(plainResp("", alice, "wrong"), "-ERR [AUTH] Authentication failed")
	c.expect("AUTH PLAIN", "+ ")
	c.expect(plainResp(alice, alice, password), "+OK")
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 1 %d", len(msgPlain)) {
		t.Errorf("STAT: %q", got)
	}
	c.expect("AUTH PLAIN "+plainResp("", alice, password), "-ERR")

	// The initial response, in another session.
	c.expect("QUIT", "+OK")
	c = dial(t, e.addr)
	c.stls()
	c.expect("AUTH PLAIN "+plainResp("", alice, password), "+OK")
}

func TestMalformedLinesKeepTheSessionGoing(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	for _, line := range []string{
		strings.Repeat("A", 5000),
		"LIST " + strings.Repeat("9", 600),
		"\x00\x01\xff garbage",
		"",
		"FROBNICATE",
		"XYZZY 1",
		"STAT",      // not before login
		"CAPA more", // takes no arguments
		"QUIT now",
	} {
		if got := c.cmd(line); !strings.HasPrefix(got, "-ERR ") {
			t.Errorf("%.20q: got %q", line, got)
		}
	}
	// Bare LF line endings are accepted.
	c.conn.Write([]byte("CAPA\n"))
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("CAPA after garbage: %q", got)
	}
	c.multi()
	c.stls()
	if got := c.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login after garbage: %q", got)
	}
	for _, line := range []string{"RETR", "RETR 1 2", "RETR x", "RETR -1", "TOP 1", "LIST 1 2", "DELE", "USER " + bob, "STLS"} {
		if got := c.cmd(line); !strings.HasPrefix(got, "-ERR ") {
			t.Errorf("%q: got %q", line, got)
		}
	}
	c.expect("NOOP", "+OK")
	if n := e.counter("command_errors_total", "protocol=pop3", "command=unknown"); n < 5 {
		t.Errorf("command_errors_total{command=unknown} = %v", n)
	}
}

func TestTooManyErrorsHangUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	for i := 1; i < maxErrors; i++ {
		c.expect("BOGUS", "-ERR Unknown command")
	}
	c.send("BOGUS")
	c.expectClosed("-ERR Too many errors, closing connection")
}

func TestFloodWithoutLineEndHangsUp(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	go c.conn.Write([]byte(strings.Repeat("x", 2*maxDiscard)))
	c.expectClosed()
}

func TestTransaction(t *testing.T) {
	e := newEnv(t, envOptions{})
	stored := e.deliver(alice, msgPlain, msgDotty, msgLong)
	e.deliver(bob, msgPlain)
	total := len(msgPlain) + len(msgDotty) + len(msgLong)
	st := e.inbox(alice).Status()
	uidl := func(i int) string { return fmt.Sprintf("%d.%d", st.UIDValidity, stored[i].UID) }

	c := loggedIn(t, e, alice)
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT: %q", got)
	}
	c.expect("LIST", "+OK")
	if got, want := c.multi(), []string{fmt.Sprintf("1 %d", len(msgPlain)), fmt.Sprintf("2 %d", len(msgDotty)), fmt.Sprintf("3 %d", len(msgLong))}; !slices.Equal(got, want) {
		t.Errorf("LIST: %q, want %q", got, want)
	}
	if got := c.cmd("LIST 2"); got != fmt.Sprintf("+OK 2 %d", len(msgDotty)) {
		t.Errorf("LIST 2: %q", got)
	}
	c.expect("UIDL", "+OK")
	if got, want := c.multi(), []string{"1 " + uidl(0), "2 " + uidl(1), "3 " + uidl(2)}; !slices.Equal(got, want) {
		t.Errorf("UIDL: %q, want %q", got, want)
	}
	if got := c.cmd("UIDL 3"); got != "+OK 3 "+uidl(2) {
		t.Errorf("UIDL 3: %q", got)
	}

	// RETR sends the exact octets, dot-stuffed.
	if got := c.cmd("RETR 2"); got != fmt.Sprintf("+OK %d octets", len(msgDotty)) {
		t.Errorf("RETR 2: %q", got)
	}
	wantDotty := "From: carol@example.org\r\nSubject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nafter a lone dot\r\nlast\r\n.\r\n"
	if got := c.raw(); got != wantDotty {
		t.Errorf("RETR 2 sent %q, want %q", got, wantDotty)
	}
	c.expect("TOP 3 1", "+OK")
	if got, want := c.raw(), "From: carol@example.org\r\nSubject: three\r\n\r\nbody 1\r\n.\r\n"; got != want {
		t.Errorf("TOP 3 1 sent %q, want %q", got, want)
	}
	c.expect("TOP 2 0", "+OK")
	if got, want := c.raw(), "From: carol@example.org\r\nSubject: dots\r\n\r\n.\r\n"; got != want {
		t.Errorf("TOP 2 0 sent %q, want %q", got, want)
	}
	if n := e.counter("sent_bytes_total", "protocol=pop3"); n < float64(len(wantDotty)) {
		t.Errorf("sent_bytes_total = %v", n)
	}
	// A download counts as reading for IMAP.
	msgs, _ := e.inbox(alice).Messages()
	if !slices.Contains(msgs[1].Flags, `\Seen`) || slices.Contains(msgs[2].Flags, `\Seen`) {
		t.Errorf("flags after RETR 2 and TOP 3: %q, %q", msgs[1].Flags, msgs[2].Flags)
	}

	// A deleted message is gone from every command, RSET brings it back.
	c.expect("DELE 1", "+OK")
	for _, line := range []string{"DELE 1", "RETR 1", "TOP 1 0", "LIST 1", "UIDL 1"} {
		c.expect(line, "-ERR")
	}
	for _, line := range []string{"RETR 0", "RETR 4", "LIST 99999999999999", "TOP 2 x"} {
		c.expect(line, "-ERR")
	}
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 2 %d", total-len(msgPlain)) {
		t.Errorf("STAT after DELE: %q", got)
	}
	c.expect("LIST", "+OK")
	if got := c.multi(); len(got) != 2 || !strings.HasPrefix(got[0], "2 ") {
		t.Errorf("LIST after DELE: %q", got)
	}
	c.expect("RSET", "+OK")
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT after RSET: %q", got)
	}

	// Deletions happen at QUIT, and the other UIDLs stay.
	c.expect("DELE 2", "+OK")
	if n := e.inbox(alice).Status().Messages; n != 3 {
		t.Errorf("%d messages before QUIT", n)
	}
	c.expect("QUIT", "+OK")
	c.expectClosed()
	if n := e.inbox(alice).Status().Messages; n != 2 {
		t.Errorf("%d messages after QUIT, want 2", n)
	}
	c = loggedIn(t, e, alice)
	c.expect("UIDL", "+OK")
	if got, want := c.multi(), []string{"1 " + uidl(0), "2 " + uidl(2)}; !slices.Equal(got, want) {
		t.Errorf("UIDL in the next session: %q, want %q", got, want)
	}
	if n := e.inbox(bob).Status().Messages; n != 1 {
		t.Errorf("bob's INBOX changed: %d messages", n)
	}
	if n, errs := e.counter("commands_total", "protocol=pop3", "command=RETR"), e.counter("command_errors_total", "protocol=pop3", "command=RETR"); n != 4 || errs != 3 {
		t.Errorf("RETR: commands_total = %v, command_errors_total = %v; want 4 and 3", n, errs)
	}
	if n := e.counter("sessions_total", "protocol=pop3"); n != 2 {
		t.Errorf("sessions_total = %v", n)
	}
}

func TestPipelining(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain, msgDotty)
	c := loggedIn(t, e, alice)
	c.send("STAT\r\nLIST 1\r\nRETR 2\r\nBOGUS\r\nUIDL\r\nNOOP")
	if got := c.line(); got != fmt.Sprintf("+OK 2 %d", len(msgPlain)+len(msgDotty)) {
		t.Errorf("STAT: %q", got)
	}
	if got := c.line(); got != fmt.Sprintf("+OK 1 %d", len(msgPlain)) {
		t.Errorf("LIST 1: %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Errorf("RETR 2: %q", got)
	}
	if got := c.raw(); !strings.HasSuffix(got, "\r\nlast\r\n.\r\n") {
		t.Errorf("RETR 2 body: %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("BOGUS: %q", got)
	}
	if got := c.line(); !strings.HasPrefix(got, "+OK") {
		t.Errorf("UIDL: %q", got)
	}
	if got := c.multi(); len(got) != 2 {
		t.Errorf("UIDL lines: %q", got)
	}
	if got := c.line(); got != "+OK" {
		t.Errorf("NOOP: %q", got)
	}
}

func TestListIsFrozenAtLogin(t *testing.T) {
	e := newEnv(t, envOptions{})
	stored := e.deliver(alice, msgPlain, msgDotty)
	c := loggedIn(t, e, alice)
	e.deliver(alice, msgLong)
	// Another client (IMAP, say) removes message 1 meanwhile.
	if _, err := e.inbox(alice).Expunge([]uint32{stored[0].UID}); err != nil {
		t.Fatal(err)
	}
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 2 %d", len(msgPlain)+len(msgDotty)) {
		t.Errorf("STAT: %q", got)
	}
	c.expect("RETR 1", "-ERR")
	c.expect("TOP 1 0", "-ERR")
	c.expect("RETR 2", "+OK")
	c.raw()
	c.expect("RETR 3", "-ERR")
	c.expect("DELE 1", "+OK")
	c.expect("DELE 2", "+OK")
	c.expect("QUIT", "+OK")
	c.expectClosed()

	c = loggedIn(t, e, alice)
	if got := c.cmd("STAT"); got != fmt.Sprintf("+OK 1 %d", len(msgLong)) {
		t.Errorf("STAT in the next session: %q", got)
	}
}

func TestOneSessionPerMaildrop(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	first := loggedIn(t, e, alice)

	second := dialTLS(t, e.tlsAddr)
	if got := second.login(alice, password); got != "-ERR [IN-USE] Mailbox is locked by another session" {
		t.Fatalf("second login: %q", got)
	}
	// Another mailbox is not affected, and the refused session may try again.
	loggedIn(t, e, bob)
	first.expect("QUIT", "+OK")
	// Free as soon as QUIT is answered: a client that reconnects at once must get in.
	release, ok := maildropLocks.acquire(mustMailbox(t, e.store, alice))
	if !ok {
		t.Fatal("the maildrop is still locked after QUIT was answered")
	}
	release()
	if got := second.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login right after the first session quit: %q", got)
	}

	// A client that vanishes without QUIT frees the maildrop too, and deletes nothing.
	second.expect("DELE 1", "+OK")
	second.conn.Close()
	testutil.Eventually(t, "the maildrop to be unlocked", func() bool {
		c := dialTLS(t, e.tlsAddr)
		defer c.conn.Close()
		return strings.HasPrefix(c.login(alice, password), "+OK")
	})
	if n := e.inbox(alice).Status().Messages; n != 1 {
		t.Errorf("%d messages after a session ended without QUIT, want 1", n)
	}
}

func TestImplicitTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	c := dialTLS(t, e.tlsAddr)
	c.expect("CAPA", "+OK")
	if caps := c.multi(); slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA on the implicit-TLS port: %q", caps)
	}
	c.expect("STLS", "-ERR")
	if got := c.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	c.expect("RETR 1", "+OK")
	if got := c.raw(); got != msgPlain+".\r\n" {
		t.Errorf("RETR 1: %q", got)
	}
}

func TestWrappedTLSConnections(t *testing.T) {
	e := newEnv(t, envOptions{hideTLS: true})
	c := dialTLS(t, e.tlsAddr)
	c.expect("CAPA", "+OK")
	if caps := c.multi(); slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA on a wrapped TLS connection: %q", caps)
	}
	if got := c.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
}

func TestThrottledLogins(t *testing.T) {
	e := newEnv(t, envOptions{limiter: auth.NewLimiter(auth.LimiterConfig{FreeFailures: 100, MaxAccountFailures: 2})})
	c := dial(t, e.addr)
	c.stls()
	c.login(alice, "wrong")
	c.login(alice, "wrong")
	if got := c.login(alice, password); got != "-ERR [SYS/TEMP] Too many failed logins, try again later" {
		t.Errorf("login after too many failures: %q", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, envOptions{idle: 300 * time.Millisecond})
	e.deliver(alice, msgPlain)
	c := loggedIn(t, e, alice)
	c.expect("DELE 1", "+OK")
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("closed after %s, before the idle timeout", d)
	}
	// RFC 1939: a timeout is no QUIT; nothing is deleted.
	if n := e.inbox(alice).Status().Messages; n != 1 {
		t.Errorf("%d messages after the idle timeout, want 1", n)
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	idle := loggedIn(t, e, alice)
	idle.expect("DELE 1", "+OK")
	fresh := dial(t, e.addr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range 2 {
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	}
	idle.expectClosed("-ERR [SYS/TEMP] Server shutting down, try again later")
	fresh.expectClosed("-ERR [SYS/TEMP] Server shutting down, try again later")
	if n := e.inbox(alice).Status().Messages; n != 1 {
		t.Errorf("%d messages after shutdown, want 1: a shutdown is no QUIT", n)
	}
	if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts after Shutdown")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestCloseEndsSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := loggedIn(t, e, alice)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
	for range 2 {
		if err := <-e.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	}
	// The lock went with the session.
	testutil.Eventually(t, "the maildrop lock to be released", func() bool {
		release, ok := maildropLocks.acquire(mustMailbox(t, e.store, alice))
		if ok {
			release()
		}
		return ok
	})
}

func mustMailbox(t *testing.T, st *store.Store, address string) *store.Mailbox {
	t.Helper()
	m, err := st.Mailbox(address)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// RFC 6856: UTF8 is offered (with USER: UTF-8 names in USER and PASS), accepted before login
// and refused after it.
func TestUTF8Command(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := dial(t, e.addr)
	c.expect("CAPA", "+OK")
	if caps := c.multi(); !slices.Contains(caps, "UTF8 USER") {
		t.Errorf("CAPA lacks UTF8 USER: %q", caps)
	}
	c.expect("UTF8", "+OK")
	c.stls()
	c.expect("UTF8", "+OK")
	if got := c.login(alice, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login after UTF8: %q", got)
	}
	c.expect("UTF8", "-ERR")
}

// EndSessions ends the sessions that have the maildrop of the mailboxes it names (no UPDATE:
// messages marked for deletion stay); other sessions go on.
func TestEndSessionsOfOneMailbox(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	e.deliver(bob, msgPlain)
	moving := loggedIn(t, e, alice)
	moving.expect("DELE 1", "+OK")
	other := loggedIn(t, e, bob)
	if n := e.srv.EndSessions(func(addr string) bool { return addr == alice }, "Mailbox moving, try again in a moment"); n != 1 {
		t.Errorf("EndSessions: %d sessions of alice, want 1", n)
	}
	moving.expectClosed("-ERR [SYS/TEMP] Mailbox moving, try again in a moment")
	other.expect("STAT", "+OK 1 ")
	if n := e.inbox(alice).Status().Messages; n != 1 {
		t.Errorf("%d messages of alice after her session was ended, want 1: no UPDATE", n)
	}
	testutil.Eventually(t, "alice's session to be gone", func() bool {
		return e.srv.EndSessions(func(addr string) bool { return addr == alice }, "again") == 0
	})
}
