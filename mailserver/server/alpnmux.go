package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"
)

// alpnMux splits one TLS listener by the protocol each client negotiated in its handshake
// (ALPN), so that the cluster's internal connections of every protocol share one port (and one
// NetworkPolicy rule). A connection that names no protocol served here is closed.
type alpnMux struct {
	ln   net.Listener // a TLS listener whose NextProtos are the protocols
	log  *slog.Logger
	subs map[string]*muxListener

	closeOnce sync.Once
	closed    chan struct{}
}

// muxHandshakeTimeout bounds a handshake on the internal listener.
const muxHandshakeTimeout = 10 * time.Second

func newALPNMux(ln net.Listener, log *slog.Logger, protos ...string) *alpnMux {
	m := &alpnMux{ln: ln, log: log, subs: map[string]*muxListener{}, closed: make(chan struct{})}
	for _, p := range protos {
		m.subs[p] = &muxListener{mux: m, conns: make(chan net.Conn)}
	}
	return m
}

// listener is the connections that negotiated proto.
func (m *alpnMux) listener(proto string) net.Listener { return m.subs[proto] }

// run accepts until the listener closes; each handshake runs on a goroutine of its own, so a
// slow client holds up no other.
func (m *alpnMux) run() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.Close()
			return
		}
		go m.dispatch(c)
	}
}

func (m *alpnMux) dispatch(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		c.Close()
		return
	}
	tc.SetDeadline(time.Now().Add(muxHandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		m.log.Warn("cluster listener: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	sub := m.subs[tc.ConnectionState().NegotiatedProtocol]
	if sub == nil {
		c.Close()
		return
	}
	select {
	case sub.conns <- tc:
	case <-m.closed:
		c.Close()
	}
}

// Close closes the listener; Accept on every protocol's listener then fails.
func (m *alpnMux) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// muxListener is one protocol's share of the connections.
type muxListener struct {
	mux   *alpnMux
	conns chan net.Conn
}

func (l *muxListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.mux.closed:
		return nil, net.ErrClosed
	}
}

func (l *muxListener) Close() error   { return l.mux.Close() }
func (l *muxListener) Addr() net.Addr { return l.mux.ln.Addr() }
