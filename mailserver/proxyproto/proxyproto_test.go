package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

type reported struct {
	remote net.Addr
	err    error
}

type testServer struct {
	addr   string
	conns  chan net.Conn
	errors chan reported
}

// startServer listens on 127.0.0.1 behind NewListener and hands accepted
// connections to the test. OnError reports go to the errors channel.
func startServer(t *testing.T, trusted []string, opts Options) *testServer {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, inner, trusted, opts)
}

// serve is startServer on a listener the test made.
func serve(t *testing.T, inner net.Listener, trusted []string, opts Options) *testServer {
	t.Helper()
	prefixes, err := ParseTrusted(trusted)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{addr: inner.Addr().String(), conns: make(chan net.Conn, 16), errors: make(chan reported, 16)}
	opts.OnError = func(remote net.Addr, err error) { s.errors <- reported{remote, err} }
	ln := NewListener(inner, prefixes, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(s.conns)
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *testServer) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func (s *testServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted within 5s")
		return nil
	}
}

func write(t *testing.T, c net.Conn, parts ...[]byte) {
	t.Helper()
	if _, err := c.Write(bytes.Join(parts, nil)); err != nil {
		t.Fatalf("client write: %v", err)
	}
}

// payload is more than any internal buffer and not only text.
func payload() []byte {
	var b bytes.Buffer
	b.WriteString("EHLO client.example.com\r\n")
	for i := 0; b.Len() < 100_000; i++ {
		b.WriteByte(byte(i * 7))
	}
	return b.Bytes()
}

const trustedLoopback = "127.0.0.0/8"

func TestHeaderSetsAddresses(t *testing.T) {
	cases := []struct {
		name          string
		header        []byte
		remote, local string
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n"), "192.0.2.10:56324", "198.51.100.1:25"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::10 2001:db8::1 56324 587\r\n"), "[2001:db8::10]:56324", "[2001:db8::1]:587"},
		{"v2 IPv4", v2Proxy("192.0.2.10:56324", "198.51.100.1:143"), "192.0.2.10:56324", "198.51.100.1:143"},
		{"v2 IPv6 with TLVs", v2Proxy("[2001:db8::10]:40000", "[2001:db8::1]:993", sampleTLVs...), "[2001:db8::10]:40000", "[2001:db8::1]:993"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, []string{trustedLoopback}, Options{})
			client := s.dial(t)
			sent := payload()
			// One write, so the payload arrives with the header and must
			// survive the header parser's buffering.
			write(t, client, tc.header, sent)
			client.CloseWrite()

			c := s.accept(t)
			if got := c.RemoteAddr().String(); got != tc.remote {
				t.Errorf("RemoteAddr = %s, want %s", got, tc.remote)
			}
			if got := c.LocalAddr().String(); got != tc.local {
				t.Errorf("LocalAddr = %s, want %s", got, tc.local)
			}
			if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
				t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", c.RemoteAddr())
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("server read: %v", err)
			}
			if !bytes.Equal(got, sent) {
				t.Fatalf("server received %d bytes, want the %d sent after the header (first bytes %q)", len(got), len(sent), got[:min(len(got), 30)])
			}
			if _, err := c.Write([]byte("221 bye\r\n")); err != nil {
				t.Fatalf("server write: %v", err)
			}
			c.Close()
			reply, _ := io.ReadAll(client)
			if string(reply) != "221 bye\r\n" {
				t.Errorf("client received %q", reply)
			}
		})
	}
}

func TestHeaderKeepsRealAddresses(t *testing.T) {
	cases := []struct {
		name   string
		header []byte
	}{
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n")},
		{"v2 LOCAL", v2Header(v2CmdLocal, v2Unspec, nil)},
		{"v2 LOCAL with addresses", v2Header(v2CmdLocal, v2TCP4, make([]byte, 12))},
		{"v2 PROXY UNSPEC", v2Header(v2CmdProxy, v2Unspec, sampleTLVs)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, []string{trustedLoopback}, Options{})
			client := s.dial(t)
			write(t, client, tc.header, []byte("NOOP\r\n"))
			client.CloseWrite()

			c := s.accept(t)
			if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want the real peer %s", got, want)
			}
			if got, want := c.LocalAddr().String(), client.RemoteAddr().String(); got != want {
				t.Errorf("LocalAddr = %s, want the real %s", got, want)
			}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "NOOP\r\n" {
				t.Errorf("server read %q, %v; want %q", got, err, "NOOP\r\n")
			}
		})
	}
}

