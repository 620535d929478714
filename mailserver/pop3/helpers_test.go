package pop3

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/internal/servertest"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

const (
	alice    = servertest.Alice
	bob      = servertest.Bob
	password = "correct horse battery"
)

// Messages as stored (CRLF). dotty has the lines that dot-stuffing exists for.
const (
	msgPlain = "From: carol@example.org\r\nTo: alice@example.com\r\nSubject: one\r\n\r\nHello Alice.\r\n"
	msgDotty = "From: carol@example.org\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\nlast\r\n"
	msgLong  = "From: carol@example.org\r\nSubject: three\r\n\r\nbody 1\r\nbody 2\r\nbody 3\r\n"
)

type envOptions struct {
	idle    time.Duration
	limiter *auth.Limiter
	noTLS   bool // no STLS (the implicit-TLS listener still runs)
	// hideTLS wraps the implicit-TLS listener's connections in a type of its own, recognised
	// through Config.IsTLS.
	hideTLS bool
}

type wrappedConn struct{ net.Conn }

type wrappingListener struct{ net.Listener }

func (l wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// testEnv is a POP3 server on 127.0.0.1 with a plain/STLS listener and an implicit-TLS one,
// over a real store and directory.
type testEnv struct {
	t       *testing.T
	srv     *Server
	addr    string
	tlsAddr string
	store   *store.Store
	metrics *metrics.Metrics
	served  chan error
}

func newEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	m := metrics.New()
	_, authn := servertest.Accounts(t, password, 0, opts.limiter, m)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := tlstest.Loopback(t).Server
	cfg := Config{Hostname: "mail.example.com", Store: st, Auth: authn, Metrics: m, TLSConfig: tlsConfig,
		Log: log, IdleTimeout: opts.idle}
	if opts.noTLS {
		cfg.TLSConfig = nil
	}
	if opts.hideTLS {
		cfg.IsTLS = func(c net.Conn) bool { _, ok := c.(wrappedConn); return ok }
	}
	srv := NewServer(cfg)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, srv: srv, addr: plain.Addr().String(), tlsAddr: implicit.Addr().String(),
		store: st, metrics: m, served: make(chan error, 2)}
	go func() { e.served <- srv.Serve(plain) }()
	var tlsListener net.Listener = tls.NewListener(implicit, tlsConfig)
	if opts.hideTLS {
		tlsListener = wrappingListener{tlsListener}
	}
	go func() { e.served <- srv.Serve(tlsListener) }()
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return e
}

func (e *testEnv) inbox(address string) *store.Folder {
	e.t.Helper()
	box, err := e.store.Mailbox(address)
	if err != nil {
		e.t.Fatal(err)
	}
	return box.Inbox()
}

// deliver stores messages in address's INBOX and returns them as stored.
func (e *testEnv) deliver(address string, msgs ...string) []store.Message {
	e.t.Helper()
	var out []store.Message
	for _, msg := range msgs {
		m, err := e.inbox(address).Append(strings.NewReader(msg), nil, time.Time{})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// counter reads the counter with the given "name=value" labels from the registry.
func (e *testEnv) counter(name string, labels ...string) float64 {
	e.t.Helper()
	families, err := e.metrics.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kubemail_"+name {
			continue
		}
		for _, m := range f.GetMetric() {
			var have []string
			for _, l := range m.GetLabel() {
				have = append(have, l.GetName()+"="+l.GetValue())
			}
			if slices.Equal(have, slices.Sorted(slices.Values(labels))) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// client is a raw POP3 client that shows exactly what the server sends.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, conn)
}

func dialTLS(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlstest.Loopback(t).Client)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, conn)
}

func greet(t *testing.T, conn net.Conn) *client {
	t.Helper()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		c.t.Fatalf("sending %q: %v", line, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("reading a line: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.line()
}

// multi reads the lines of a multi-line answer up to the final dot, as sent (still stuffed).
func (c *client) multi() []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.line()
		if l == "." {
			return lines
		}
		lines = append(lines, l)
	}
}

// raw reads a multi-line answer's bytes as sent, the final ".\r\n" included.
func (c *client) raw() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		b.WriteString(l + "\r\n")
		if l == "." {
			return b.String()
		}
	}
}

func (c *client) expect(line, prefix string) string {
	c.t.Helper()
	got := c.cmd(line)
	if !strings.HasPrefix(got, prefix) {
		c.t.Fatalf("%s: got %q, want %q...", line, got, prefix)
	}
	return got
}

func (c *client) stls() {
	c.t.Helper()
	c.expect("STLS", "+OK")
	cfg := tlstest.Loopback(c.t).Client.Clone()
	cfg.ServerName = "127.0.0.1"
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

func (c *client) login(user, pass string) string {
	c.t.Helper()
	c.expect("USER "+user, "+OK")
	return c.cmd("PASS " + pass)
}

// loggedIn dials, upgrades with STLS and logs in as user.
func loggedIn(t *testing.T, e *testEnv, user string) *client {
	t.Helper()
	c := dial(t, e.addr)
	c.stls()
	if got := c.login(user, password); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("login: %q", got)
	}
	return c
}

// expectClosed checks that the server hangs up, after sending at most the lines in want.
func (c *client) expectClosed(want ...string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, w := range want {
		l, err := c.r.ReadString('\n')
		if err != nil || strings.TrimSuffix(l, "\r\n") != w {
			c.t.Fatalf("before hang-up: got %q (%v), want %q", l, err, w)
		}
	}
	l, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("connection still open, got %q", l)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open after 10s")
	}
}
