package imapd

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// Time limits of a connection. RFC 9051 5.4: an authenticated client idle for less than 30
// minutes must not be logged out; one that has not logged in gets far less.
const (
	preAuthTimeout = 2 * time.Minute
	idleTimeout    = 31 * time.Minute
	// writeTimeout bounds each response: a client that stops reading does not hold its
	// session forever.
	writeTimeout = 5 * time.Minute
)

// serve runs one connection until the client logs out, the connection fails or the server
// shuts down.
func (s *session) serve() {
	defer s.close()
	if !s.greet() {
		return
	}
	for s.state != stateLogout {
		timeout := idleTimeout
		if s.state == stateNotAuthenticated {
			timeout = preAuthTimeout
		}
		// Shutdown sets a past read deadline on every connection: looking at the server's
		// context after setting ours catches a shutdown that came before it.
		s.nc.SetReadDeadline(time.Now().Add(timeout))
		if s.shuttingDown() {
			return
		}
		cmd, err := s.r.ReadCommand()
		if s.shuttingDown() {
			return
		}
		if err != nil && !s.rejected(err) {
			return
		}
		if cmd != nil {
			s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			s.dispatch(cmd)
		}
		if s.w.Flush() != nil {
			return
		}
	}
}

// shuttingDown says BYE when the server is closing.
func (s *session) shuttingDown() bool {
	if s.srv.ctx.Err() == nil {
		return false
	}
	s.bye(s.srv.cfg.Hostname + " IMAP server shutting down, please reconnect")
	return true
}

// greet sends the greeting, or BYE when the server is closing.
func (s *session) greet() bool {
	s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if s.srv.ctx.Err() != nil {
		s.w.UntaggedStatus(wire.BYE, "", nil, "Server shutting down, try again later")
		s.w.Flush()
		return false
	}
	s.w.UntaggedStatus(wire.OK, "CAPABILITY", atoms(s.capabilities()), s.srv.cfg.Hostname+" IMAP server ready")
	return s.w.Flush() == nil
}

// rejected answers a command the reader refused and reports whether the connection goes on.
func (s *session) rejected(err error) bool {
	var e *wire.Error
	if !errors.As(err, &e) {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.bye("Autologout; idle for too long")
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		default:
			s.log.Debug("reading a command", "err", err)
		}
		return false
	}
	s.w.Error(e)
	if e.Fatal {
		s.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		s.w.Flush()
		return false
	}
	return true
}

// bye says goodbye; the connection closes after it.
func (s *session) bye(text string) {
	s.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	s.w.UntaggedStatus(wire.BYE, "", nil, text)
	s.w.Flush()
	s.state = stateLogout
}

// reply is a command's successful completion: its response code and text, OK <name>
// completed when empty.
type reply struct {
	code string
	args []wire.Value
	text string
	// answered: the command wrote its tagged response itself (STARTTLS must, before the
	// handshake).
	answered bool
}

// dispatch runs one command and writes its tagged response, preceded by the changes other
// sessions made to the selected folder.
func (s *session) dispatch(cmd *wire.Command) {
	name, args, uid := cmd.Name, cmd.Args, false
	if name == "UID" {
		if len(args) == 0 || args[0].Kind != wire.KindAtom {
			s.w.Tagged(cmd.Tag, wire.BAD, "", nil, "UID needs a command: FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE, SORT or THREAD")
			return
		}
		name, args, uid = strings.ToUpper(args[0].Str), args[1:], true
	}
	h, ok := commands[name]
	if !ok || (uid && !h.uid) {
		shown := name
		if uid {
			shown = "UID " + name
		}
		s.w.Tagged(cmd.Tag, wire.BAD, "", nil, "Unknown command "+strconv.Quote(clip(shown, 40)))
		return
	}
	if h.states&s.state == 0 {
		s.w.Tagged(cmd.Tag, wire.BAD, "", nil, name+" is not allowed "+stateText(s.state))
		return
	}
	res, err := h.run(s, cmd.Tag, args, uid)
	if !h.tracksItself {
		s.track(name, err)
	}
	if res.answered || (s.state == stateLogout && name != "LOGOUT") {
		return // answered, or the connection ended inside the command (BYE during IDLE)
	}
	if s.sel != nil && h.polls {
		// RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH, as the client may
		// be working through sequence numbers; their UID forms may.
		s.poll(uid || !h.noExpunge)
	}
	s.complete(cmd.Tag, name, res, err)
}

// complete writes a command's tagged response.
func (s *session) complete(tag, name string, res reply, err error) {
	if err == nil {
		text := res.text
		if text == "" {
			text = name + " completed"
		}
		s.w.Tagged(tag, wire.OK, res.code, res.args, text)
		return
	}
	var (
		ie *imap.Error
		ae *argError
	)
	switch {
	case errors.As(err, &ae):
		s.w.Tagged(tag, ae.Status(), ae.Code(), nil, ae.Error())
	case errors.As(err, &ie):
		status := string(ie.Type)
		if status == "" {
			status = wire.NO
		}
		s.w.Tagged(tag, status, string(ie.Code), nil, ie.Text)
	default:
		s.log.Error("command failed", "command", name, "err", err)
		s.w.Tagged(tag, wire.NO, "SERVERBUG", nil, "Internal error, try again later")
	}
}

