// Package smtpd is the mail server's SMTP side on github.com/emersion/go-smtp: the MX role
// (mail from the internet for local recipients only) and the submission role (authenticated
// users sending mail). It decides who may send what to whom; storing is delivery's job.
package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/sendlimit"
)

// Role is what a listener is for.
type Role int

const (
	// RoleMX receives mail from other servers for local recipients. No AUTH, no relaying.
	RoleMX Role = iota
	// RoleSubmission accepts mail from authenticated users, for any recipient.
	RoleSubmission
)

// Deliverer stores accepted mail in local mailboxes: delivery.Local, or in a cluster of
// several replicas one that hands each mailbox of another replica to it.
type Deliverer interface {
	// Deliver returns once msg is durable for every mailbox: stored, or queued for the replica
	// that holds it. An *smtp.SMTPError is the answer for the client (another replica's
	// permanent refusal); any other error a temporary failure.
	Deliver(env delivery.Envelope, mailboxes []*directory.Mailbox, msg []byte) error
	// Usage is the bytes a mailbox holds, for the quota check at RCPT; ok is false when this
	// server cannot tell (the mailbox lives on another replica, which checks on delivery).
	Usage(mb *directory.Mailbox) (used int64, ok bool, err error)
}

// Outbound takes mail for remote recipients (the outbound queue). It must return only once the
// message is durably queued.
type Outbound interface {
	Enqueue(from string, rcpts []string, msg []byte) error
}

// InboundChecker authenticates mail arriving on the MX role (SPF, DKIM, DMARC).
type InboundChecker interface {
	// Check returns the message to store, with the results prepended, or an *smtp.SMTPError
	// to refuse it with.
	Check(ctx context.Context, in CheckInput) ([]byte, error)
}

// CheckInput is what the session knows of a message.
type CheckInput struct {
	IP       netip.Addr
	Helo     string
	MailFrom string
	Message  []byte
}

// ReturnPaths maps the rewritten envelope senders this server gave forwarded mail (SRS) back
// to the original senders, for bounces arriving at them. ours is false for any other
// address; err is set for one of ours that is forged or expired.
type ReturnPaths interface {
	Reverse(addr string) (orig string, ours bool, err error)
}

// Config configures one SMTP server (one listener).
type Config struct {
	Role Role
	// Name of the listener, for metrics and logs ("smtp", "submission", "submissions").
	Name            string
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	// MaxHops refuses messages with more Received fields (a mail loop).
	MaxHops      int
	ReadTimeout  time.Duration
	WriteTimeout time.Duration

	Directory *directory.Live
	Local     Deliverer
	// Outbound may be nil: remote recipients then get a temporary failure.
	Outbound Outbound
	// Checks, if set, authenticates mail on the MX role before it is stored.
	Checks InboundChecker
	// ReturnPaths, if set, lets the MX role accept bounces to rewritten senders.
	ReturnPaths ReturnPaths
	Auth        *login.Authenticator
	// SendLimit, if set, bounds the messages an authenticated user submits per hour; the
	// submission listeners share one so the bound holds across them (and in a cluster of
	// several, the replicas: the mailbox's own counts).
	SendLimit SendLimiter
	Metrics   *metrics.Metrics
	Log       *slog.Logger
}

// SendLimiter bounds the messages an authenticated user submits per hour: Allow before a
// transaction, Record once a message is accepted. A nil *sendlimit.Limiter allows everything.
type SendLimiter interface {
	Allow(user string) bool
	Record(user string)
	Limit() int
}

// NewServer returns a go-smtp server for cfg. tlsConfig enables STARTTLS (and is needed for
// AUTH, which is only offered over TLS).
func NewServer(cfg Config, tlsConfig *tls.Config) *smtp.Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.SendLimit == nil {
		cfg.SendLimit = (*sendlimit.Limiter)(nil)
	}
	if cfg.MaxHops == 0 {
		cfg.MaxHops = 50
	}
	s := smtp.NewServer(&backend{cfg: cfg})
	s.Domain = cfg.Hostname
	s.MaxMessageBytes = cfg.MaxMessageBytes
	s.MaxRecipients = cfg.MaxRecipients
	s.MaxLineLength = 4096
	s.ReadTimeout = cfg.ReadTimeout
	s.WriteTimeout = cfg.WriteTimeout
	s.TLSConfig = tlsConfig
	s.AllowInsecureAuth = false
	s.EnableSMTPUTF8 = true
	s.ErrorLog = errorLog{cfg.Log}
	return s
}

