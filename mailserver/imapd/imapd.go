// Package imapd is the mail server's IMAP side on github.com/emersion/go-imap/v2's imapserver:
// it logs users in through login, maps IMAP mailboxes 1:1 onto the store's folders, and pushes
// deliveries and other sessions' changes to selected and idling clients.
package imapd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	// Registers the legacy charsets (ISO-8859-x, Windows-125x, ...) with go-message so SEARCH
	// matches text and envelopes decode subjects in mail that is not UTF-8.
	_ "github.com/emersion/go-message/charset"

	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

// Protocol is the name logins and metrics use for IMAP.
const Protocol = "imap"

// DefaultMaxMessageBytes is the APPEND limit when Config.MaxMessageBytes is 0; it matches the
// server configuration's default.
const DefaultMaxMessageBytes = 25 << 20

// Config configures an IMAP server. One Server may serve several listeners (IMAP with
// STARTTLS and IMAPS with implicit TLS, whose listener does the TLS handshake itself).
type Config struct {
	// Hostname names the server in the notice clients get when it shuts down.
	Hostname string
	Store    *store.Store
	Auth     *login.Authenticator
	// Metrics may be nil (tests); a private set is used then.
	Metrics *metrics.Metrics
	// TLSConfig enables STARTTLS. LOGIN and AUTHENTICATE are refused on connections that are
	// not TLS (LOGINDISABLED is advertised there), so without it only implicit-TLS listeners
	// can log in.
	TLSConfig *tls.Config
	// MaxMessageBytes bounds APPEND (advertised as APPENDLIMIT); 0 means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64
	Log             *slog.Logger
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It wraps net.ErrClosed so
// callers that already ignore closed listeners need no special case.
var ErrServerClosed = fmt.Errorf("imapd: server closed: %w", net.ErrClosed)

// Server is an IMAP server over the store.
type Server struct {
	cfg  Config
	imap *imapserver.Server
	// ctx ends when the server closes, aborting logins that wait out a throttling delay.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*imapserver.Conn]struct{}
}

// NewServer returns a server for cfg; call Serve for each listener.
func NewServer(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "kubemail"
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[*imapserver.Conn]struct{}{}}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       capabilities(),
		Logger:     libraryLog{cfg.Log},
		TLSConfig:  cfg.TLSConfig,
		// Never: passwords only travel inside TLS.
		InsecureAuth: false,
	})
	return s
}

// capabilities lists what the backend implements. The library adds on its own what needs no
// backend support: STARTTLS (with a TLS config), AUTH=PLAIN or LOGINDISABLED, SASL-IR,
// LITERAL-, ENABLE, IDLE, UNSELECT, UTF8=ACCEPT, and APPENDLIMIT=n from
// SessionAppendLimit. IMAP4rev2 implies the extensions folded into it, but IMAP4rev1
// clients only see what is listed.
func capabilities() imap.CapSet {
	caps := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2,
		imap.CapNamespace, imap.CapUIDPlus, imap.CapESearch, imap.CapSearchRes,
		imap.CapListExtended, imap.CapListStatus, imap.CapMove, imap.CapStatusSize,
		imap.CapBinary, imap.CapChildren,
		imap.CapSpecialUse, imap.CapCreateSpecialUse, imap.CapLiteralPlus,
	} {
		caps[c] = struct{}{}
	}
	return caps
}

// appendLimit is MaxMessageBytes as the protocol's 32-bit number.
func (s *Server) appendLimit() uint32 {
	return uint32(min(s.cfg.MaxMessageBytes, math.MaxUint32))
}

// Serve accepts connections on ln until the server is shut down. Implicit TLS is the
// listener's job (tls.NewListener); such connections may log in at once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	err := s.imap.Serve(ln)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections, tells every client the server is going away (an
// untagged BYE, after any response being written), and closes the connections. IMAP sessions
// are long-lived (IDLE lasts up to 30 minutes), so it does not wait for clients to log out;
// ctx bounds how long it waits for responses in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Bye(s.cfg.Hostname + " IMAP server shutting down, please reconnect")
			}()
		}
		wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.imap.Close()
	return err
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.stop()
	s.imap.Close()
	return nil
}

// stop marks the server closed, closes its listeners and returns the open connections.
func (s *Server) stop() []*imapserver.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cancel()
		for ln := range s.listeners {
			ln.Close()
		}
	}
	conns := make([]*imapserver.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Server shutting down, try again later"}
	}
	s.conns[c] = struct{}{}
	return newSession(s, c), nil, nil
}

func (s *Server) forget(c *imapserver.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// libraryLog sends imapserver's messages to slog: connections that broke or timed out are
// routine (Debug); anything else, such as a command that failed inside the library, is not.
type libraryLog struct{ log *slog.Logger }

func (l libraryLog) Printf(format string, args ...interface{}) {
	msg := fmt.Sprintf(format, args...)
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "failed to read command") || strings.HasPrefix(msg, "failed to write greeting") {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, msg, "protocol", Protocol)
}