// poll writes the changes to the selected folder the client has not heard of.
func (s *session) poll(allowExpunge bool) {
	for _, u := range s.sel.pending(allowExpunge, s.qresync) {
		switch {
		case u.flagNames != nil:
			s.writeFlagNames(u.flagNames)
		case u.vanished != nil:
			s.w.Untagged(wire.Atom("VANISHED"), wire.Atom(u.vanished.String()))
		case u.expunged != 0:
			s.w.Untagged(wire.Number(uint64(u.expunged)), wire.Atom("EXPUNGE"))
		case u.exists != 0:
			s.w.Untagged(wire.Number(uint64(u.exists)), wire.Atom("EXISTS"))
			if !s.rev2 {
				s.w.Untagged(wire.Number(0), wire.Atom("RECENT"))
			}
		default:
			s.writeFlagsFetch(u.seq, u.uid, u.flags, u.modSeq)
		}
	}
}

// writeFlagsFetch reports a message's flags, with its mod-sequence to a CONDSTORE client.
func (s *session) writeFlagsFetch(seq, uid uint32, flags []string, modSeq uint64) {
	items := []wire.Value{wire.Atom("UID"), wire.Number(uint64(uid)), wire.Atom("FLAGS"), flagValues(flags)}
	if s.condstore {
		items = append(items, wire.Atom("MODSEQ"), wire.List(wire.Number(modSeq)))
	}
	s.w.Untagged(wire.Number(uint64(seq)), wire.Atom("FETCH"), wire.List(items...))
}

// writeFlagNames announces the folder's flags, and that all of them may be set unless the
// folder is read-only.
func (s *session) writeFlagNames(names []string) {
	s.w.Untagged(wire.Atom("FLAGS"), flagValues(names))
	permanent := wire.List()
	if !s.sel.readOnly {
		permanent = wire.List(append(atoms(names), wire.Atom(`\*`))...)
	}
	s.w.UntaggedStatus(wire.OK, "PERMANENTFLAGS", []wire.Value{permanent}, "Flags permitted")
}

// announceFlags writes a FLAGS response now if a keyword is new, so that a STORE that adds one
// names it before the FETCH responses that show it.
func (s *session) announceFlags() {
	s.sel.mu.Lock()
	var names []string
	if s.sel.newKeywords {
		names, s.sel.newKeywords = s.sel.flagNames(), false
	}
	s.sel.mu.Unlock()
	if names != nil {
		s.writeFlagNames(names)
	}
}

// idle streams changes until the client sends DONE (RFC 2177).
func (s *session) idle(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("IDLE", args); err != nil {
		return reply{}, err
	}
	s.w.Continue("idling")
	if s.sel != nil {
		s.poll(true)
	}
	if err := s.w.Flush(); err != nil {
		return reply{}, err
	}
	// The deadline is set here, never by the reader: a shutdown's "now" must not be overtaken.
	s.nc.SetReadDeadline(time.Now().Add(idleTimeout))
	done := make(chan error, 1)
	go func() {
		line, err := s.r.ReadLine()
		if err == nil && !strings.EqualFold(line, "DONE") {
			err = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "IDLE ends with DONE"}
		}
		done <- err
	}()
	var wake chan struct{}
	if s.sel != nil {
		wake = s.sel.wake
	}
	for {
		select {
		case err := <-done:
			return reply{}, s.idleEnded(err)
		case <-wake:
			s.poll(true)
			s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.w.Flush(); err != nil {
				s.nc.Close()
				<-done
				return reply{}, err
			}
		case <-s.srv.ctx.Done():
			// Shutting down: stop the reader and let serve say BYE.
			s.nc.SetReadDeadline(time.Now())
			<-done
			s.bye(s.srv.cfg.Hostname + " IMAP server shutting down, please reconnect")
			return reply{}, nil
		}
	}
}

// idleEnded turns the end of IDLE's read into the command's result.
func (s *session) idleEnded(err error) error {
	var ie *imap.Error
	switch {
	case err == nil, errors.As(err, &ie):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.bye("Autologout; idle for too long")
	default:
		s.state = stateLogout
	}
	return nil
}

func stateText(st state) string {
	switch st {
	case stateNotAuthenticated:
		return "before LOGIN"
	case stateAuthenticated:
		return "without a selected folder"
	case stateSelected:
		return "with a folder selected"
	}
	return "now"
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func atoms(names []string) []wire.Value {
	out := make([]wire.Value, len(names))
	for i, n := range names {
		out[i] = wire.Atom(n)
	}
	return out
}

// flagValues is a parenthesised list of flags.
func flagValues(flags []string) wire.Value {
	return wire.List(atoms(flags)...)
}