func TestUntrustedPeerPassesThrough(t *testing.T) {
	s := startServer(t, []string{"192.0.2.0/24", "2001:db8::/32"}, Options{})
	client := s.dial(t)
	sent := bytes.Join([][]byte{
		[]byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n"),
		v2Proxy("192.0.2.10:56324", "198.51.100.1:25"),
		payload(),
	}, nil)
	write(t, client, sent)
	client.CloseWrite()

	c := s.accept(t)
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("untrusted connection is a %T, want the listener's own *net.TCPConn", c)
	}
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want the real peer %s", got, want)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent) {
		t.Errorf("server received %d bytes, want the %d sent, unchanged", len(got), len(sent))
	}
	select {
	case r := <-s.errors:
		t.Errorf("OnError called for an untrusted peer: %v", r.err)
	default:
	}
}

func TestMalformedHeaderClosesConnection(t *testing.T) {
	cases := []struct {
		name    string
		sent    []byte
		wantErr string
	}{
		{"no header", []byte("EHLO client.example.com\r\n"), "does not start with a PROXY protocol header"},
		{"bad v2 signature", append([]byte("\r\n\r\n\x00\r\nQUIT\r"), v2Proxy("192.0.2.10:1", "198.51.100.1:25")[12:]...), "does not start with a PROXY protocol header"},
		{"v1 line too long", []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25" + strings.Repeat(" ", 100) + "\r\n"), "no CRLF within 107 bytes"},
		{"v1 bad IP", []byte("PROXY TCP4 192.0.2.300 198.51.100.1 56324 25\r\n"), `"192.0.2.300" is not an IP address`},
		{"v2 truncated", v2Proxy("[2001:db8::10]:40000", "[2001:db8::1]:993")[:30], "unexpected EOF"},
		{"v2 version 3", append([]byte(v2Signature), 0x31, v2TCP4, 0, 0), "version 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, []string{trustedLoopback}, Options{})
			client := s.dial(t)
			write(t, client, tc.sent)
			client.CloseWrite()

			c := s.accept(t)
			n, err := c.Read(make([]byte, 64))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("server Read = %d, %v; want error containing %q", n, err, tc.wantErr)
			}
			if _, err := c.Write([]byte("220 hello\r\n")); err == nil {
				t.Error("server Write after a bad header succeeded")
			}
			if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr after a bad header = %s, want the real peer %s", got, want)
			}

			select {
			case r := <-s.errors:
				if r.remote.String() != client.LocalAddr().String() || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Errorf("OnError(%v, %v); want the real peer %s and an error containing %q", r.remote, r.err, client.LocalAddr(), tc.wantErr)
				}
			default:
				t.Error("OnError was not called")
			}

			// The server must have hung up: the client sees EOF or a reset,
			// not its own deadline, and never a greeting.
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(client)
			if len(got) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("client read %q, %v; want the connection closed", got, err)
			}
		})
	}
}

func TestSilentTrustedPeerDoesNotBlockOthers(t *testing.T) {
	const timeout = 2 * time.Second
	s := startServer(t, []string{trustedLoopback}, Options{HeaderTimeout: timeout})
	start := time.Now()

	silent := s.dial(t)
	silentConn := s.accept(t)
	silentErr := make(chan error, 1)
	go func() {
		_, err := silentConn.Read(make([]byte, 1))
		silentErr <- err
	}()

	prompt := s.dial(t)
	write(t, prompt, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n"))
	promptConn := s.accept(t)
	if got := promptConn.RemoteAddr().String(); got != "192.0.2.10:56324" {
		t.Errorf("RemoteAddr = %s, want 192.0.2.10:56324", got)
	}
	if waited := time.Since(start); waited > timeout/2 {
		t.Errorf("second client served after %s, behind the silent one", waited)
	}

	select {
	case err := <-silentErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "within 2s") {
			t.Errorf("silent peer's Read error = %v, want a header timeout", err)
		}
		if waited := time.Since(start); waited < timeout*3/4 {
			t.Errorf("silent peer dropped after %s, before the %s header timeout", waited, timeout)
		}
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("silent peer's Read did not time out")
	}
	select {
	case r := <-s.errors:
		if r.remote.String() != silent.LocalAddr().String() {
			t.Errorf("OnError for %v, want the silent peer %v", r.remote, silent.LocalAddr())
		}
	case <-time.After(time.Second):
		t.Error("OnError was not called for the silent peer")
	}
}

