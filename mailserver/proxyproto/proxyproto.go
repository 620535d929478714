// Package proxyproto lets the mail listeners sit behind a load balancer that
// speaks the HAProxy PROXY protocol (v1 text or v2 binary): connections from
// trusted networks report the client's address from the header instead of the
// load balancer's.
package proxyproto

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultHeaderTimeout is how long a trusted peer has to send its header when
// Options.HeaderTimeout is zero.
const DefaultHeaderTimeout = 5 * time.Second

// Options tunes a Listener. The zero value is usable.
type Options struct {
	// HeaderTimeout bounds the wait for a trusted peer's header.
	// Zero or negative means DefaultHeaderTimeout.
	HeaderTimeout time.Duration

	// OnError, if set, is called once for each connection from a trusted
	// peer that is closed because its header was missing, malformed or late
	// (not when the server closed the connection first). remote is the
	// peer's real address. It runs on the goroutine that first used the
	// connection, before that use returns, so it should not block.
	OnError func(remote net.Addr, err error)
}

// ParseTrusted parses the networks allowed to send PROXY headers, as CIDRs
// such as "10.0.0.0/8" or "fd00::/8". It accepts what the MailCluster API
// accepts: host bits may be set ("10.1.2.3/8" means 10.0.0.0/8), but bare
// addresses and IPv4-mapped IPv6 prefixes are refused.
func ParseTrusted(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				return nil, fmt.Errorf("trusted proxy network %q: is an address, not a CIDR; write %s for that single address", s, netip.PrefixFrom(a.WithZone(""), a.BitLen()))
			}
			if strings.TrimSpace(s) != s {
				return nil, fmt.Errorf("trusted proxy network %q: remove the surrounding spaces", s)
			}
			return nil, fmt.Errorf("trusted proxy network %q: not a CIDR such as 10.0.0.0/8 or fd00::/8: %w", s, err)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("trusted proxy network %q: IPv4-mapped IPv6 prefixes are not supported; write the IPv4 CIDR instead", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// NewListener wraps inner so that connections from peers inside trusted
// networks must start with a PROXY protocol header, whose addresses then
// become the connection's RemoteAddr and LocalAddr. Connections from other
// peers are returned exactly as inner accepted them, unread. With no trusted
// networks, NewListener returns inner itself.
//
// Accept never reads: the header is read on the connection's first Read,
// Write, RemoteAddr or LocalAddr, which therefore may block for up to
// Options.HeaderTimeout and belong on the connection's own goroutine. If the
// header is missing, malformed or late, the connection is closed, OnError is
// called, and that first call and every later Read and Write fail.
func NewListener(inner net.Listener, trusted []netip.Prefix, opts Options) net.Listener {
	if len(trusted) == 0 {
		return inner
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	return &listener{Listener: inner, trusted: append([]netip.Prefix(nil), trusted...), opts: opts}
}

type listener struct {
	net.Listener
	trusted []netip.Prefix
	opts    Options
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.isTrusted(c.RemoteAddr()) {
		return c, nil
	}
	return &conn{
		Conn: c,
		opts: l.opts,
		// Small, because after the header it only holds bytes the client
		// sent along with it; larger reads bypass it.
		br: bufio.NewReaderSize(c, 512),
	}, nil
}

func (l *listener) isTrusted(a net.Addr) bool {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return false
		}
		ip = ap.Addr()
	}
	// Dual-stack listeners report IPv4 peers as ::ffff:a.b.c.d.
	ip = ip.Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// conn is a connection from a trusted peer. Its header is read once, by
// whichever method needs it first.
type conn struct {
	net.Conn
	opts Options
	br   *bufio.Reader

	once          sync.Once
	err           error    // set by readHeader: the header was bad, conn is closed
	remote, local net.Addr // set by readHeader when the header carries addresses

	mu         sync.Mutex
	headerDone bool
	// readDeadline is what the caller asked for before the header was read;
	// it replaces the header deadline afterwards.
	readDeadline time.Time
}

func (c *conn) readHeader() {
	deadline := time.Now().Add(c.opts.HeaderTimeout)
	limit := "within " + c.opts.HeaderTimeout.String()
	c.mu.Lock()
	if !c.readDeadline.IsZero() && c.readDeadline.Before(deadline) {
		deadline = c.readDeadline
		limit = "before the connection's read deadline"
	}
	c.mu.Unlock()

	err := c.Conn.SetReadDeadline(deadline)
	var h header
	if err == nil {
		h, err = readHeader(c.br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("no complete PROXY protocol header %s: %w", limit, err)
		}
	}

	c.mu.Lock()
	c.headerDone = true
	if err == nil {
		err = c.Conn.SetReadDeadline(c.readDeadline)
	}
	c.mu.Unlock()

	if err != nil {
		c.err = fmt.Errorf("proxyproto: trusted peer %s: %w", c.Conn.RemoteAddr(), err)
		c.Conn.Close()
		// net.ErrClosed means our side closed the connection mid-header,
		// typically at shutdown: not the peer's fault, nothing to report.
		if c.opts.OnError != nil && !errors.Is(err, net.ErrClosed) {
			c.opts.OnError(c.Conn.RemoteAddr(), c.err)
		}
		return
	}
	if h.proxied {
		c.remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.src.Addr().Unmap(), h.src.Port()))
		c.local = net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.dst.Addr().Unmap(), h.dst.Port()))
	}
}

func (c *conn) Read(p []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	return c.br.Read(p)
}

func (c *conn) Write(p []byte) (int, error) {
	// Waiting for the header before the first write means we never greet a
	// peer that turns out not to be a proxy; real proxies send it at once.
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Write(p)
}

func (c *conn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

func (c *conn) LocalAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.headerDone {
		c.readDeadline = t
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}
