package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
)

const protocol = "pop3"

// Limits on what a client may send.
const (
	// maxCommandLine is the longest command line, CRLF included. RFC 2449 limits clients to 255
	// octets; twice that leaves room for long user names without inviting abuse.
	maxCommandLine = 512
	// maxAuthLine is the longest SASL response line (RFC 5034 lifts the command limit for them).
	maxAuthLine = 4096
	// maxDiscard is how much of an over-long line is skipped before the client is cut off.
	maxDiscard = 64 << 10
	// maxErrors is how many bad commands and failed logins a session may make.
	maxErrors = 20
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 30 * time.Second
)

// Ways a session ends that are not I/O errors.
var (
	errQuit         = errors.New("client quit")
	errShuttingDown = errors.New("server shutting down")

	errTooManyErrs = errors.New("too many errors")
	errLineTooLong = errors.New("line too long")
	errFlood       = errors.New("over-long line without end")
)

type state int

const (
	stateAuthorization state = iota
	stateTransaction
)

// replyError is a -ERR answer a command handler returns; the session writes it and goes on.
type replyError struct {
	code string // RFC 2449 response code without brackets, or ""
	text string
	// protocol marks a client mistake (syntax, state) that counts towards maxErrors.
	protocol bool
}

func (e *replyError) Error() string { return e.text }

func fail(code, text string) *replyError { return &replyError{code: code, text: text} }

func syntaxError(text string) *replyError { return &replyError{text: text, protocol: true} }

// Answers shared by several commands. The texts never echo client input.
var (
	errTLSRequired    = fail("AUTH", "TLS required; use STLS")
	errTLSRequiredNoS = fail("AUTH", "TLS required; connect to the POP3S port")
	errAuthFailed     = &replyError{code: "AUTH", text: "Authentication failed", protocol: true}
	errThrottled      = &replyError{code: "SYS/TEMP", text: "Too many failed logins, try again later", protocol: true}
	errDisabled       = &replyError{code: "AUTH", text: "Logins to this account are disabled; contact your administrator", protocol: true}
	errInUse          = fail("IN-USE", "Mailbox is locked by another session")
	errUnavailable    = fail("SYS/TEMP", "Mailbox unavailable, try again later")
)

// session is one client connection.
type session struct {
	srv *Server
	cfg *Config
	// raw is the accepted connection; deadlines and Close from other goroutines go to it.
	raw net.Conn
	// conn is raw, or the TLS connection STLS made over it.
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	tls  bool
	// peer is set on the internal listener, where other replicas log in (ServeInternal).
	peer bool
	ip   netip.Addr
	log  *slog.Logger
	// reading is guarded by srv.mu: the session waits for client input.
	reading bool
	// mailbox (whose maildrop the session has) and ended (why EndSessions ended the session)
	// are guarded by srv.mu.
	mailbox, ended string

	state    state
	cmd      string    // the command being run, for metrics
	user     string    // USER's argument, waiting for PASS
	mistakes int       // protocol errors and failed logins so far
	drop     *maildrop // in the TRANSACTION state
}

func newSession(srv *Server, conn net.Conn) *session {
	return &session{srv: srv, cfg: &srv.cfg, raw: conn, conn: conn, log: srv.log}
}

// deadlineWriter arms the write deadline before every write, so a client that stops reading
// cannot hold a session forever.
type deadlineWriter struct{ s *session }

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.s.raw.SetWriteDeadline(time.Now().Add(w.s.cfg.WriteTimeout))
	return w.s.conn.Write(p)
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReaderSize(c, 4096)
	s.bw = bufio.NewWriterSize(deadlineWriter{s}, 16<<10)
}

