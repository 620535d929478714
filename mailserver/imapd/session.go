package imapd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/store"
)

// state is where a connection is in RFC 9051's state diagram.
type state uint8

const (
	stateNotAuthenticated state = 1 << iota
	stateAuthenticated
	stateSelected
	stateLogout
)

// session is one IMAP connection. One goroutine reads its commands and writes every response;
// the store's watcher only marks the selection and wakes that goroutine, so only the
// selection needs a lock.
type session struct {
	srv *Server
	nc  net.Conn
	// ended holds the reason given when EndSessions ended the session (nil while it runs).
	ended atomic.Pointer[string]
	r     *wire.Reader
	w     *wire.Writer
	ip    netip.Addr
	log   *slog.Logger
	// tls is set once the connection is encrypted (implicit TLS or STARTTLS); peer on the
	// internal listener, where other replicas log in (ServeInternal).
	tls, peer bool
	state     state
	// rev2 and utf8 are set by ENABLE IMAP4rev2 and ENABLE UTF8=ACCEPT.
	rev2, utf8 bool
	// condstore is set once the client used CONDSTORE (RFC 7162 3.1: ENABLE, SELECT
	// (CONDSTORE), FETCH MODSEQ, SEARCH MODSEQ, STORE UNCHANGEDSINCE, STATUS HIGHESTMODSEQ);
	// qresync by ENABLE QRESYNC, which implies it.
	condstore, qresync bool

	// wmu serialises writing while IDLE's updates are written by a goroutine of their own;
	// idling says they may be (see idle), flushing that one is running.
	wmu      sync.Mutex
	idling   bool
	flushing atomic.Bool

	// done tells the server the session has ended (see serve).
	done func()

	user *directory.Mailbox // nil before login
	box  *store.Mailbox
	sel  *selection // nil unless a folder is selected
	// notify follows other folders for NOTIFY (notify.go); nil without it. newFetch is what
	// NOTIFY asked to be sent of each new message in the selected folder.
	notify   *notifier
	newFetch *fetchArgs
}

func newSession(s *Server, nc net.Conn, tls bool) *session {
	id := make([]byte, 8)
	rand.Read(id)
	sess := &session{srv: s, nc: nc, tls: tls, state: stateNotAuthenticated}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		sess.ip = ap.Addr().Unmap()
	}
	sess.log = s.cfg.Log.With("protocol", Protocol, "session", hex.EncodeToString(id), "remote", sess.ip.String())
	sess.setConn(nc)
	return sess
}

// setConn reads and writes through nc, as at the start and after STARTTLS.
func (s *session) setConn(nc net.Conn) {
	s.nc = nc
	s.w = wire.NewWriter(nc)
	s.w.UTF8 = s.rev2 || s.utf8
	s.r = wire.NewReader(nc, s.w, wire.Limits{MaxLiteral: s.srv.cfg.MaxMessageBytes})
	s.r.AcceptLiteral = s.acceptLiteral
	s.r.SetAuthenticated(s.user != nil)
}

// acceptLiteral refuses, before the client sends it, a message an over-quota mailbox cannot
// take.
func (s *session) acceptLiteral(name string, size int64, _ bool) error {
	if name != "APPEND" || s.user == nil {
		return nil
	}
	if err := s.checkQuota(size); err != nil {
		var ie *imap.Error
		errors.As(err, &ie)
		return &wire.Error{Status: wire.NO, Code: string(ie.Code), Detail: ie.Text}
	}
	return nil
}

// Replies shared by several commands. Wrong user and wrong password get the same one.
var (
	errAuthFailed = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
		Text: "Authentication failed"}
	errThrottled = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
		Text: "Too many failed logins, try again later"}
	errDisabled = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeContactAdmin,
		Text: "Logins to this account are disabled; contact your administrator"}
	errUnavailable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
		Text: "Mailbox temporarily unavailable, try again later"}
	errStorage = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: "Storage error, try again later"}
	errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "The folder is open read-only (EXAMINE); SELECT it to change it"}
	errPrivacyRequired = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired,
		Text: "Log in after STARTTLS, or over implicit TLS: passwords never travel in clear text"}
)

// track counts a command and, when err is set, its failure.
func (s *session) track(cmd string, err error) {
	m := s.srv.cfg.Metrics
	m.Commands.WithLabelValues(Protocol, cmd).Inc()
	if err != nil {
		m.CommandErrors.WithLabelValues(Protocol, cmd).Inc()
	}
}

// storageError logs a store failure and hides its details from the client.
func (s *session) storageError(what string, err error) error {
	s.log.Error(what, "mailbox", s.user.Address, "err", err)
	return errStorage
}

// close ends the session's use of the store.
func (s *session) close() {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	if s.notify != nil {
		s.notify.close()
		s.notify = nil
	}
}

// login checks a user's password (LOGIN and AUTHENTICATE PLAIN), then hands the session to
// Config.Route's taker or opens the mailbox here.
func (s *session) login(tag, username, password string) (res reply, err error) {
	defer func() { s.track("LOGIN", err) }()
	if !s.tls {
		return reply{}, errPrivacyRequired
	}
	mb, err := s.srv.cfg.Auth.Login(s.srv.ctx, Protocol, s.ip, username, password)
	switch {
	case errors.Is(err, login.ErrThrottled):
		// login reports each throttled source once; a refused attempt is routine after that.
		s.log.Debug("login throttled")
		return reply{}, errThrottled
	case errors.Is(err, login.ErrFailed):
		return reply{}, errAuthFailed
	case errors.Is(err, login.ErrDisabled):
		return reply{}, errDisabled
	case err != nil:
		return reply{}, errUnavailable
	}
	if s.srv.cfg.Route != nil {
		if take := s.srv.cfg.Route(mb); take != nil {
			return s.handOff(tag, mb, take), nil
		}
	}
	return s.open(mb)
}

// open serves the mailbox here once its user logged in.
func (s *session) open(mb *directory.Mailbox) (reply, error) {
	box, err := s.srv.cfg.Store.Mailbox(mb.Address)
	if err != nil {
		s.log.Error("opening mailbox", "mailbox", mb.Address, "err", err)
		return reply{}, errUnavailable
	}
	s.user, s.box = mb, box
	s.srv.served(s, mb.Address)
	s.state = stateAuthenticated
	s.r.SetAuthenticated(true)
	s.log = s.log.With("mailbox", mb.Address)
	s.srv.cfg.Metrics.Sessions.WithLabelValues(Protocol).Inc()
	s.log.Info("logged in")
	return reply{code: "CAPABILITY", args: atoms(s.capabilities()), text: "Logged in"}, nil
}

// handOff gives the connection, at the command boundary after the login, to take; the session
// ends when take returns.
func (s *session) handOff(tag string, mb *directory.Mailbox, take Takeover) reply {
	s.state = stateLogout
	if err := s.w.Flush(); err != nil {
		return reply{answered: true}
	}
	h := &Handoff{Conn: s.nc, Pending: s.r.TakeBuffered(), Tag: tag, Mailbox: mb, Log: s.log}
	s.log.Info("logged in, handed off", "mailbox", mb.Address)
	if err := take(s.srv.ctx, h); err != nil {
		s.log.Warn("serving a handed-off session", "mailbox", mb.Address, "err", err)
	}
	return reply{answered: true}
}