// errorLog sends go-smtp's messages to slog. A session whose connection was closed under it
// (refused by the connection limit, ended at shutdown) is routine (Debug).
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...interface{}) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "error handling") && strings.HasSuffix(msg, net.ErrClosed.Error()) {
		e.log.Debug(msg)
		return
	}
	e.log.Warn(msg)
}
func (e errorLog) Println(v ...interface{}) { e.log.Warn(fmt.Sprint(v...)) }

type backend struct{ cfg Config }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := &session{cfg: &b.cfg, conn: c, id: newID()}
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		s.ip = ap.Addr().Unmap()
	}
	if b.cfg.Role == RoleSubmission {
		return &submissionSession{session: s}, nil
	}
	return s, nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Replies. Each says what is wrong in words a postmaster reading a bounce understands.
var (
	errRelayDenied  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server only accepts mail for its own domains"}
	errUnknownUser  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errBadAddress   = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	errBadSender    = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	errOverQuota    = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full, try again later"}
	errNoOutbound   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Delivery to other domains is not available on this server yet, try again later"}
	errLoop         = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Too many Received headers: mail loop detected"}
	errStorage      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary storage failure, try again later"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	errNotYours     = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address not owned by the authenticated user"}
	errHeaderFrom   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "From header address not owned by the authenticated user"}
	errThrottled    = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed logins, try again later"}
	errDisabled     = &smtp.SMTPError{Code: 525, EnhancedCode: smtp.EnhancedCode{5, 7, 13}, Message: "Logins to this account are disabled; contact your administrator"}
	errUnavailable  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Mail for this domain cannot be accepted at the moment; try again later"}
	errNoRecipients = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	errReturnPath   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Invalid or expired forwarding return address"}
	// RFC 6531 section 3.4 and RFC 6533: an address with non-ASCII characters needs the
	// SMTPUTF8 parameter on MAIL FROM.
	errSenderNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII sender address: add the SMTPUTF8 parameter to MAIL FROM to send from it"}
	errRcptNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII recipient address: add the SMTPUTF8 parameter to MAIL FROM to send to it"}
)

// recipient is one accepted RCPT with where it goes.
type recipient struct {
	addr string
	res  directory.Resolution
	// remote is set for a submission recipient outside our domains.
	remote bool
}

// session is the MX role's session; submissionSession extends it.
type session struct {
	cfg  *Config
	conn *smtp.Conn
	id   string
	ip   netip.Addr

	user    *directory.Mailbox // authenticated user (submission only)
	from    string
	hasFrom bool
	size    int64
	// utf8 is set when MAIL FROM carried SMTPUTF8: the envelope may hold internationalised
	// addresses, and the header UTF-8 (RFC 6531, 6532).
	utf8  bool
	rcpts []recipient
	// rcptTo is the recipient of the RCPT being answered, for the log.
	rcptTo string
}

func (s *session) Reset() {
	s.from, s.hasFrom, s.size, s.utf8, s.rcpts = "", false, 0, false, nil
}

// senderASCIIOK refuses a non-ASCII sender without SMTPUTF8.
func senderASCIIOK(from string, opts *smtp.MailOptions) error {
	if !dirspec.IsASCII(from) && (opts == nil || !opts.UTF8) {
		return errSenderNeedsUTF8
	}
	return nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := senderASCIIOK(from, opts); err != nil {
		return err
	}
	if from != "" {
		if _, err := dirspec.NormalizeAddress(from); err != nil {
			return errBadSender
		}
	}
	s.from, s.hasFrom = from, true
	if opts != nil {
		s.size, s.utf8 = opts.Size, opts.UTF8
	}
	return nil
}