func TestHeaderDeadlineIsLifted(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s := startServer(t, []string{trustedLoopback}, Options{HeaderTimeout: timeout})
	client := s.dial(t)
	write(t, client, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\none"))
	c := s.accept(t)
	headerRead := time.Now()
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "one" {
		t.Fatalf("first read %q, %v", buf, err)
	}

	// A read that is already waiting when the header deadline passes must
	// keep waiting: the deadline was for the header only.
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, buf)
		read <- err
	}()
	select {
	case err := <-read:
		t.Fatalf("read with nothing sent returned %v after %s; the %s header deadline is still set", err, time.Since(headerRead), timeout)
	case <-time.After(time.Until(headerRead.Add(3 * timeout))):
	}
	write(t, client, []byte("two"))
	select {
	case err := <-read:
		if err != nil || string(buf) != "two" {
			t.Fatalf("read after the header timeout had passed: %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the data sent after the header timeout was not read within 5s")
	}
}

func TestCallerReadDeadlineSurvivesHeader(t *testing.T) {
	s := startServer(t, []string{trustedLoopback}, Options{HeaderTimeout: 5 * time.Second})
	client := s.dial(t)
	c := s.accept(t)
	// As a server does right after Accept, before touching the connection.
	if err := c.SetDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	write(t, client, []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n"))

	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "proxyproto") {
			t.Fatalf("Read = %v, want the caller's own deadline to expire after a good header", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the caller's read deadline was lost when the header was read")
	}

	c.SetDeadline(time.Time{})
	write(t, client, []byte("x"))
	buf := make([]byte, 1)
	if _, err := c.Read(buf); err != nil || buf[0] != 'x' {
		t.Errorf("read after clearing the deadline: %q, %v", buf, err)
	}
	if got := c.RemoteAddr().String(); got != "192.0.2.10:56324" {
		t.Errorf("RemoteAddr = %s", got)
	}
}

func TestCloseDuringHeaderIsNotReported(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	s := serve(t, &signalListener{Listener: inner, reading: reading}, []string{trustedLoopback}, Options{})
	s.dial(t)
	c := s.accept(t)
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	// Close only once the header is being read, so that it is the read of
	// the header that Close interrupts.
	select {
	case <-reading:
	case <-time.After(5 * time.Second):
		t.Fatal("the header was not read within 5s")
	}
	c.Close()
	if err := <-read; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
	select {
	case r := <-s.errors:
		t.Errorf("OnError called after our own Close: %v", r.err)
	default:
	}
}

// signalListener closes reading when the first connection it accepted is
// first read from.
type signalListener struct {
	net.Listener
	reading chan struct{}
	once    sync.Once
}

func (l *signalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &signalConn{Conn: c, l: l}, nil
}

type signalConn struct {
	net.Conn
	l *signalListener
}

func (c *signalConn) Read(p []byte) (int, error) {
	c.l.once.Do(func() { close(c.l.reading) })
	return c.Conn.Read(p)
}

func TestNoTrustedNetworksReturnsInner(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	if ln := NewListener(inner, nil, Options{}); ln != inner {
		t.Errorf("NewListener with no trusted networks wrapped the listener")
	}
}

func TestParseTrusted(t *testing.T) {
	got, err := ParseTrusted([]string{"10.0.0.0/8", "10.1.2.3/16", "fd00::/8", "192.0.2.7/32"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
	}
	if len(got) != len(want) {
		t.Fatalf("ParseTrusted = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ParseTrusted[%d] = %v, want %v", i, got[i], want[i])
		}
	}

	for _, tc := range []struct{ in, wantErr string }{
		{"10.0.0.1", `"10.0.0.1": is an address, not a CIDR; write 10.0.0.1/32`},
		{"fd00::1", "write fd00::1/128"},
		{"10.0.0.0/33", `"10.0.0.0/33": not a CIDR`},
		{"lb.example.com", `"lb.example.com": not a CIDR`},
		{"", `"": not a CIDR`},
		{" 10.0.0.0/8", "remove the surrounding spaces"},
		{"::ffff:10.0.0.0/104", "IPv4-mapped"},
	} {
		_, err := ParseTrusted([]string{"192.0.2.0/24", tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseTrusted(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}
