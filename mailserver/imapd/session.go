package imapd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/store"
)

// session is one IMAP connection. The library calls its methods one command at a time from
// the connection's goroutine (IDLE's updates come from a second goroutine while no command
// runs), so only the selection, which the store's watcher also touches, needs a lock.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	ip   netip.Addr
	log  *slog.Logger

	user *directory.Mailbox // nil before login
	box  *store.Mailbox
	sel  *selection // nil unless a folder is selected
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func newSession(s *Server, c *imapserver.Conn) *session {
	id := make([]byte, 8)
	rand.Read(id)
	sess := &session{srv: s, conn: c}
	if ap, err := netip.ParseAddrPort(c.NetConn().RemoteAddr().String()); err == nil {
		sess.ip = ap.Addr().Unmap()
	}
	sess.log = s.cfg.Log.With("protocol", Protocol, "session", hex.EncodeToString(id), "remote", sess.ip.String())
	return sess
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
)

// track counts a command and, when *err is set, its failure. Use it deferred.
func (s *session) track(cmd string, err *error) {
	m := s.srv.cfg.Metrics
	m.Commands.WithLabelValues(Protocol, cmd).Inc()
	if *err != nil {
		m.CommandErrors.WithLabelValues(Protocol, cmd).Inc()
	}
}

// storageError logs a store failure and hides its details from the client.
func (s *session) storageError(what string, err error) error {
	s.log.Error(what, "mailbox", s.user.Address, "err", err)
	return errStorage
}

func (s *session) Close() error {
	// s.sel stays set: the library may still be ending an IDLE goroutine that reads it.
	if s.sel != nil {
		s.sel.close()
	}
	s.srv.forget(s.conn)
	return nil
}

// Login serves both LOGIN and AUTHENTICATE PLAIN; the library refuses both without TLS.
func (s *session) Login(username, password string) (err error) {
	defer s.track("LOGIN", &err)
	mb, err := s.srv.cfg.Auth.Login(s.srv.ctx, Protocol, s.ip, username, password)
	switch {
	case errors.Is(err, login.ErrThrottled):
		// login reports each throttled source once; a refused attempt is routine after that.
		s.log.Debug("login throttled")
		return errThrottled
	case errors.Is(err, login.ErrFailed):
		return errAuthFailed
	case errors.Is(err, login.ErrDisabled):
		return errDisabled
	case err != nil:
		return errUnavailable
	}
	box, err := s.srv.cfg.Store.Mailbox(mb.Address)
	if err != nil {
		s.log.Error("opening mailbox", "mailbox", mb.Address, "err", err)
		return errUnavailable
	}
	s.user, s.box = mb, box
	s.log = s.log.With("mailbox", mb.Address)
	s.srv.cfg.Metrics.Sessions.WithLabelValues(Protocol).Inc()
	s.log.Info("logged in")
	return nil
}

func (s *session) AppendLimit() uint32 { return s.srv.appendLimit() }

func (s *session) Namespace() (_ *imap.NamespaceData, err error) {
	defer s.track("NAMESPACE", &err)
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: store.Delimiter}}}, nil
}

// Poll runs after every command: it sends what changed in the selected folder since.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	return s.sel.tracker.Poll(w, allowExpunge)
}

// Idle streams changes to the selected folder until the client says DONE.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) (err error) {
	defer s.track("IDLE", &err)
	if s.sel == nil {
		<-stop // nothing to report outside a folder
		return nil
	}
	return s.sel.idle(w, stop)
}