func (s *session) rejectRcpt(reason string, err error) error {
	s.cfg.Metrics.RecipientsRejected.WithLabelValues(s.cfg.Name, reason).Inc()
	// One line per refusal with the client's address: relay attempts and address harvesting
	// show in the log for fail2ban or a SIEM.
	attrs := []any{"session", s.id, "remote", s.ip.String(), "from", s.from, "rcpt", s.rcptTo, "reason", reason}
	if s.user != nil {
		attrs = append(attrs, "user", s.user.Address)
	}
	s.cfg.Log.Info("recipient refused", attrs...)
	return err
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcptTo = to
	if !s.utf8 && !dirspec.IsASCII(to) {
		return s.rejectRcpt("needs_smtputf8", errRcptNeedsUTF8)
	}
	dir := s.cfg.Directory.Load()
	if s.cfg.ReturnPaths != nil {
		if orig, ours, err := s.cfg.ReturnPaths.Reverse(to); ours {
			return s.returnPath(dir, orig, err)
		}
	}
	res, err := dir.Resolve(to)
	switch {
	case err == nil:
		return s.acceptResolved(to, res)
	case errors.Is(err, directory.ErrNotLocal):
		return s.rejectRcpt("relay", errRelayDenied)
	}
	return s.refuse(err)
}

// refuse answers a recipient the directory could not resolve, for any reason but its domain
// being someone else's (which the MX and submission answer differently).
func (s *session) refuse(err error) error {
	switch {
	case errors.Is(err, directory.ErrBadAddress):
		return s.rejectRcpt("bad_address", errBadAddress)
	case errors.Is(err, directory.ErrUnavailable):
		return s.rejectRcpt("domain_unavailable", errUnavailable)
	case errors.Is(err, directory.ErrUnknownUser):
		return s.rejectRcpt("unknown_user", errUnknownUser)
	}
	return s.rejectRcpt("other", errStorage)
}

// returnPath accepts a bounce to a rewritten sender for the original sender.
func (s *session) returnPath(dir *directory.Directory, orig string, err error) error {
	if err != nil {
		return s.rejectRcpt("return_path", errReturnPath)
	}
	res, err := dir.Resolve(orig)
	switch {
	case err == nil:
		return s.acceptResolved(orig, res)
	case errors.Is(err, directory.ErrNotLocal):
		if s.cfg.Outbound == nil {
			return s.rejectRcpt("no_outbound", errNoOutbound)
		}
		s.rcpts = append(s.rcpts, recipient{addr: orig, remote: true})
		return nil
	case errors.Is(err, directory.ErrUnavailable):
		return s.rejectRcpt("domain_unavailable", errUnavailable)
	case errors.Is(err, directory.ErrUnknownUser):
		return s.rejectRcpt("unknown_user", errUnknownUser)
	}
	return s.rejectRcpt("return_path", errReturnPath)
}

// acceptResolved checks quota and forwarding for a local recipient.
func (s *session) acceptResolved(to string, res directory.Resolution) error {
	if len(res.External) > 0 && s.cfg.Outbound == nil {
		return s.rejectRcpt("no_outbound", errNoOutbound)
	}
	for _, mb := range res.Local {
		if mb.Quota <= 0 {
			continue
		}
		used, ok, err := s.cfg.Local.Usage(mb)
		if err != nil {
			s.cfg.Log.Error("opening mailbox", "mailbox", mb.Address, "err", err)
			return s.rejectRcpt("storage", errStorage)
		}
		if ok && (used >= mb.Quota || (s.size > 0 && used+s.size > mb.Quota)) {
			return s.rejectRcpt("over_quota", errOverQuota)
		}
	}
	s.rcpts = append(s.rcpts, recipient{addr: to, res: res})
	return nil
}

func (s *session) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 552 {
			s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "too_big").Inc()
		}
		return err
	}
	if s.cfg.Checks != nil && len(s.rcpts) > 0 {
		checked, err := s.cfg.Checks.Check(context.Background(), CheckInput{IP: s.ip, Helo: s.conn.Hostname(), MailFrom: s.from, Message: msg})
		if err != nil {
			s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "authentication").Inc()
			return err
		}
		msg = checked
	}
	return s.deliver(msg, s.protocol(), nil)
}

