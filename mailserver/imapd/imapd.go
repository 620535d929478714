// Package imapd is the mail server's IMAP side, protocol engine included (the wire format is
// in imapd/wire; go-imap v2 provides types): it logs users in through login, maps IMAP
// mailboxes 1:1 onto the store's folders, and pushes deliveries and other sessions' changes to
// selected and idling clients.
package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	// Registers the legacy charsets (ISO-8859-x, Windows-125x, ...) with go-message so SEARCH
	// matches text and envelopes decode subjects in mail that is not UTF-8.
	_ "github.com/emersion/go-message/charset"

	"github.com/kubemail/kubemail/mailserver/directory"
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
	// Route, when set, is asked after every successful login whether another server serves
	// the mailbox (in a cluster, the replica that owns it): a non-nil Takeover gets the
	// connection; nil serves the mailbox here.
	Route func(mb *directory.Mailbox) Takeover
}

// A Takeover serves a session whose login this server checked, somewhere else: it owns the
// connection until it returns, and answers the login command's tag itself. This is the seam
// between the pre-authentication phase (CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE, ID), which
// every replica serves, and the mailbox's own server.
type Takeover func(ctx context.Context, h *Handoff) error

// Handoff is a connection at the command boundary after a successful login.
type Handoff struct {
	Conn net.Conn // the client's connection, encrypted
	// Pending is what the client sent after the login command and this server read but did
	// not parse (a pipelining client's next commands): it comes before anything on Conn.
	Pending []byte
	Tag     string // the login command's tag, not yet answered
	Mailbox *directory.Mailbox
	Log     *slog.Logger
}

// ErrServerClosed is returned by Serve after Shutdown or Close. It wraps net.ErrClosed so
// callers that already ignore closed listeners need no special case.
var ErrServerClosed = fmt.Errorf("imapd: server closed: %w", net.ErrClosed)

// Server is an IMAP server over the store.
type Server struct {
	cfg Config
	// ctx ends when the server closes: sessions say BYE, logins waiting out a throttling
	// delay give up.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	sessions  sync.WaitGroup
	// byUser holds the sessions serving a mailbox here, by its address (see EndSessions).
	byUser map[string]map[*session]struct{}
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
	return &Server{cfg: cfg, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, conns: map[net.Conn]struct{}{}, byUser: map[string]map[*session]struct{}{}}
}

// appendLimit is MaxMessageBytes as the protocol's 32-bit number.
func (s *Server) appendLimit() uint32 {
	return uint32(min(s.cfg.MaxMessageBytes, math.MaxUint32))
}

// Serve accepts connections on ln until the server is shut down. Implicit TLS is the
// listener's job (tls.NewListener); such connections may log in at once.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeInternal accepts the other replicas of a cluster on ln, which must be a TLS listener
// that requires and verifies their client certificates (the cluster's own CA). There a replica
// that checked a user's password logs in as that user with AUTHENTICATE EXTERNAL, giving the
// mailbox as the authorization identity (see Proxy); passwords are not accepted.
func (s *Server) ServeInternal(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, internal bool) error {
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
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !s.track(nc) {
			nc.Close()
			continue
		}
		go func() {
			_, isTLS := nc.(*tls.Conn)
			sess := newSession(s, nc, isTLS)
			sess.peer = internal && isTLS
			sess.serve(func() { s.forget(sess); s.untrack(nc) })
		}()
	}
}

// track registers a connection; false once the server is closed.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	s.sessions.Add(1)
	return true
}

func (s *Server) untrack(nc net.Conn) {
	nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
	s.sessions.Done()
}

// served registers a session that serves address's mailbox here.
func (s *Server) served(sess *session, address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byUser[address]
	if set == nil {
		set = map[*session]struct{}{}
		s.byUser[address] = set
	}
	set[sess] = struct{}{}
}

func (s *Server) forget(sess *session) {
	if sess.user == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.byUser[sess.user.Address]; set != nil {
		delete(set, sess)
		if len(set) == 0 {
			delete(s.byUser, sess.user.Address)
		}
	}
}

// EndSessions ends every session serving here a mailbox whose address match accepts: after
// the command in progress, or at once when the session waits for one or idles, it says BYE
// [UNAVAILABLE] with text and closes. It returns how many such sessions are still running,
// those ended by earlier calls included; they are gone moments later.
func (s *Server) EndSessions(match func(address string) bool, text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for addr, set := range s.byUser {
		if !match(addr) {
			continue
		}
		for sess := range set {
			if sess.ended.CompareAndSwap(nil, &text) {
				sess.nc.SetReadDeadline(time.Now())
			}
			n++
		}
	}
	return n
}

// Shutdown stops accepting connections, tells every client the server is going away (an
// untagged BYE, after any response being written), and closes the connections. IMAP sessions
// are long-lived (IDLE lasts up to 30 minutes), so it does not wait for clients to log out;
// ctx bounds how long it waits for responses in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	done := make(chan struct{})
	go func() {
		s.sessions.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		return ctx.Err()
	}
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.stop()
	s.closeConns()
	return nil
}

// stop marks the server closed, closes its listeners and wakes every session blocked reading
// a command, which then says BYE.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	for ln := range s.listeners {
		ln.Close()
	}
	for nc := range s.conns {
		nc.SetReadDeadline(time.Now())
	}
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for nc := range s.conns {
		nc.Close()
	}
}
