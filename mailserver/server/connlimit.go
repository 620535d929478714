package server

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter bounds connections in total and per client address across all listeners.
type connLimiter struct {
	maxTotal, maxPerIP int

	// refusing holds a token per TLS handshake run only to refuse a connection.
	refusing chan struct{}

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newConnLimiter(maxTotal, maxPerIP int) *connLimiter {
	return &connLimiter{maxTotal: maxTotal, maxPerIP: maxPerIP, perIP: map[netip.Addr]int{},
		refusing: make(chan struct{}, maxRefusalHandshakes)}
}

// acquire reserves a slot for ip and says why not when it can't.
func (l *connLimiter) acquire(ip netip.Addr) (ok bool, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return false, "limit"
	}
	if l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP {
		return false, "per_ip_limit"
	}
	l.total++
	l.perIP[ip]++
	return true, ""
}

func (l *connLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// refusalTimeout bounds the TLS handshake and the write of a refusal on implicit-TLS listeners,
// so refused clients cannot hold their sockets long.
const refusalTimeout = 5 * time.Second

// maxRefusalHandshakes bounds the TLS handshakes run at once only to refuse connections: a
// flood of connections over the limits must not buy itself the server's CPU. Beyond it a
// refused client of an implicit-TLS listener is disconnected without a word.
const maxRefusalHandshakes = 16

// limitedListener admits connections through a connLimiter. The check runs on the connection's
// first Read or Write — in the serving goroutine, after any PROXY header has given the real
// client address — so a slow client never holds up Accept. A refused client gets the
// protocol's own "too busy" line; on an implicit-TLS listener inside TLS, since a client
// expecting a handshake reads a line in clear text as a TLS error.
type limitedListener struct {
	net.Listener
	limiter *connLimiter
	name    string
	busy    string      // line written to refused clients, CRLF-terminated
	tls     *tls.Config // the implicit-TLS listener's configuration; nil for the others
	active  prometheus.Gauge
	total   prometheus.Counter
	refused *prometheus.CounterVec
}

func (l *limitedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &limitedConn{Conn: c, l: l}, nil
}

type limitedConn struct {
	net.Conn
	l *limitedListener

	once     sync.Once
	admitted bool
	ip       netip.Addr
	closed   sync.Once
}

func (c *limitedConn) admit() bool {
	c.once.Do(func() {
		if ap, err := netip.ParseAddrPort(c.Conn.RemoteAddr().String()); err == nil {
			c.ip = ap.Addr().Unmap()
		}
		ok, reason := c.l.limiter.acquire(c.ip)
		if !ok {
			c.l.refused.WithLabelValues(c.l.name, reason).Inc()
			c.refuse()
			return
		}
		c.admitted = true
		c.l.total.Inc()
		c.l.active.Inc()
	})
	return c.admitted
}

// refuse writes the busy line and closes. The first I/O of a TLS server is reading the client's
// hello, so on an implicit-TLS listener nothing has been sent yet and the refusal can run a
// handshake of its own on the connection; the session's handshake then fails quietly.
func (c *limitedConn) refuse() {
	defer c.Conn.Close()
	c.Conn.SetDeadline(time.Now().Add(refusalTimeout))
	if c.l.tls == nil {
		c.Conn.Write([]byte(c.l.busy))
		return
	}
	select {
	case c.l.limiter.refusing <- struct{}{}:
		defer func() { <-c.l.limiter.refusing }()
	default:
		return
	}
	tc := tls.Server(c.Conn, c.l.tls)
	if tc.Handshake() != nil {
		return
	}
	tc.Write([]byte(c.l.busy))
	tc.Close() // close_notify: the client sees the line, then a clean end
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if !c.admit() {
		return 0, net.ErrClosed
	}
	return c.Conn.Read(p)
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if !c.admit() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {}) // a connection closed before its first I/O is never admitted later
	err := c.Conn.Close()
	c.closed.Do(func() {
		if c.admitted {
			c.l.limiter.release(c.ip)
			c.l.active.Dec()
		}
	})
	return err
}
