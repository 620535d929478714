package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// mx is an in-process SMTP server that records what it receives.
type mx struct {
	addr  string
	roots *x509.CertPool

	mu      sync.Mutex
	conns   map[string]bool // client addresses seen
	helos   []string
	tls     []bool
	got     []received
	authed  []string
	reject  map[string]*smtp.SMTPError
	needTLS bool
	auth    map[string]string // user -> password; nil: no AUTH offered
	noTLS   bool              // STARTTLS not offered
	noUTF8  bool              // SMTPUTF8 not offered
	wire    []byte            // everything clients sent, as read off the socket
}

// recordingConn copies what the client sends into its mx.
type recordingConn struct {
	net.Conn
	m *mx
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.mu.Lock()
	c.m.wire = append(c.m.wire, p[:n]...)
	c.m.mu.Unlock()
	return n, err
}

type recordingListener struct {
	net.Listener
	m *mx
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{Conn: c, m: l.m}, nil
}

// sent is what clients sent so far.
func (m *mx) sent() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.wire)
}

type received struct {
	from  string
	rcpts []string
	data  string
}

type mxBackend struct{ m *mx }

func (b mxBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	b.m.mu.Lock()
	if b.m.conns == nil {
		b.m.conns = map[string]bool{}
	}
	b.m.conns[c.Conn().RemoteAddr().String()] = true
	b.m.mu.Unlock()
	return &mxSession{m: b.m, c: c}, nil
}

type mxSession struct {
	m     *mx
	c     *smtp.Conn
	from  string
	rcpts []string
	user  string
}

