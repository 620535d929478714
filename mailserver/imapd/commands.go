package imapd

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// handler is how one command runs.
type handler struct {
	states state // the states it is allowed in
	uid    bool  // it has a UID form
	// polls: the selected folder's changes are reported before the tagged response;
	// noExpunge: except expunges, for FETCH, STORE and SEARCH by sequence number.
	polls, noExpunge bool
	// tracksItself: the command counts itself (LOGIN and AUTHENTICATE count as logins).
	tracksItself bool
	run          func(s *session, tag string, args []wire.Value, uid bool) (reply, error)
}

const (
	anyState = stateNotAuthenticated | stateAuthenticated | stateSelected
	loggedIn = stateAuthenticated | stateSelected
)

// commands is every command the server knows, by name. Extensions in files of their own add
// theirs in an init function.
var commands = map[string]handler{
	"CAPABILITY":   {states: anyState, run: (*session).cmdCapability},
	"NOOP":         {states: anyState, polls: true, run: noop},
	"LOGOUT":       {states: anyState, run: (*session).cmdLogout},
	"ID":           {states: anyState, run: (*session).cmdID},
	"STARTTLS":     {states: stateNotAuthenticated, run: (*session).cmdStartTLS},
	"LOGIN":        {states: stateNotAuthenticated, tracksItself: true, run: (*session).cmdLogin},
	"AUTHENTICATE": {states: stateNotAuthenticated, tracksItself: true, run: (*session).cmdAuthenticate},

	"ENABLE":      {states: loggedIn, run: (*session).cmdEnable},
	"SELECT":      {states: loggedIn, run: (*session).cmdSelect},
	"EXAMINE":     {states: loggedIn, run: (*session).cmdExamine},
	"CREATE":      {states: loggedIn, polls: true, run: (*session).cmdCreate},
	"DELETE":      {states: loggedIn, polls: true, run: (*session).cmdDelete},
	"RENAME":      {states: loggedIn, polls: true, run: (*session).cmdRename},
	"SUBSCRIBE":   {states: loggedIn, polls: true, run: (*session).cmdSubscribe},
	"UNSUBSCRIBE": {states: loggedIn, polls: true, run: (*session).cmdUnsubscribe},
	"LIST":        {states: loggedIn, polls: true, run: (*session).cmdList},
	"LSUB":        {states: loggedIn, polls: true, run: (*session).cmdLsub},
	"NAMESPACE":   {states: loggedIn, polls: true, run: (*session).cmdNamespace},
	"STATUS":      {states: loggedIn, polls: true, run: (*session).cmdStatus},
	"APPEND":      {states: loggedIn, polls: true, run: (*session).cmdAppend},
	"IDLE":        {states: loggedIn, tracksItself: true, run: (*session).idle},

	"CHECK":    {states: stateSelected, polls: true, run: noop},
	"CLOSE":    {states: stateSelected, run: (*session).cmdClose},
	"UNSELECT": {states: stateSelected, run: (*session).cmdUnselect},
	"EXPUNGE":  {states: stateSelected, uid: true, polls: true, run: (*session).cmdExpunge},
	"SEARCH":   {states: stateSelected, uid: true, polls: true, noExpunge: true, run: (*session).cmdSearch},
	"FETCH":    {states: stateSelected, uid: true, polls: true, noExpunge: true, run: (*session).cmdFetch},
	"STORE":    {states: stateSelected, uid: true, polls: true, noExpunge: true, run: (*session).cmdStore},
	"COPY":     {states: stateSelected, uid: true, polls: true, run: (*session).cmdCopy},
	"MOVE":     {states: stateSelected, uid: true, polls: true, run: (*session).cmdMove},
}

// capabilities is what the server offers in the session's state. Before login that is what
// logging in needs and little more, as Dovecot offers: the rest is of no use yet, tells an
// anonymous peer what it is talking to, and the tagged OK of LOGIN and AUTHENTICATE carries
// the full list (RFC 9051 6.2), so clients need not ask again.
func (s *session) capabilities() []string {
	caps := []string{"IMAP4rev1", "IMAP4rev2"}
	if s.state == stateNotAuthenticated {
		switch {
		case s.peer:
			caps = append(caps, "AUTH=EXTERNAL")
		case s.tls:
			caps = append(caps, "AUTH=PLAIN")
		case s.srv.cfg.TLSConfig != nil:
			caps = append(caps, "STARTTLS", "LOGINDISABLED")
		default:
			caps = append(caps, "LOGINDISABLED")
		}
		return append(caps, "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE")
	}
	caps = append(caps, "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE", "NAMESPACE", "UNSELECT",
		"UIDPLUS", "ESEARCH", "SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "MOVE", "STATUS=SIZE",
		"BINARY", "CHILDREN", "SPECIAL-USE", "CREATE-SPECIAL-USE", "UTF8=ACCEPT", "CONDSTORE", "QRESYNC",
		"APPENDLIMIT="+strconv.FormatUint(uint64(s.srv.appendLimit()), 10))
	return append(caps, extensionCaps...)
}

// extensionCaps are the capabilities of extensions that register their commands from files of
// their own.
var extensionCaps []string

func noop(*session, string, []wire.Value, bool) (reply, error) { return reply{}, nil }

// noArgs refuses arguments to a command that takes none.
func noArgs(name string, args []wire.Value) error {
	if len(args) > 0 {
		return badArg("%s takes no arguments", name)
	}
	return nil
}

func (s *session) cmdCapability(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("CAPABILITY", args); err != nil {
		return reply{}, err
	}
	s.w.Untagged(append([]wire.Value{wire.Atom("CAPABILITY")}, atoms(s.capabilities())...)...)
	return reply{}, nil
}

