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
// shuts down; then it calls done. IDLE moves the session to a new goroutine (see idle), so
// serve may return before the session ends.
func (s *session) serve(done func()) {
	s.done = done
	if !s.greet() {
		s.finish()
		return
	}
	s.loop()
}

// finish ends the session.
func (s *session) finish() {
	s.close()
	s.done()
}

// loop reads and runs commands. It returns when the session ends (after finish) or when IDLE
// has moved the session to a goroutine of its own.
func (s *session) loop() {
	suspended := false
	defer func() {
		if !suspended {
			s.finish()
		}
	}()
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
			if s.dispatch(cmd) {
				suspended = true
				go s.idleResume(cmd.Tag)
				return
			}
		}
		if s.w.Flush() != nil {
			return
		}
	}
}

// shuttingDown says BYE when the server is closing or the session was ended (EndSessions).
func (s *session) shuttingDown() bool {
	code, text, end := s.ending()
	if end {
		s.byeWith(code, text)
	}
	return end
}

// ending says whether the session must end, and the response code and text of its BYE.
func (s *session) ending() (code, text string, end bool) {
	if t := s.ended.Load(); t != nil {
		return "UNAVAILABLE", *t, true
	}
	if s.srv.ctx.Err() != nil {
		return "", s.srv.cfg.Hostname + " IMAP server shutting down, please reconnect", true
	}
	return "", "", false
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
func (s *session) bye(text string) { s.byeWith("", text) }

// byeWith says goodbye with a response code.
func (s *session) byeWith(code, text string) {
	s.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	s.w.UntaggedStatus(wire.BYE, code, nil, text)
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
	// handshake); suspend: IDLE waits for DONE in a goroutine of its own (idleResume).
	answered, suspend bool
}

// dispatch runs one command and writes its tagged response, preceded by the changes other
// sessions made to the selected folder.
// It reports whether the command (IDLE) suspended the session, to go on in another goroutine.
func (s *session) dispatch(cmd *wire.Command) bool {
	name, args, uid := cmd.Name, cmd.Args, false
	if name == "UID" {
		if len(args) == 0 || args[0].Kind != wire.KindAtom {
			s.w.Tagged(cmd.Tag, wire.BAD, "", nil, "UID needs a command: FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE, SORT or THREAD")
			return false
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
		return false
	}
	if h.states&s.state == 0 {
		s.w.Tagged(cmd.Tag, wire.BAD, "", nil, name+" is not allowed "+stateText(s.state))
		return false
	}
	res, err := h.run(s, cmd.Tag, args, uid)
	if res.suspend && err == nil {
		return true
	}
	if !h.tracksItself {
		s.track(name, err)
	}
	if res.answered || (s.state == stateLogout && name != "LOGOUT") {
		return false // answered, or the connection ended inside the command
	}
	if s.sel != nil && h.polls {
		// RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH, as the client may
		// be working through sequence numbers; their UID forms may.
		s.poll(uid || !h.noExpunge)
	}
	if s.notify != nil && h.polls {
		s.writeNotify()
	}
	s.complete(cmd.Tag, name, res, err)
	return false
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
	contexts := len(s.sel.contexts) > 0
	var since uint64
	if contexts {
		since = s.sel.folder.HighestModSeq()
	}
	ups := s.sel.pending(allowExpunge, s.qresync)
	if contexts {
		s.removeExpunged(ups)
	}
	for _, u := range ups {
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
			if s.newFetch != nil {
				s.fetchNew(u.seq, u.exists)
			}
		default:
			s.writeFlagsFetch(u.seq, u.uid, u.flags, u.modSeq)
		}
	}
	if contexts {
		s.refreshContexts(since)
	}
}

// fetchNew sends what NOTIFY's MessageNew asked for of the new messages first to last.
func (s *session) fetchNew(first, last uint32) {
	if err := s.fetch(imap.SeqSet{{Start: first, Stop: last}}, s.newFetch); err != nil {
		s.log.Warn("NOTIFY: fetching new messages", "err", err)
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

// idle streams changes until the client sends DONE (RFC 2177). An idle session holds one
// goroutine, blocked reading DONE, and a small one: the session's goroutine, whose stack grew
// with the commands it ran, hands over to a fresh one (idleResume) that only waits. A change to
// the folder starts a short-lived goroutine that writes the updates (idleFlush), and the write
// lock keeps the two apart. Thousands of idle sessions thus cost little.
func (s *session) idle(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("IDLE", args); err != nil {
		return reply{}, err
	}
	s.w.Continue("idling")
	if s.sel != nil {
		s.poll(true)
	}
	if s.notify != nil {
		s.writeNotify()
	}
	if err := s.w.Flush(); err != nil {
		return reply{}, err
	}
	// The deadline is set before the updates may start: a shutdown's "now" must not be
	// overtaken. A shutdown that came before it (the client may have seen the continuation)
	// is looked for after it, as in loop.
	s.nc.SetReadDeadline(time.Now().Add(idleTimeout))
	if s.srv.ctx.Err() != nil {
		s.nc.SetReadDeadline(time.Now())
	}
	s.setIdling(true)
	return reply{suspend: true}, nil
}

// idleResume waits for DONE, answers IDLE and goes on with the session.
func (s *session) idleResume(tag string) {
	line, err := s.r.ReadLine()
	s.setIdling(false)
	if err == nil && !strings.EqualFold(line, "DONE") {
		err = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "IDLE ends with DONE"}
	}
	code, text, end := s.ending()
	switch {
	case err != nil && end:
		s.byeWith(code, text)
		err = nil
	default:
		err = s.idleEnded(err)
	}
	s.track("IDLE", err)
	if s.state != stateLogout {
		s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		s.complete(tag, "IDLE", reply{}, err)
		if s.w.Flush() != nil {
			s.state = stateLogout
		}
	}
	s.loop()
}

// setIdling starts or stops the updates of an IDLE: the selected folder's changes and, with
// NOTIFY, other folders'. Stopping waits for an update being written, and any that starts
// later writes nothing: the next command reports its changes.
func (s *session) setIdling(on bool) {
	sel, nt := s.sel, s.notify
	if sel == nil && nt == nil {
		return
	}
	s.wmu.Lock()
	s.idling = on
	s.wmu.Unlock()
	var wake func()
	if on {
		wake = func() { s.idleWake(sel, nt) }
	}
	if sel != nil {
		sel.mu.Lock()
		sel.onWake = wake
		if wake != nil && len(sel.wake) > 0 {
			wake() // a change came between the poll and now
		}
		sel.mu.Unlock()
	}
	if nt != nil {
		nt.setOnWake(wake)
	}
}

// idleWake runs in the store's watchers (under a folder's lock): it only starts idleFlush,
// unless one is running, which then sees the token the watcher left. sel and nt are what the
// session idles with: s.sel and s.notify may change once IDLE has ended.
func (s *session) idleWake(sel *selection, nt *notifier) {
	if s.flushing.CompareAndSwap(false, true) {
		go s.idleFlush(sel, nt)
	}
}

// idleFlush writes the changes an idle client has not heard of, until no more are pending.
func (s *session) idleFlush(sel *selection, nt *notifier) {
	for {
		for _, wake := range idleTokens(sel, nt) {
			select {
			case <-wake:
			default:
			}
		}
		s.wmu.Lock()
		if s.idling {
			if sel != nil {
				s.poll(true)
			}
			if nt != nil {
				s.writeNotify()
			}
			s.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := s.w.Flush(); err != nil {
				s.nc.Close() // the reader of DONE then ends the session
			}
		}
		s.wmu.Unlock()
		s.flushing.Store(false)
		// A change after the token was taken left a new one; one whose watcher saw
		// flushing still set relies on this look.
		pending := false
		for _, wake := range idleTokens(sel, nt) {
			pending = pending || len(wake) > 0
		}
		if !pending || !s.flushing.CompareAndSwap(false, true) {
			return
		}
	}
}

// idleTokens are the wake channels of what an IDLE follows.
func idleTokens(sel *selection, nt *notifier) []chan struct{} {
	var out []chan struct{}
	if sel != nil {
		out = append(out, sel.wake)
	}
	if nt != nil {
		out = append(out, nt.wake)
	}
	return out
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