func (s *session) serve() {
	defer s.srv.endSession(s)
	defer s.raw.Close()
	defer func() {
		if s.drop != nil {
			s.drop.release()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("POP3 session panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	// RemoteAddr may wait for a PROXY header, so it is read here and not in Serve.
	if ap, err := netip.ParseAddrPort(s.raw.RemoteAddr().String()); err == nil {
		s.ip = ap.Addr().Unmap()
	}
	s.log = s.srv.log.With("remote", s.ip.String())
	s.cfg.Metrics.Sessions.WithLabelValues(protocol).Inc()
	s.setConn(s.raw)
	if err := s.startImplicitTLS(); err != nil {
		s.log.Debug("TLS handshake failed", "err", err)
		return
	}
	err := s.run()
	// Whatever ended the session, send what is buffered (the QUIT answer, a farewell).
	s.bw.Flush()
	switch {
	case err == nil, errors.Is(err, errQuit), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("POP3 session ended")
	default:
		s.log.Debug("POP3 session ended", "reason", err)
	}
}

// startImplicitTLS completes the handshake of a connection from a TLS listener, so a client that
// never finishes it is timed out here rather than at the first write of the greeting.
func (s *session) startImplicitTLS() error {
	_, isTLS := s.raw.(*tls.Conn)
	if s.cfg.IsTLS != nil {
		isTLS = s.cfg.IsTLS(s.raw)
	}
	if !isTLS {
		return nil
	}
	s.tls = true
	h, ok := s.raw.(interface{ HandshakeContext(context.Context) error })
	if !ok {
		return nil // a wrapper that handshakes on first use
	}
	ctx, cancel := context.WithTimeout(s.srv.ctx, handshakeTimeout)
	defer cancel()
	return h.HandshakeContext(ctx)
}

func (s *session) run() error {
	if err := s.ok(s.cfg.Hostname + " POP3 server ready"); err != nil {
		return err
	}
	for {
		line, err := s.readLine(maxCommandLine)
		switch {
		case errors.Is(err, errLineTooLong):
			s.cmd = "unknown"
			if err := s.reply(syntaxError("Line too long")); err != nil {
				return err
			}
			continue
		case errors.Is(err, errShuttingDown), errors.As(err, new(*endedError)):
			s.replyLine("-ERR [SYS/TEMP] " + farewell(err))
			return err
		case err != nil:
			// RFC 1939: an idle timeout or a vanished client ends the session without UPDATE.
			return err
		}
		if err := s.execute(line); err != nil {
			if errors.Is(err, errShuttingDown) || errors.As(err, new(*endedError)) { // from a read inside AUTH
				s.replyLine("-ERR [SYS/TEMP] " + farewell(err))
			}
			return err
		}
	}
}

// endedError is a session EndSessions ended, with its reason.
type endedError struct{ text string }

func (e *endedError) Error() string { return "session ended: " + e.text }

// farewell is the text of the last answer of a session that must end.
func farewell(err error) string {
	var e *endedError
	if errors.As(err, &e) {
		return e.text
	}
	return "Server shutting down, try again later"
}

// readLine reads one line of at most limit octets (line ending included) and returns it without
// its CRLF or LF. An over-long line is skipped and reported as errLineTooLong.
func (s *session) readLine(limit int) (string, error) {
	// Answers are sent only when the client has nothing more in flight (RFC 2449 PIPELINING).
	if s.br.Buffered() == 0 {
		if err := s.bw.Flush(); err != nil {
			return "", err
		}
	}
	if err := s.srv.startRead(s); err != nil {
		return "", err
	}
	defer s.srv.endRead(s)
	var line []byte
	discarded := 0
	for {
		chunk, err := s.br.ReadSlice('\n')
		if discarded > 0 || len(line)+len(chunk) > limit {
			discarded += len(chunk)
			if err == nil {
				return "", errLineTooLong
			}
			if discarded > maxDiscard {
				return "", errFlood
			}
		} else {
			line = append(line, chunk...)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err := s.srv.stopped(s); err != nil {
			return "", err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", fmt.Errorf("idle for %s: %w", s.cfg.IdleTimeout, err)
		}
		return "", err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return string(line), nil
}

// command is one POP3 command: the states it is valid in, its argument counts and its handler.
type command struct {
	states           []state
	minArgs, maxArgs int
	run              func(s *session, args []string) error
}

var (
	authorization = []state{stateAuthorization}
	transaction   = []state{stateTransaction}
	anyState      = []state{stateAuthorization, stateTransaction}
)

var commands = map[string]command{
	"CAPA": {anyState, 0, 0, (*session).cmdCapa},
	"QUIT": {anyState, 0, 0, (*session).cmdQuit},
	"STLS": {authorization, 0, 0, (*session).cmdStls},
	"USER": {authorization, 1, 1, (*session).cmdUser},
	"PASS": {authorization, 1, 1, (*session).cmdPass},
	"AUTH": {authorization, 0, 2, (*session).cmdAuth},
	"UTF8": {authorization, 0, 0, (*session).cmdUTF8},
	"STAT": {transaction, 0, 0, (*session).cmdStat},
	"LIST": {transaction, 0, 1, (*session).cmdList},
	"UIDL": {transaction, 0, 1, (*session).cmdUidl},
	"RETR": {transaction, 1, 1, (*session).cmdRetr},
	"TOP":  {transaction, 2, 2, (*session).cmdTop},
	"DELE": {transaction, 1, 1, (*session).cmdDele},
	"NOOP": {transaction, 0, 0, (*session).cmdNoop},
	"RSET": {transaction, 0, 0, (*session).cmdRset},
}

// execute runs one command line and writes its answer. It returns an error only when the
// session must end.
func (s *session) execute(line string) error {
	name, args, err := parseCommand(line)
	c, known := commands[name]
	s.cmd = "unknown" // a bounded metric label whatever the client sends
	if err == nil && known {
		s.cmd = name
	}
	s.cfg.Metrics.Commands.WithLabelValues(protocol, s.cmd).Inc()
	user := s.user
	s.user = "" // PASS must follow USER directly (RFC 1939)
	var rerr error
	switch {
	case errors.Is(err, errEmptyLine):
		rerr = syntaxError("Empty command")
	case errors.Is(err, errControl):
		rerr = syntaxError("Invalid characters in command")
	case err != nil, !known:
		rerr = syntaxError("Unknown command")
	case !validIn(c.states, s.state):
		rerr = syntaxError("Command not valid in this state")
	case len(args) < c.minArgs || len(args) > c.maxArgs:
		rerr = syntaxError(argCountText(c))
	default:
		if name == "PASS" {
			s.user = user
		}
		rerr = c.run(s, args)
	}
	var re *replyError
	if errors.As(rerr, &re) {
		return s.reply(re)
	}
	return rerr
}

func validIn(states []state, st state) bool {
	for _, x := range states {
		if x == st {
			return true
		}
	}
	return false
}

func argCountText(c command) string {
	switch {
	case c.maxArgs == 0:
		return "This command takes no arguments"
	case c.minArgs == c.maxArgs && c.minArgs == 1:
		return "This command takes one argument"
	case c.minArgs == c.maxArgs:
		return fmt.Sprintf("This command takes %d arguments", c.minArgs)
	}
	return fmt.Sprintf("This command takes at most %d arguments", c.maxArgs)
}

// ok writes a single-line positive answer.
func (s *session) ok(text string) error {
	if text == "" {
		return s.replyLine("+OK")
	}
	return s.replyLine("+OK " + text)
}

// reply writes a negative answer and counts it; a session with too many protocol errors ends.
func (s *session) reply(e *replyError) error {
	s.cfg.Metrics.CommandErrors.WithLabelValues(protocol, s.cmd).Inc()
	text := e.text
	var end error
	if e.protocol {
		if s.mistakes++; s.mistakes >= maxErrors {
			text, end = "Too many errors, closing connection", errTooManyErrs
		}
	}
	line := "-ERR "
	if e.code != "" && end == nil {
		line += "[" + e.code + "] "
	}
	if err := s.replyLine(line + text); err != nil {
		return err
	}
	return end
}

func (s *session) replyLine(line string) error {
	_, err := s.bw.WriteString(line + "\r\n")
	return err
}

// multiLine writes a positive answer followed by lines and the terminating dot. Lines must not
// start with a dot.
func (s *session) multiLine(first string, lines []string) error {
	if err := s.ok(first); err != nil {
		return err
	}
	for _, l := range lines {
		s.bw.WriteString(l)
		s.bw.WriteString("\r\n")
	}
	_, err := s.bw.WriteString(".\r\n")
	return err
}

func (s *session) cmdCapa([]string) error {
	// UTF8 USER: UTF-8 is welcome in messages and in USER and PASS (RFC 6856).
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UTF8 USER"}
	switch {
	case s.tls:
		// Logins are offered only where the password cannot be sniffed.
		caps = append(caps, "USER", "SASL PLAIN")
	case s.cfg.TLSConfig != nil:
		caps = append(caps, "STLS")
	}
	// The server never deletes mail on its own and never delays logins by policy.
	caps = append(caps, "EXPIRE NEVER", "LOGIN-DELAY 0", "IMPLEMENTATION kubemail")
	return s.multiLine("Capability list follows", caps)
}

// cmdUTF8 is RFC 6856's switch to UTF-8 mode. It changes nothing here: messages are sent as
// they were stored (internationalised mail with its UTF-8 header, never downgraded), and user
// names in UTF-8 are accepted in USER, PASS and AUTH PLAIN whether or not UTF8 was sent.
func (s *session) cmdUTF8([]string) error {
	return s.ok("UTF-8 mode on")
}

func (s *session) cmdQuit([]string) error {
	if s.state == stateTransaction {
		return s.update()
	}
	if err := s.ok(s.cfg.Hostname + " POP3 server signing off"); err != nil {
		return err
	}
	return errQuit
}

func (s *session) cmdStls([]string) error {
	if s.tls {
		return syntaxError("TLS is already active")
	}
	if s.cfg.TLSConfig == nil {
		return fail("SYS/PERM", "TLS is not available")
	}
	if s.br.Buffered() > 0 {
		// Commands pipelined behind STLS were sent in the clear; they are dropped with the old
		// reader so an attacker cannot inject them into the TLS session.
		s.log.Info("client sent data after STLS before the TLS handshake; discarding it")
	}
	if err := s.ok("Begin TLS negotiation"); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	tc := tls.Server(s.conn, s.cfg.TLSConfig)
	ctx, cancel := context.WithTimeout(s.srv.ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("STLS handshake: %w", err)
	}
	s.setConn(tc)
	s.tls = true
	return nil
}

// tlsRequired is the answer to a login attempt on a plain connection.
func (s *session) tlsRequired() error {
	if s.cfg.TLSConfig != nil {
		return errTLSRequired
	}
	return errTLSRequiredNoS
}

func (s *session) cmdUser(args []string) error {
	if s.peer {
		return errPeerLogin
	}
	if !s.tls {
		return s.tlsRequired()
	}
	// The same answer for every name: whether it exists shows only after PASS, and then
	// looks like a wrong password.
	s.user = args[0]
	return s.ok("Send your password")
}

func (s *session) cmdPass(args []string) error {
	if s.peer {
		return errPeerLogin
	}
	if !s.tls {
		return s.tlsRequired()
	}
	if s.user == "" {
		return syntaxError("Send USER first")
	}
	user := s.user
	s.user = ""
	return s.login(user, args[0])
}

func (s *session) cmdAuth(args []string) error {
	if !s.tls {
		return s.tlsRequired()
	}
	if len(args) == 0 {
		// The mechanism list of RFC 1734, which some clients still ask for.
		return s.multiLine("Supported mechanisms follow", []string{"PLAIN"})
	}
	switch mech := strings.ToUpper(args[0]); {
	case s.peer && mech == "EXTERNAL":
		return s.authExternal(args[1:])
	case s.peer:
		return errPeerLogin
	case mech != "PLAIN":
		return fail("", "Unsupported authentication mechanism")
	}
	var resp string
	if len(args) == 2 {
		resp = args[1] // initial response (RFC 5034 section 4)
	} else {
		if err := s.replyLine("+ "); err != nil {
			return err
		}
		line, err := s.readLine(maxAuthLine)
		switch {
		case errors.Is(err, errLineTooLong):
			return syntaxError("Authentication response too long")
		case err != nil:
			return err
		}
		if line == "*" {
			return fail("", "Authentication cancelled")
		}
		resp = line
	}
	if resp == "=" {
		resp = "" // an empty response (RFC 5034)
	}
	data, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return syntaxError("Invalid base64 in authentication response")
	}
	// RFC 4616: [authzid] NUL authcid NUL passwd.
	parts := strings.Split(string(data), "\x00")
	if len(parts) != 3 || parts[1] == "" {
		return syntaxError("Malformed PLAIN authentication response")
	}
	authzid, user, pass := parts[0], parts[1], parts[2]
	if authzid != "" && !strings.EqualFold(authzid, user) {
		// Acting as another user is not supported; say no like for a wrong password.
		return errAuthFailed
	}
	return s.login(user, pass)
}

// login checks the credentials and opens the maildrop.
func (s *session) login(user, pass string) error {
	mb, err := s.cfg.Auth.Login(s.srv.ctx, protocol, s.ip, user, pass)
	switch {
	case errors.Is(err, login.ErrThrottled):
		return errThrottled
	case errors.Is(err, login.ErrDisabled):
		return errDisabled
	case err != nil:
		return errAuthFailed
	}
	if s.cfg.Route != nil {
		if take := s.cfg.Route(mb); take != nil {
			return s.handOff(mb, take)
		}
	}
	return s.open(mb)
}

// open opens the maildrop of a mailbox whose user logged in.
func (s *session) open(mb *directory.Mailbox) error {
	drop, err := openMaildrop(s.cfg.Store, mb.Address)
	if err != nil {
		if errors.Is(err, errInUseLock) {
			return errInUse
		}
		s.log.Error("opening a POP3 maildrop failed", "mailbox", mb.Address, "err", err)
		return errUnavailable
	}
	s.drop = drop
	s.srv.mu.Lock()
	s.mailbox = mb.Address
	s.srv.mu.Unlock()
	s.state = stateTransaction
	s.log = s.log.With("mailbox", mb.Address)
	s.log.Info("POP3 login", "tls", s.tls, "messages", len(drop.msgs))
	count, size := drop.stat()
	return s.ok(fmt.Sprintf("Logged in, %d messages (%d octets)", count, size))
}