func (s *session) cmdLogout(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("LOGOUT", args); err != nil {
		return reply{}, err
	}
	s.w.UntaggedStatus(wire.BYE, "", nil, "Logging out")
	s.state = stateLogout
	return reply{}, nil
}

// cmdID answers RFC 2971's ID; what the client says of itself goes to the debug log.
func (s *session) cmdID(_ string, args []wire.Value, _ bool) (reply, error) {
	id, err := parseIDArgs(args)
	if err != nil {
		return reply{}, err
	}
	if len(id) > 0 {
		s.log.Debug("client id", "name", id["name"], "version", id["version"])
	}
	s.w.Untagged(wire.Atom("ID"), wire.List(wire.String("name"), wire.String("kubemail")))
	return reply{}, nil
}

// cmdStartTLS switches to TLS. Anything the client sent after the command would have been
// read in clear text and then trusted as if encrypted, so it ends the connection.
func (s *session) cmdStartTLS(tag string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("STARTTLS", args); err != nil {
		return reply{}, err
	}
	switch {
	case s.tls:
		return reply{}, badArg("The connection is already encrypted")
	case s.srv.cfg.TLSConfig == nil:
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "STARTTLS is not offered here"}
	case s.r.Buffered() > 0:
		s.w.Tagged(tag, wire.BAD, "", nil, "Commands sent after STARTTLS before the handshake are refused")
		s.bye("Protocol violation")
		return reply{answered: true}, nil
	}
	s.w.Tagged(tag, wire.OK, "", nil, "Begin TLS negotiation now")
	if err := s.w.Flush(); err != nil {
		s.state = stateLogout
		return reply{answered: true}, nil
	}
	tc := tls.Server(s.nc, s.srv.cfg.TLSConfig)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		s.log.Debug("STARTTLS handshake", "err", err)
		s.state = stateLogout
		return reply{answered: true}, nil
	}
	tc.SetDeadline(time.Time{})
	s.tls = true
	s.setConn(tc)
	return reply{answered: true}, nil
}

func (s *session) cmdLogin(tag string, args []wire.Value, _ bool) (reply, error) {
	if s.peer {
		return reply{}, errPeerLogin
	}
	if len(args) != 2 {
		return reply{}, badArg("LOGIN takes a user name and a password")
	}
	user, ok1 := args[0].AString()
	pass, ok2 := args[1].AString()
	if !ok1 || !ok2 {
		return reply{}, badArg("LOGIN takes a user name and a password as strings")
	}
	return s.login(tag, user, pass)
}

// cmdAuthenticate serves SASL PLAIN (RFC 4616), with the initial response in the command
// (SASL-IR) or after a continuation request.
func (s *session) cmdAuthenticate(tag string, args []wire.Value, _ bool) (reply, error) {
	if len(args) < 1 || len(args) > 2 || args[0].Kind != wire.KindAtom {
		return reply{}, badArg("AUTHENTICATE takes a mechanism and an optional initial response")
	}
	switch mech := strings.ToUpper(args[0].Str); {
	case s.peer && mech == "EXTERNAL":
		return s.authenticateExternal(tag, args[1:])
	case s.peer:
		return reply{}, errPeerLogin
	case mech != "PLAIN":
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Text: fmt.Sprintf("Mechanism %q is not supported; use PLAIN", clip(args[0].Str, 20))}
	}
	if !s.tls {
		s.track("LOGIN", errPrivacyRequired)
		return reply{}, errPrivacyRequired
	}
	var resp string
	if len(args) == 2 {
		if args[1].Kind != wire.KindAtom {
			return reply{}, badArg("the initial response is base64 or =")
		}
		resp = args[1].Str
	} else {
		s.w.Continue("")
		if err := s.w.Flush(); err != nil {
			return reply{}, err
		}
		line, err := s.r.ReadLine()
		if err != nil {
			return reply{}, badArg("reading the response: %v", err)
		}
		resp = line
	}
	if resp == "*" {
		return reply{}, badArg("AUTHENTICATE cancelled")
	}
	user, pass, err := decodePlain(resp)
	if err != nil {
		return reply{}, err
	}
	return s.login(tag, user, pass)
}

// decodePlain reads a PLAIN response: [authzid] NUL authcid NUL password. Acting as someone
// else (an authzid that is not the user) is not offered.
func decodePlain(resp string) (user, pass string, err error) {
	if resp == "=" {
		resp = ""
	}
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", "", badArg("the PLAIN response is not base64")
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 {
		return "", "", badArg("the PLAIN response is authzid NUL user NUL password")
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return "", "", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
			Text: "Logging in as another user is not allowed"}
	}
	return parts[1], parts[2], nil
}

// cmdEnable turns on IMAP4rev2, UTF8=ACCEPT, CONDSTORE and QRESYNC (RFC 5161); other names
// are ignored, as the RFC asks.
func (s *session) cmdEnable(_ string, args []wire.Value, _ bool) (reply, error) {
	names, err := parseEnableArgs(args)
	if err != nil {
		return reply{}, err
	}
	enabled := []wire.Value{wire.Atom("ENABLED")}
	for _, n := range names {
		switch n {
		case "IMAP4REV2":
			s.rev2 = true
			enabled = append(enabled, wire.Atom("IMAP4rev2"))
		case "UTF8=ACCEPT":
			s.utf8 = true
			enabled = append(enabled, wire.Atom("UTF8=ACCEPT"))
		case "CONDSTORE":
			s.useCondStore(true)
			enabled = append(enabled, wire.Atom("CONDSTORE"))
		case "QRESYNC":
			s.useCondStore(true)
			s.qresync = true
			enabled = append(enabled, wire.Atom("QRESYNC"))
		}
	}
	s.w.UTF8 = s.rev2 || s.utf8
	s.w.Untagged(enabled...)
	return reply{}, nil
}
