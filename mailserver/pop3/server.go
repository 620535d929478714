// Package pop3 is the mail server's POP3 side (RFC 1939 with CAPA and RESP-CODES from RFC 2449,
// STLS from RFC 2595 and AUTH PLAIN from RFC 5034): it lets a logged-in user download and delete
// the messages of their INBOX. Logins are only accepted over TLS.
package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("pop3: server closed")

// DefaultIdleTimeout is the inactivity timer of RFC 1939 section 3, which must be at least ten
// minutes.
const DefaultIdleTimeout = 10 * time.Minute

// DefaultWriteTimeout bounds one write to a client that stopped reading.
const DefaultWriteTimeout = time.Minute

// Config configures a Server. Store and Auth are required.
type Config struct {
	// Hostname is named in the greeting and the sign-off.
	Hostname string
	Store    *store.Store
	Auth     *login.Authenticator
	// Metrics may be nil (tests): the server then counts into a registry nobody scrapes.
	Metrics *metrics.Metrics
	// TLSConfig enables STLS. Without it, and on a plain connection, nobody can log in.
	TLSConfig *tls.Config
	Log       *slog.Logger
	// IdleTimeout closes a session that sends no complete command line for this long; zero means
	// DefaultIdleTimeout. RFC 1939 asks for at least ten minutes; shorter values are for tests.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the client; zero means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IsTLS, when set, reports whether a connection accepted by Serve is already encrypted. Left
	// nil, a *tls.Conn (what tls.NewListener returns) counts as encrypted; set it when the
	// listener wraps TLS connections in a type of its own.
	IsTLS func(net.Conn) bool
	// Route, when set, is asked after every successful login whether another server serves
	// the mailbox (in a cluster, the replica that owns it): a non-nil Takeover gets the
	// connection; nil serves the mailbox here.
	Route func(mb *directory.Mailbox) Takeover
}

// A Takeover serves a session whose login this server checked, somewhere else: it owns the
// connection until it returns, and answers the login itself.
type Takeover func(ctx context.Context, h *Handoff) error

// Handoff is a connection after a successful login, its answer not yet sent.
type Handoff struct {
	Conn net.Conn // the client's connection, encrypted
	// Pending is what the client sent after the login and this server read but did not
	// parse: it comes before anything on Conn.
	Pending []byte
	Mailbox *directory.Mailbox
	Log     *slog.Logger
}

// Server serves POP3 on the listeners given to Serve.
type Server struct {
	cfg Config
	log *slog.Logger
	// ctx ends logins that wait out a throttling delay when the server closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	listeners    map[net.Listener]struct{}
	sessions     map[*session]struct{}
	shuttingDown bool
	// wg counts sessions; Add only happens under mu while !shuttingDown, so never after Wait.
	wg sync.WaitGroup
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "kubemail"
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: cfg.Log, ctx: ctx, cancel: cancel,
		listeners: map[net.Listener]struct{}{}, sessions: map[*session]struct{}{}}
}

// Serve accepts connections on ln and serves each on its own goroutine until Shutdown or Close,
// when it returns ErrServerClosed. It closes ln when it returns. Serve may be called for several
// listeners.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeInternal accepts the other replicas of a cluster on ln, a TLS listener that requires and
// verifies their client certificates (the cluster's own CA): a replica that checked a user's
// password logs in as that user with AUTH EXTERNAL, the mailbox as authorization identity (see
// Proxy); passwords are not accepted there.
func (s *Server) ServeInternal(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, internal bool) error {
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.closing() {
				return ErrServerClosed
			}
			// Running out of file descriptors and the like pass; wait instead of spinning.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accepting a POP3 connection failed; retrying", "err", err, "retryIn", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.shuttingDown {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		sess := newSession(s, conn)
		_, sess.peer = conn.(*tls.Conn)
		sess.peer = sess.peer && internal
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go sess.serve()
	}
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shuttingDown
}

// Shutdown stops accepting, closes idle sessions at once and the others when their current
// command is done, and waits for them until ctx ends; then it closes what is left and returns
// ctx's error. Sessions that end this way do not enter the UPDATE state: messages marked for
// deletion stay.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shuttingDown = true
	err := s.closeListenersLocked()
	for sess := range s.sessions {
		if sess.reading {
			// Wakes the session's read; it sees shuttingDown and says goodbye.
			sess.raw.SetReadDeadline(time.Unix(1, 0))
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return err
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting and closes every session at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shuttingDown = true
	err := s.closeListenersLocked()
	for sess := range s.sessions {
		sess.raw.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return err
}

func (s *Server) closeListenersLocked() error {
	var err error
	for ln := range s.listeners {
		if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
		delete(s.listeners, ln)
	}
	return err
}

// startRead marks sess as waiting for client input and arms its read deadline, unless the
// session must end (stopped). Both happen under mu so a wake-up cannot be overwritten.
func (s *Server) startRead(sess *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stoppedLocked(sess); err != nil {
		return err
	}
	sess.reading = true
	sess.raw.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	return nil
}

// stopped says why sess must end (the server shuts down, or EndSessions ended it), nil when
// it goes on.
func (s *Server) stopped(sess *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stoppedLocked(sess)
}

func (s *Server) stoppedLocked(sess *session) error {
	switch {
	case s.shuttingDown:
		return errShuttingDown
	case sess.ended != "":
		return &endedError{sess.ended}
	}
	return nil
}

// EndSessions ends every session that has the maildrop of a mailbox whose address match
// accepts: after the command in progress, or at once when it waits for one, it answers
// -ERR [SYS/TEMP] with text and closes, without the UPDATE state (as a lost connection). It
// returns how many such sessions are still running, those ended by earlier calls included.
func (s *Server) EndSessions(match func(address string) bool, text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sess := range s.sessions {
		if sess.mailbox == "" || !match(sess.mailbox) {
			continue
		}
		if sess.ended == "" {
			sess.ended = text
			if sess.reading {
				sess.raw.SetReadDeadline(time.Unix(1, 0))
			}
		}
		n++
	}
	return n
}

func (s *Server) endRead(sess *session) {
	s.mu.Lock()
	sess.reading = false
	s.mu.Unlock()
}

func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// maildropLocks holds the mailboxes some session has in the TRANSACTION state. RFC 1939 gives a
// session exclusive access to its maildrop; the table is process-wide because every POP3
// listener of the process (pop3, pop3s) serves the same store, and keyed by the store's mailbox
// so independent stores (tests) never collide.
var maildropLocks = lockTable{held: map[*store.Mailbox]struct{}{}}

type lockTable struct {
	mu   sync.Mutex
	held map[*store.Mailbox]struct{}
}

// acquire locks m, or reports that another session holds it. release may be called many times.
func (t *lockTable) acquire(m *store.Mailbox) (release func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, busy := t.held[m]; busy {
		return nil, false
	}
	t.held[m] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.held, m)
			t.mu.Unlock()
		})
	}, true
}