// protocol is the Received field's "with" word before its S (TLS) and A (AUTH) suffixes:
// RFC 6531 section 3.7.3 names SMTPUTF8 transactions UTF8SMTP.
func (s *session) protocol() string {
	if s.utf8 {
		return "UTF8SMTP"
	}
	return "ESMTP"
}

// deliver stores msg for every accepted recipient and queues remote ones. check, when set,
// inspects the header first (submission's From check).
func (s *session) deliver(msg []byte, with string, check func(mail.Header) error) error {
	start := time.Now()
	if len(s.rcpts) == 0 {
		return errNoRecipients
	}
	hdr, hops := readHeader(msg)
	if hops >= s.cfg.MaxHops {
		s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "loop").Inc()
		return errLoop
	}
	if check != nil {
		if err := check(hdr); err != nil {
			s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "policy").Inc()
			return err
		}
	}
	if state, ok := s.conn.TLSConnectionState(); ok && state.HandshakeComplete {
		with += "S"
	}
	if s.user != nil {
		with += "A"
	}
	var local []*directory.Mailbox
	var remote []string
	for _, rc := range s.rcpts {
		if rc.remote {
			remote = appendUnique(remote, rc.addr)
			continue
		}
		for _, mb := range rc.res.Local {
			if !containsMailbox(local, mb) {
				local = append(local, mb)
			}
		}
		for _, ext := range rc.res.External {
			remote = appendUnique(remote, ext)
		}
	}
	forClause := ""
	if len(s.rcpts) == 1 {
		forClause = fmt.Sprintf("\r\n\tfor <%s>", s.rcpts[0].addr)
	}
	received := fmt.Sprintf("Received: from %s (%s)\r\n\tby %s (kubemail) with %s id %s%s;\r\n\t%s\r\n",
		sanitizeHelo(s.conn.Hostname()), remoteDesc(s.conn.Conn().RemoteAddr()), s.cfg.Hostname, with, s.id,
		forClause, time.Now().Format(time.RFC1123Z))
	if len(local) > 0 {
		if err := s.cfg.Local.Deliver(delivery.Envelope{From: s.from, Received: received}, local, msg); err != nil {
			var se *smtp.SMTPError
			if errors.As(err, &se) {
				s.cfg.Log.Info("message refused by the mailbox's replica", "session", s.id, "err", err)
				s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "owner").Inc()
				return se
			}
			s.cfg.Log.Error("local delivery failed", "session", s.id, "err", err)
			s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "storage").Inc()
			return errStorage
		}
	}
	if len(remote) > 0 {
		if s.cfg.Outbound == nil {
			return errNoOutbound
		}
		if err := s.cfg.Outbound.Enqueue(s.from, remote, append([]byte(received), msg...)); err != nil {
			s.cfg.Log.Error("queueing failed", "session", s.id, "err", err)
			return errStorage
		}
	}
	if s.user != nil {
		s.cfg.SendLimit.Record(s.user.Address)
	}
	s.cfg.Metrics.DeliveryLatency.Observe(time.Since(start).Seconds())
	s.cfg.Metrics.MessagesAccepted.WithLabelValues(s.cfg.Name).Inc()
	s.cfg.Metrics.BytesReceived.WithLabelValues(s.cfg.Name).Add(float64(len(msg)))
	s.cfg.Log.Info("message accepted", "session", s.id, "from", s.from,
		"recipients", len(s.rcpts), "local", len(local), "remote", len(remote), "size", len(msg))
	return nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func containsMailbox(list []*directory.Mailbox, mb *directory.Mailbox) bool {
	for _, x := range list {
		if x.Address == mb.Address {
			return true
		}
	}
	return false
}

