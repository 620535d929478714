// Package writebatch holds a connection's writes while its session works through input it has
// already received, and sends them when the session next waits for input: the replies to a
// batch of pipelined commands leave in one write instead of one write (and, under TLS, one
// packet per record) each.
//
// It sits below TLS, between the TCP connection and crypto/tls, so that the protocol libraries
// still see a *tls.Conn (go-imap and go-smtp decide on STARTTLS and AUTH by that type).
package writebatch

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxBuffered is how many bytes a connection holds before it writes them anyway, so a long
// answer (a big FETCH, a RETR) streams instead of piling up.
const MaxBuffered = 16 << 10

// DefaultFlushTimeout bounds sending what is held at a Read, for a peer that has stopped
// reading; see Conn.FlushTimeout.
const DefaultFlushTimeout = time.Minute

// closeFlushTimeout bounds sending what is held when a connection closes.
const closeFlushTimeout = 5 * time.Second

// bufPool keeps held bytes off idle connections: a connection has a buffer only between a
// write and its next read.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, MaxBuffered); return &b }}

// Conn wraps a connection. Writes made while no Read is in progress are held until the next
// Read, Close, or MaxBuffered bytes; writes made while a Read is blocked (an IDLE push from
// another goroutine) go out at once.
type Conn struct {
	net.Conn
	// FlushTimeout bounds sending what is held at a Read. The session's own write deadline
	// covered its writes when they were made; the protocol libraries clear it once a reply is
	// in their buffers, and a peer that stops reading must not hold the session forever.
	FlushTimeout time.Duration

	mu      sync.Mutex
	buf     *[]byte // nil when nothing is held
	reading int
	// writeDeadline is the last write deadline the session set (UnixNano, 0 for none), put
	// back after a flush that used its own.
	writeDeadline atomic.Int64
}

// New wraps c.
func New(c net.Conn) *Conn { return &Conn{Conn: c, FlushTimeout: DefaultFlushTimeout} }

// SetDeadline records the write deadline and sets both.
func (c *Conn) SetDeadline(t time.Time) error {
	c.recordWriteDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline records the write deadline and sets it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.recordWriteDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *Conn) recordWriteDeadline(t time.Time) {
	if t.IsZero() {
		c.writeDeadline.Store(0)
		return
	}
	c.writeDeadline.Store(t.UnixNano())
}

// Read sends what is held, then reads.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.flushHeldLocked(c.FlushTimeout); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.reading++
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading--
	c.mu.Unlock()
	return n, err
}

// Write holds p, unless a Read is waiting for the peer (then nothing else would send it soon)
// or the held bytes would exceed MaxBuffered.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading == 0 && c.held()+len(p) <= MaxBuffered {
		if c.buf == nil {
			c.buf = bufPool.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Close sends what is held (within closeFlushTimeout), then closes. When a write is blocked on
// a peer that does not read, it closes at once, which ends that write.
func (c *Conn) Close() error {
	if c.mu.TryLock() {
		c.flushHeldLocked(closeFlushTimeout)
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// Flush sends what is held.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *Conn) held() int {
	if c.buf == nil {
		return 0
	}
	return len(*c.buf)
}

// flushHeldLocked sends what is held under a deadline of its own, then puts the session's back.
func (c *Conn) flushHeldLocked(timeout time.Duration) error {
	if c.buf == nil {
		return nil
	}
	c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	err := c.flushLocked()
	var restore time.Time
	if ns := c.writeDeadline.Load(); ns != 0 {
		restore = time.Unix(0, ns)
	}
	c.Conn.SetWriteDeadline(restore)
	return err
}

func (c *Conn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*b)
	*b = (*b)[:0]
	bufPool.Put(b)
	return err
}

// Listener wraps every accepted connection in a Conn.
type Listener struct {
	net.Listener
	// FlushTimeout is the connections' Conn.FlushTimeout; 0 means DefaultFlushTimeout.
	FlushTimeout time.Duration
}

// Accept returns the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := New(c)
	if l.FlushTimeout > 0 {
		wc.FlushTimeout = l.FlushTimeout
	}
	return wc, nil
}