func (s *mxSession) AuthMechanisms() []string {
	if s.m.auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mxSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if s.m.auth[user] != pass || pass == "" {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.m.auth != nil && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	s.m.mu.Lock()
	s.m.helos = append(s.m.helos, s.c.Hostname())
	_, isTLS := s.c.TLSConnectionState()
	s.m.tls = append(s.m.tls, isTLS)
	s.m.authed = append(s.m.authed, s.user)
	s.m.mu.Unlock()
	return nil
}

func (s *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.m.reject[to]; e != nil {
		return e
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *mxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.got = append(s.m.got, received{from: s.from, rcpts: s.rcpts, data: string(b)})
	s.m.mu.Unlock()
	return nil
}

func (s *mxSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *mxSession) Logout() error { return nil }

// startMX listens on ip:port (port 0 picks one) with STARTTLS on a certificate for host.
func startMX(t *testing.T, ip string, port int, host string, tweak func(*mx)) *mx {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Certificate([]string{host}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	parsed, _ := x509.ParseCertificate(block.Bytes)
	roots := x509.NewCertPool()
	roots.AddCert(parsed)
	m := &mx{roots: roots, reject: map[string]*smtp.SMTPError{}}
	if tweak != nil {
		tweak(m)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	srv := smtp.NewServer(mxBackend{m})
	srv.Domain = host
	if !m.noTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	srv.AllowInsecureAuth = m.noTLS
	srv.EnableSMTPUTF8 = !m.noUTF8
	go srv.Serve(recordingListener{Listener: ln, m: m})
	t.Cleanup(func() { srv.Close() })
	return m
}

func (m *mx) port() int {
	_, p, _ := net.SplitHostPort(m.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (m *mx) received() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.got...)
}

func newTransport(t *testing.T, dns *dnstest.Server, port int, tweak func(*Config)) *Transport {
	t.Helper()
	r, err := dnsresolve.New(dns.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Hostname: "mail.sender.test", Resolver: r, MXPort: port, ConnectTimeout: 2 * time.Second,
		CommandTimeout: 5 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	tr := New(cfg)
	t.Cleanup(tr.Close)
	return tr
}

func startDNS(t *testing.T, records ...string) *dnstest.Server {
	t.Helper()
	d, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.Add(records...); err != nil {
		t.Fatal(err)
	}
	return d
}

const msg = "From: a@sender.test\r\nTo: b@dest.test\r\nSubject: hi\r\n\r\nhello\r\n"

func deliver(tr *Transport, from string, rcpts ...string) []queue.Result {
	return tr.Deliver(context.Background(), &queue.Delivery{ID: "1", From: from, Recipients: rcpts, Data: []byte(msg)})
}

func TestMXPreferenceAndFallbackToTheNextHost(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "mx2.dest.test", nil)
	// The preferred MX has an address where nothing listens: the next one gets the mail.
	dns := startDNS(t, "dest.test. MX 20 mx2.dest.test.", "dest.test. MX 10 mx1.dest.test.",
		"mx1.dest.test. A 127.0.0.55", "mx2.dest.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), nil)
	res := deliver(tr, "a@sender.test", "b@dest.test", "c@dest.test")
	if len(res) != 2 || !res[0].Delivered || !res[1].Delivered {
		t.Fatalf("results %+v", res)
	}
	got := m.received()
	if len(got) != 1 || len(got[0].rcpts) != 2 || got[0].from != "a@sender.test" || got[0].data != msg {
		t.Fatalf("the MX received %+v; want one transaction with both recipients", got)
	}
	if res[0].RemoteMTA != "mx2.dest.test" {
		t.Errorf("RemoteMTA %q", res[0].RemoteMTA)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.helos[0] != "mail.sender.test" {
		t.Errorf("EHLO %q, want our hostname", m.helos[0])
	}
	if !m.tls[0] {
		t.Error("STARTTLS was offered but not used")
	}
	if res[0].TLS != "unverified" {
		t.Errorf("TLS %q: a self-signed certificate should be recorded as unverified", res[0].TLS)
	}
}

func TestVerifiedTLSAndConnectionReuse(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "mx.dest.test", nil)
	dns := startDNS(t, "dest.test. MX 10 mx.dest.test.", "mx.dest.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), func(c *Config) { c.RootCAs = m.roots })
	for i := 0; i < 3; i++ {
		res := deliver(tr, "a@sender.test", "b@dest.test")
		if !res[0].Delivered || res[0].TLS != "verified" {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if len(m.received()) != 3 {
		t.Fatalf("received %d messages", len(m.received()))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.conns) != 1 {
		t.Errorf("%d connections for 3 messages to one host; want the session reused", len(m.conns))
	}
}

func TestImplicitMXNullMXAndDNSFailures(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "dest.test", nil)
	dns := startDNS(t, "dest.test. A 127.0.0.1", "nullmx.test. MX 0 .", "broken.test. MX 10 mx.broken.test.",
		"noaddr.test. TXT \"v=spf1 -all\"")
	dns.Fail("broken.test", true)
	tr := newTransport(t, dns, m.port(), nil)

	if res := deliver(tr, "a@sender.test", "b@dest.test"); !res[0].Delivered {
		t.Errorf("a domain with only an A record is its own MX: %+v", res)
	}
	cases := []struct {
		rcpt      string
		permanent bool
		status    string
	}{
		{"x@nullmx.test", true, "5.1.10"},
		{"x@nosuch.test", true, "5.1.2"},
		{"x@noaddr.test", true, "5.1.2"},
		{"x@broken.test", false, "4.4.3"},
	}
	for _, c := range cases {
		res := deliver(tr, "a@sender.test", c.rcpt)
		if len(res) != 1 || res[0].Delivered || res[0].Permanent != c.permanent || res[0].Status != c.status {
			t.Errorf("%s: %+v, want permanent=%v status %s", c.rcpt, res, c.permanent, c.status)
		}
	}
}

func TestPerRecipientReplies(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "mx.dest.test", func(m *mx) {
		m.reject["nobody@dest.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		m.reject["full@dest.test"] = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
	})
	dns := startDNS(t, "dest.test. MX 10 mx.dest.test.", "mx.dest.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), nil)
	res := deliver(tr, "a@sender.test", "b@dest.test", "nobody@dest.test", "full@dest.test")
	byRcpt := map[string]queue.Result{}
	for _, r := range res {
		byRcpt[r.Recipient] = r
	}
	if !byRcpt["b@dest.test"].Delivered {
		t.Errorf("b: %+v", byRcpt["b@dest.test"])
	}
	if r := byRcpt["nobody@dest.test"]; r.Delivered || !r.Permanent || r.String() != "550 5.1.1 No such user" {
		t.Errorf("nobody: %+v", r)
	}
	if r := byRcpt["full@dest.test"]; r.Delivered || r.Permanent || r.Code != 452 {
		t.Errorf("full: %+v", r)
	}
	if got := m.received(); len(got) != 1 || len(got[0].rcpts) != 1 {
		t.Errorf("received %+v", got)
	}
}

func TestUnreachableIsTemporary(t *testing.T) {
	dns := startDNS(t, "dest.test. MX 10 mx.dest.test.", "mx.dest.test. A 127.0.0.55")
	tr := newTransport(t, dns, 2, nil)
	res := deliver(tr, "a@sender.test", "b@dest.test")
	if res[0].Delivered || res[0].Permanent || res[0].Status != "4.4.1" {
		t.Fatalf("%+v", res)
	}
}

func writeSecret(t *testing.T, name, value string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSmarthostWithAuthAndRequiredTLS(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "relay.test", func(m *mx) { m.auth = map[string]string{"relayuser": "s3cret"} })
	dns := startDNS(t) // never asked
	relay := &Relay{Host: "relay.test", Port: m.port(), UsernameFile: writeSecret(t, "user", "relayuser"),
		PasswordFile: writeSecret(t, "pass", "s3cret"), RootCAs: m.roots}
	// relay.test resolves through the system; dial the loopback address directly instead.
	relay.Host = "127.0.0.1"
	tr := newTransport(t, dns, 0, func(c *Config) { c.Relay = relay })
	// The certificate names relay.test, not 127.0.0.1: verification must fail, and TLS is required.
	res := deliver(tr, "a@sender.test", "x@anywhere.test")
	if res[0].Delivered || res[0].Permanent {
		t.Fatalf("a smarthost whose certificate does not verify got the mail: %+v", res)
	}
	m2 := startMX(t, "127.0.0.1", 0, "127.0.0.1", func(m *mx) { m.auth = map[string]string{"relayuser": "s3cret"} })
	relay.Port, relay.RootCAs = m2.port(), m2.roots
	res = deliver(tr, "a@sender.test", "x@anywhere.test", "y@elsewhere.test")
	if !res[0].Delivered || !res[1].Delivered {
		t.Fatalf("%+v", res)
	}
	m2.mu.Lock()
	if m2.authed[0] != "relayuser" || !m2.tls[0] {
		t.Errorf("smarthost session: user %q, TLS %v", m2.authed[0], m2.tls[0])
	}
	m2.mu.Unlock()

	// Wrong password: a temporary failure (the operator fixes the Secret, the queue retries).
	os.WriteFile(relay.PasswordFile, []byte("wrong"), 0o600)
	tr.Close()
	tr = newTransport(t, dns, 0, func(c *Config) { c.Relay = relay })
	res = deliver(tr, "a@sender.test", "x@anywhere.test")
	if res[0].Delivered || res[0].Permanent || !strings.Contains(res[0].Text, "credentials") {
		t.Fatalf("bad credentials: %+v", res)
	}
}

func TestCancelledDeliveryIsTemporary(t *testing.T) {
	dns := startDNS(t, "dest.test. MX 10 mx.dest.test.", "mx.dest.test. A 127.0.0.1")
	// A server that accepts the connection and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	tr := newTransport(t, dns, port, func(c *Config) { c.CommandTimeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := tr.Deliver(ctx, &queue.Delivery{From: "a@sender.test", Recipients: []string{"b@dest.test"}, Data: []byte(msg)})
	if time.Since(start) > 10*time.Second || res[0].Delivered || res[0].Permanent {
		t.Fatalf("after %v: %+v", time.Since(start), res)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("context should have expired")
	}
}

func TestSmarthostWithoutTLS(t *testing.T) {
	dns := startDNS(t) // never asked
	// A smarthost that offers STARTTLS, and one that does not offer it at all: with PlainText
	// both get the mail in plain text and neither sees a STARTTLS command.
	for _, offersTLS := range []bool{true, false} {
		m := startMX(t, "127.0.0.1", 0, "127.0.0.1", func(m *mx) { m.noTLS = !offersTLS })
		tr := newTransport(t, dns, 0, func(c *Config) {
			c.Relay = &Relay{Host: "127.0.0.1", Port: m.port(), PlainText: true}
		})
		res := deliver(tr, "a@sender.test", "x@anywhere.test", "y@elsewhere.test")
		if len(res) != 2 || !res[0].Delivered || !res[1].Delivered || res[0].TLS != "none" {
			t.Fatalf("STARTTLS offered %v: %+v", offersTLS, res)
		}
		if got := m.received(); len(got) != 1 || len(got[0].rcpts) != 2 {
			t.Fatalf("STARTTLS offered %v: the smarthost received %+v", offersTLS, got)
		}
		if sent := strings.ToUpper(m.sent()); strings.Contains(sent, "STARTTLS") || !strings.Contains(sent, "EHLO MAIL.SENDER.TEST") {
			t.Errorf("STARTTLS offered %v: the client sent:\n%s", offersTLS, m.sent())
		}
	}

	// Without TLS the transport refuses to log in, even if asked to, and sends no password.
	m := startMX(t, "127.0.0.1", 0, "127.0.0.1", func(m *mx) {
		m.noTLS = true
		m.auth = map[string]string{"relayuser": "s3cret"}
	})
	tr := newTransport(t, dns, 0, func(c *Config) {
		c.Relay = &Relay{Host: "127.0.0.1", Port: m.port(), PlainText: true,
			UsernameFile: writeSecret(t, "user", "relayuser"), PasswordFile: writeSecret(t, "pass", "s3cret")}
	})
	res := deliver(tr, "a@sender.test", "x@anywhere.test")
	if res[0].Delivered || res[0].Permanent || !strings.Contains(res[0].Text, "without TLS") {
		t.Fatalf("credentials over plain text: %+v", res)
	}
	if sent := strings.ToUpper(m.sent()); strings.Contains(sent, "AUTH") {
		t.Errorf("the client tried to log in without TLS:\n%s", m.sent())
	}
}

func TestSessionsAreNotSharedBetweenMXHostsOfOneAddress(t *testing.T) {
	// One server answers for both domains' MX hosts; its certificate names only mx.a.test.
	m := startMX(t, "127.0.0.1", 0, "mx.a.test", func(m *mx) {
		m.reject["nobody@b.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	})
	dns := startDNS(t, "a.test. MX 10 mx.a.test.", "mx.a.test. A 127.0.0.1",
		"b.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), func(c *Config) { c.RootCAs = m.roots })
	a := deliver(tr, "x@sender.test", "y@a.test")
	b := deliver(tr, "x@sender.test", "y@b.test", "nobody@b.test")
	if len(a) != 1 || !a[0].Delivered || a[0].RemoteMTA != "mx.a.test" || a[0].TLS != "verified" {
		t.Errorf("a.test: %+v, want delivered by mx.a.test with a verified certificate", a)
	}
	for _, r := range b {
		if r.RemoteMTA != "mx.b.test" || r.TLS != "unverified" {
			t.Errorf("b.test: %+v, want answered by mx.b.test, whose name the certificate does not verify", r)
		}
	}
	if len(b) != 2 || !b[0].Delivered || b[1].Delivered || !b[1].Permanent {
		t.Errorf("b.test results %+v", b)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.conns) != 2 {
		t.Errorf("%d connections for two MX host names, want one each", len(m.conns))
	}
}

func TestResultsDoNotRevealOurAddresses(t *testing.T) {
	dns := startDNS(t, "broken.test. MX 10 mx.broken.test.", "down.test. MX 10 mx.down.test.", "mx.down.test. A 127.0.0.55")
	dns.Fail("broken.test", true)
	// 127.0.0.2 stands for the pod's own address, the resolver's port for the cluster DNS.
	tr := newTransport(t, dns, 2, func(c *Config) { c.SourceIP = net.ParseIP("127.0.0.2") })
	for _, rcpt := range []string{"x@broken.test", "x@down.test"} {
		res := deliver(tr, "a@sender.test", rcpt)
		if len(res) != 1 || res[0].Delivered || res[0].Permanent || res[0].Text == "" {
			t.Fatalf("%s: %+v, want a temporary failure", rcpt, res)
		}
		if _, port, _ := net.SplitHostPort(dns.Addr); strings.Contains(res[0].Text, port) || strings.Contains(res[0].Text, "127.0.0.2") {
			t.Errorf("%s: %q names the resolver or the local address", rcpt, res[0].Text)
		}
	}
}

func TestDeliveredResultStatesTheStatusCodeOnce(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "mx.dest.test", nil)
	dns := startDNS(t, "dest.test. MX 10 mx.dest.test.", "mx.dest.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), nil)
	res := deliver(tr, "a@sender.test", "b@dest.test")
	if !res[0].Delivered || res[0].Status != "2.0.0" || strings.Count(res[0].String(), "2.0.0") != 1 {
		t.Errorf("%q (status %q), want 250 2.0.0 and the server's text once", res[0].String(), res[0].Status)
	}
}

func TestSplitEnhancedCode(t *testing.T) {
	for _, c := range []struct{ in, status, rest string }{
		{"2.0.0 Ok: queued as 12345", "2.0.0", "Ok: queued as 12345"},
		{"2.6.0 <id@x> Queued mail for delivery", "2.6.0", "<id@x> Queued mail for delivery"},
		{"Ok", "2.0.0", "Ok"},
		{"2.0 Ok", "2.0.0", "2.0 Ok"},
		{"1.2.3.4 is fine", "2.0.0", "1.2.3.4 is fine"},
		{"2.0.0", "2.0.0", ""},
	} {
		if s, r := splitEnhancedCode(c.in, "2.0.0"); s != c.status || r != c.rest {
			t.Errorf("%q: %q %q, want %q %q", c.in, s, r, c.status, c.rest)
		}
	}
}