// readHeader parses the header section and counts Received fields.
func readHeader(msg []byte) (mail.Header, int) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if lf := bytes.Index(msg, []byte("\n\n")); end < 0 || (lf >= 0 && lf < end) {
		end = lf
	}
	head := msg
	if end >= 0 {
		head = msg[:end]
	}
	hops := 0
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 0, 4096), len(head)+1)
	for sc.Scan() {
		if line := sc.Bytes(); len(line) > 9 && bytes.EqualFold(line[:9], []byte("received:")) {
			hops++
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte{}, head...), "\r\n\r\n"...)))
	if err != nil {
		return mail.Header{}, hops
	}
	return m.Header, hops
}

func sanitizeHelo(h string) string {
	h = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return -1
		}
		return r
	}, h)
	if h == "" {
		return "unknown"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return h
}

func remoteDesc(a net.Addr) string {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return "[" + ap.Addr().Unmap().String() + "]"
	}
	return "[unknown]"
}

// submissionSession requires AUTH and lets the user send as its own addresses only.
type submissionSession struct {
	*session
}

func (s *submissionSession) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	check := func(identity, username, password string) error {
		if identity != "" && !strings.EqualFold(identity, username) {
			return smtp.ErrAuthFailed
		}
		mb, err := s.cfg.Auth.Login(context.Background(), "smtp", s.ip, username, password)
		if errors.Is(err, login.ErrThrottled) {
			return errThrottled
		}
		if errors.Is(err, login.ErrDisabled) {
			return errDisabled
		}
		if err != nil {
			return smtp.ErrAuthFailed
		}
		s.user = mb
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(check), nil
	case sasl.Login:
		return newLoginServer(func(u, p string) error { return check("", u, p) }), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *submissionSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == nil {
		return errAuthRequired
	}
	if err := senderASCIIOK(from, opts); err != nil {
		return err
	}
	if from == "" || !s.cfg.Directory.Load().CanSendAs(s.user, from) {
		return errNotYours
	}
	if !s.cfg.SendLimit.Allow(s.user.Address) {
		limit := s.cfg.SendLimit.Limit()
		s.cfg.Metrics.MessagesRejected.WithLabelValues(s.cfg.Name, "rate_limit").Inc()
		s.cfg.Log.Warn("submission refused: hourly message limit reached", "session", s.id, "user", s.user.Address,
			"limit", limit)
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1},
			Message: fmt.Sprintf("Too many messages from you in the last hour (limit %d); try again later", limit)}
	}
	return s.session.Mail(from, opts)
}

func (s *submissionSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.rcptTo = to
	if s.user == nil {
		return errAuthRequired
	}
	if !s.utf8 && !dirspec.IsASCII(to) {
		return s.rejectRcpt("needs_smtputf8", errRcptNeedsUTF8)
	}
	dir := s.cfg.Directory.Load()
	res, err := dir.Resolve(to)
	switch {
	case err == nil:
		return s.acceptResolved(to, res)
	case errors.Is(err, directory.ErrNotLocal):
		if s.cfg.Outbound == nil {
			return s.rejectRcpt("no_outbound", errNoOutbound)
		}
		addr, _ := dirspec.NormalizeAddress(to)
		s.rcpts = append(s.rcpts, recipient{addr: addr, remote: true})
		return nil
	}
	return s.refuse(err)
}

func (s *submissionSession) Data(r io.Reader) error {
	if s.user == nil {
		return errAuthRequired
	}
	msg, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	dir := s.cfg.Directory.Load()
	return s.deliver(msg, s.protocol(), func(h mail.Header) error {
		from, err := h.AddressList("From")
		if err != nil || len(from) == 0 {
			return errHeaderFrom
		}
		for _, a := range from {
			if !dir.CanSendAs(s.user, a.Address) {
				return errHeaderFrom
			}
		}
		return nil
	})
}

// loginServer is the server side of the obsolete but widespread AUTH LOGIN mechanism.
type loginServer struct {
	step         int
	username     string
	authenticate func(username, password string) error
}

func newLoginServer(auth func(username, password string) error) sasl.Server {
	return &loginServer{authenticate: auth}
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if response != nil {
			// Initial response carries the user name.
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, false, errors.New("unexpected client response")
}
