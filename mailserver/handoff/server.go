package handoff

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
)

// ServerConfig configures the LMTP service of the internal listener, where the other replicas
// hand over mail for this replica's mailboxes.
type ServerConfig struct {
	Hostname  string
	Shard     int
	Directory *directory.Live
	Local     *delivery.Local
	// MaxMessageBytes bounds a message (the other replica's limit plus its trace fields).
	MaxMessageBytes int64
	// Seen remembers the handoffs stored, so that one handed over twice is stored once.
	Seen *Seen
	// Holds, if set, admits each store (see Holds).
	Holds *Holds
	Log   *slog.Logger
}

// Shutdown ends the LMTP server: it waits a moment for handoffs in flight, then closes the
// sessions other replicas keep open between messages. A handoff cut short this way is queued
// by its sender and stored once when it comes again (its id).
func Shutdown(ctx context.Context, s *smtp.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		return s.Close()
	}
	return nil
}

// NewServer returns the LMTP server. Its listener must admit only the cluster's replicas
// (mutual TLS): it asks for no authentication.
func NewServer(cfg ServerConfig) *smtp.Server {
	s := smtp.NewServer(&backend{cfg: cfg})
	s.LMTP = true
	s.Domain = cfg.Hostname
	s.MaxMessageBytes = cfg.MaxMessageBytes + 64<<10
	s.MaxRecipients = 1000
	s.EnableSMTPUTF8 = true
	// Other replicas keep their sessions for the next message (poolIdle); one kept longer
	// than that was abandoned.
	s.ReadTimeout = 2 * poolIdle
	s.AllowInsecureAuth = false
	s.ErrorLog = errorLog{cfg.Log}
	return s
}

type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.log.Debug("LMTP", "msg", format, "args", v) }
func (e errorLog) Println(v ...any)               { e.log.Debug("LMTP", "args", v) }

type backend struct{ cfg ServerConfig }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{cfg: &b.cfg, conn: c}, nil
}

// session is one handoff: MAIL, the mailboxes, the message.
type session struct {
	cfg   *ServerConfig
	conn  *smtp.Conn // its LHLO name names the replica in the trace field
	from  string
	rcpts []rcpt
}

// rcpt is a mailbox as the client named it: LMTP answers for each RCPT by that name.
type rcpt struct {
	to string
	mb *directory.Mailbox
}

var (
	errNotHere = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "This mailbox does not live on this replica (the directory is changing); try again"}
	// The sending replica found the mailbox in its directory: one of the two directories is a
	// moment behind the other (a new mailbox, or one just removed). The sender queues the
	// message and, asking again, finds the answer in its own directory by then.
	errUnknown = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "This mailbox is not in this replica's directory (yet); try again"}
	errFull   = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	errMoving = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0},
		Message: "This mailbox is moving between replicas; try again when the move ends"}
	errStorage = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Storage error, try again later"}
)

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.rcpts = from, nil
	return nil
}

// Rcpt takes a mailbox of this replica; the sending replica resolved aliases and forwards.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	mb, ok := s.cfg.Directory.Load().Mailbox(to)
	switch {
	case !ok:
		return errUnknown
	case mb.Frozen:
		return errMoving
	case mb.Shard != s.cfg.Shard:
		return errNotHere
	}
	if mb.Quota > 0 {
		used, _, err := s.cfg.Local.Usage(mb)
		switch {
		case err != nil:
			s.cfg.Log.Error("LMTP: opening a mailbox", "mailbox", mb.Address, "err", err)
			return errStorage
		case used >= mb.Quota:
			return errFull
		}
	}
	s.rcpts = append(s.rcpts, rcpt{to: to, mb: mb})
	return nil
}

func (s *session) Data(r io.Reader) error {
	return errors.New("LMTP sessions end with LMTPData")
}

// LMTPData stores the message in each mailbox and answers for each.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	id, msg := splitID(msg)
	env := delivery.Envelope{From: s.from, Received: lmtpReceived(s.conn.Hostname(), s.cfg.Hostname)}
	for _, rc := range s.rcpts {
		if refused := s.store(env, id, rc.mb, msg); refused != nil {
			status.SetStatus(rc.to, refused)
		} else {
			status.SetStatus(rc.to, nil)
		}
	}
	s.cfg.Log.Info("handed-over message stored", "from", s.from, "recipients", len(s.rcpts), "peer", s.conn.Hostname(), "size", len(msg))
	return nil
}

// store delivers a handed-over message to one mailbox, once per handoff id: nil when it is
// stored (now or before), else the refusal for the sending replica.
func (s *session) store(env delivery.Envelope, id string, mb *directory.Mailbox, msg []byte) *smtp.SMTPError {
	if id != "" && s.cfg.Seen != nil {
		defer s.cfg.Seen.lock(id, mb.Address)()
		if s.cfg.Seen.Has(id, mb.Address) {
			s.cfg.Log.Info("a handoff stored before was handed over again; not stored twice", "mailbox", mb.Address, "handoff", id)
			return nil
		}
	}
	if s.cfg.Holds != nil {
		release, ok := s.cfg.Holds.Begin(mb.Address)
		if !ok {
			return errMoving
		}
		defer release()
	}
	if mb.Quota > 0 {
		if used, _, err := s.cfg.Local.Usage(mb); err == nil && used+int64(len(msg)) > mb.Quota {
			return errFull
		}
	}
	if err := s.cfg.Local.Deliver(env, []*directory.Mailbox{mb}, bytes.Clone(msg)); err != nil {
		s.cfg.Log.Error("LMTP: storing a handed-over message", "mailbox", mb.Address, "err", err)
		return errStorage
	}
	if id != "" && s.cfg.Seen != nil {
		if err := s.cfg.Seen.Add(id, mb.Address); err != nil {
			s.cfg.Log.Warn("LMTP: remembering a stored handoff", "mailbox", mb.Address, "err", err)
		}
	}
	return nil
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }
