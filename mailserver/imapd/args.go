package imapd

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// This file and args_*.go turn the arguments the wire reader produced into the go-imap types
// the command handlers work with. They only check syntax; whether a command may run in the
// session's state, or a folder exists, is the handlers' business.

// argError is a command whose arguments are wrong: the client is answered "tag BAD text", or
// "tag NO [code] text" when there is a code (only BADCHARSET so far, which RFC 3501 answers
// with NO since the search itself was well formed).
type argError struct {
	code string // "" or an IMAP response code such as "BADCHARSET"
	text string // what was wrong, for the person reading the client's log
}

func (e *argError) Error() string { return e.text }

// Status is the status of the tagged answer: "NO" for an error with a response code, else "BAD".
func (e *argError) Status() string {
	if e.code != "" {
		return "NO"
	}
	return "BAD"
}

// Code is the response code, "" for none.
func (e *argError) Code() string { return e.code }

// badCharsetCode names the charsets SEARCH accepts, so that the client can retry with one.
const badCharsetCode = "BADCHARSET (UTF-8 US-ASCII)"

func badArg(format string, args ...any) *argError {
	return &argError{text: fmt.Sprintf(format, args...)}
}

// argList walks a command's arguments, naming the command in its errors.
type argList struct {
	cmd  string
	vals []wire.Value
	i    int
}

// commandName is how errors name a command that has a UID form.
func commandName(name string, uid bool) string {
	if uid {
		return "UID " + name
	}
	return name
}

func newArgList(cmd string, vals []wire.Value) *argList { return &argList{cmd: cmd, vals: vals} }

func (a *argList) more() bool { return a.i < len(a.vals) }

// peek returns the next argument without consuming it; ok is false at the end.
func (a *argList) peek() (wire.Value, bool) {
	if a.i >= len(a.vals) {
		return wire.Value{}, false
	}
	return a.vals[a.i], true
}

// next consumes the next argument; what says what was expected, for the error.
func (a *argList) next(what string) (wire.Value, error) {
	if a.i >= len(a.vals) {
		return wire.Value{}, badArg("%s: missing argument: %s", a.cmd, what)
	}
	a.i++
	return a.vals[a.i-1], nil
}

// end refuses arguments left over.
func (a *argList) end() error {
	if a.i < len(a.vals) {
		return badArg("%s: too many arguments, starting at %s", a.cmd, describeValue(a.vals[a.i]))
	}
	return nil
}

// nextAtom consumes an atom (a number reads as one too) and returns it upper-cased.
func (a *argList) nextAtom(what string) (string, error) {
	v, err := a.next(what)
	if err != nil {
		return "", err
	}
	if v.Kind != wire.KindAtom && v.Kind != wire.KindNumber && v.Kind != wire.KindNIL {
		return "", badArg("%s: expected %s, found %s", a.cmd, what, describeValue(v))
	}
	return strings.ToUpper(v.Str), nil
}

// nextString consumes an astring and checks that a literal holds UTF-8, as quoted strings
// already must.
func (a *argList) nextString(what string) (string, error) {
	v, err := a.next(what)
	if err != nil {
		return "", err
	}
	s, err := astring(what, v)
	return s, a.wrap(err)
}

// wrap names the command in an error from a helper that does not know it.
func (a *argList) wrap(err error) error {
	if err == nil {
		return nil
	}
	e := &argError{text: a.cmd + ": " + err.Error()}
	if ae, ok := err.(*argError); ok {
		e.code = ae.code
	}
	return e
}

func astring(what string, v wire.Value) (string, error) {
	if v.Kind == wire.KindLiteral && v.Binary {
		return "", badArg("%s cannot be a binary literal", what)
	}
	s, ok := v.AString()
	if !ok {
		return "", badArg("expected %s, found %s", what, describeValue(v))
	}
	if !utf8.ValidString(s) {
		return "", badArg("%s is not valid UTF-8", what)
	}
	return s, nil
}

// nextNumber consumes a number no larger than max.
func (a *argList) nextNumber(what string, max uint64) (uint64, error) {
	v, err := a.next(what)
	if err != nil {
		return 0, err
	}
	n, err := number(what, v, max)
	return n, a.wrap(err)
}

func number(what string, v wire.Value, max uint64) (uint64, error) {
	if v.Kind != wire.KindNumber {
		return 0, badArg("%s must be a number, found %s", what, describeValue(v))
	}
	if v.Num > max {
		return 0, badArg("%s %d is larger than %d", what, v.Num, max)
	}
	return v.Num, nil
}

// Limits of numbers in RFC 9051 and RFC 7162.
const (
	maxNumber   = 1<<32 - 1 // number, nz-number
	maxNumber64 = 1<<63 - 1 // number64, mod-sequence-value
)

// describeValue names an argument in an error message without quoting a whole literal.
func describeValue(v wire.Value) string {
	switch v.Kind {
	case wire.KindAtom, wire.KindNumber, wire.KindNIL:
		return truncateQuote(v.Str)
	case wire.KindQuoted:
		return "the string " + truncateQuote(v.Str)
	case wire.KindLiteral:
		return fmt.Sprintf("a literal of %d bytes", len(v.Lit))
	case wire.KindList:
		return "a parenthesised list"
	}
	return "nothing"
}

func truncateQuote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// parseMailbox reads a folder name: modified UTF-7 for IMAP4rev1 clients, UTF-8 as is once the
// client enabled UTF8=ACCEPT or IMAP4rev2. INBOX is case-insensitive (RFC 3501 5.1), so it is
// spelt in capitals; "inbox/x" is left to the store, which knows its own rules for sub-folders.
func parseMailbox(v wire.Value, utf8 bool) (string, error) {
	name, err := mailboxText("mailbox name", v, utf8)
	if err != nil {
		return "", err
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	return name, nil
}

// mailboxText decodes a folder name or LIST pattern without touching INBOX.
func mailboxText(what string, v wire.Value, utf8Names bool) (string, error) {
	s, err := astring(what, v)
	if err != nil {
		return "", err
	}
	if utf8Names {
		// UTF-8 names, but clients that enabled UTF-8 still send modified UTF-7 at times:
		// go-imap's client escapes "&" as "&-", and old folder lists are replayed as they
		// were listed. A name that reads as modified UTF-7 is decoded; any other (such as
		// "R&D") is taken as it is.
		if name, err := utf7Decode(s); err == nil {
			return name, nil
		}
		return s, nil
	}
	name, err := utf7Decode(s)
	if err != nil {
		return "", badArg("%s %s: %v", what, truncateQuote(s), err)
	}
	return name, nil
}

// mailboxWireName spells a folder name the way the client reads them.
func mailboxWireName(name string, utf8 bool) string {
	if utf8 {
		return name
	}
	return utf7Encode(name)
}

// parseNumSet reads a sequence set, or a UID set for UID commands; "$" is the saved search
// result (RFC 5182).
func parseNumSet(v wire.Value, uid bool) (imap.NumSet, error) {
	if v.Kind != wire.KindAtom && v.Kind != wire.KindNumber {
		return nil, badArg("expected a sequence set, found %s", describeValue(v))
	}
	if v.Str == "$" {
		return imap.SearchRes(), nil
	}
	set, err := wire.ParseSeqSet(v.Str)
	if err != nil {
		return nil, badArg("invalid sequence set %s: a set is like 1:3,5,7:*", truncateQuote(v.Str))
	}
	if uid {
		var out imap.UIDSet
		for _, r := range set {
			out.AddRange(imap.UID(r.Start), imap.UID(r.Stop))
		}
		return out, nil
	}
	var out imap.SeqSet
	for _, r := range set {
		out.AddRange(r.Start, r.Stop)
	}
	return out, nil
}

// parseUIDList reads a uid-set where "*" may not appear (QRESYNC's known UIDs and matches).
func parseUIDList(what string, v wire.Value) (imap.UIDSet, error) {
	if v.Kind != wire.KindAtom && v.Kind != wire.KindNumber {
		return nil, badArg("expected %s, found %s", what, describeValue(v))
	}
	set, err := wire.ParseUIDSet(v.Str)
	if err != nil {
		return nil, badArg("invalid %s %s: numbers and ranges like 1:3,5 without \"*\"", what, truncateQuote(v.Str))
	}
	var out imap.UIDSet
	for _, r := range set {
		out.AddRange(imap.UID(r.Start), imap.UID(r.Stop))
	}
	return out, nil
}

// Date formats of RFC 3501: date-time in APPEND (day space-padded or not), date in SEARCH.
const (
	dateTimeLayout   = "_2-Jan-2006 15:04:05 -0700"
	searchDateLayout = "2-Jan-2006"
)

// parseDateTime reads APPEND's date-time, such as " 1-Feb-1994 21:52:25 -0800". A day
// without its padding space is let through, as some clients trim the quoted string.
func parseDateTime(s string) (time.Time, error) {
	t, err := time.Parse(dateTimeLayout, s)
	if err != nil || len(s) < len(dateTimeLayout)-1 || len(s) > len(dateTimeLayout) {
		return time.Time{}, badArg("invalid date-time %s: expected a date like \"01-Feb-1994 21:52:25 -0800\"", truncateQuote(s))
	}
	return t, nil
}

// parseSearchDate reads SEARCH's date, such as 1-Feb-1994; RFC 3501 allows it quoted.
func parseSearchDate(v wire.Value) (time.Time, error) {
	s, ok := v.AString()
	if !ok || v.Kind == wire.KindLiteral {
		return time.Time{}, badArg("expected a date like 1-Feb-1994, found %s", describeValue(v))
	}
	t, err := time.Parse(searchDateLayout, s)
	if err != nil || !isDateShape(s) {
		return time.Time{}, badArg("invalid date %s: expected a date like 1-Feb-1994", truncateQuote(s))
	}
	return t, nil
}

// isDateShape refuses what time.Parse lets through but RFC 3501's date does not: a day of
// three digits or a year of other than four.
func isDateShape(s string) bool {
	day, rest, ok := strings.Cut(s, "-")
	return ok && len(day) >= 1 && len(day) <= 2 && len(rest) == len("Feb-1994")
}

// canonicalFlags spells the system flags and the registered keywords the way RFC 3501 and the
// IANA registry do, since clients compare them case-sensitively even though IMAP does not.
var canonicalFlags = func() map[string]imap.Flag {
	m := map[string]imap.Flag{}
	for _, f := range []imap.Flag{
		imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft,
		imap.FlagForwarded, imap.FlagMDNSent, imap.FlagJunk, imap.FlagNotJunk, imap.FlagPhishing,
		imap.FlagImportant,
	} {
		m[strings.ToLower(string(f))] = f
	}
	return m
}()

// parseFlags reads a flag list, or a single flag, as a client may set it on a message.
func parseFlags(v wire.Value) ([]imap.Flag, error) {
	vals := []wire.Value{v}
	if v.Kind == wire.KindList {
		vals = v.List
	}
	return flagList(vals)
}

// flagList checks flags a client sets: system flags in canonical case, keywords as atoms, no
// \Recent (only the server sets it) and no other backslash flag, duplicates dropped.
func flagList(vals []wire.Value) ([]imap.Flag, error) {
	var out []imap.Flag
	seen := map[string]bool{}
	for _, v := range vals {
		f, err := parseFlag(v)
		if err != nil {
			return nil, err
		}
		if key := strings.ToLower(string(f)); !seen[key] {
			seen[key] = true
			out = append(out, f)
		}
	}
	return out, nil
}

func parseFlag(v wire.Value) (imap.Flag, error) {
	if v.Kind != wire.KindAtom {
		return "", badArg("expected a flag such as \\Seen or a keyword, found %s", describeValue(v))
	}
	s := v.Str
	if f, ok := canonicalFlags[strings.ToLower(s)]; ok {
		return f, nil
	}
	if strings.HasPrefix(s, "\\") {
		if strings.EqualFold(s, "\\Recent") {
			return "", badArg("flag \\Recent is set by the server only")
		}
		return "", badArg("unknown system flag %s: only \\Seen \\Answered \\Flagged \\Deleted \\Draft may be set", truncateQuote(s))
	}
	if !isKeyword(s) {
		return "", badArg("invalid keyword %s: a keyword is an atom, without ( ) { %% * \" \\ ]", truncateQuote(s))
	}
	return imap.Flag(s), nil
}

// isKeyword reports whether s is an atom (RFC 9051 flag-keyword).
func isKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// parseStoreArgs reads STORE after the sequence set: [(UNCHANGEDSINCE n)] FLAGS[.SILENT],
// +FLAGS or -FLAGS, then a flag list or flags one after another.
func parseStoreArgs(args []wire.Value) (*imap.StoreFlags, *imap.StoreOptions, error) {
	a := newArgList("STORE", args)
	opts := &imap.StoreOptions{}
	if v, ok := a.peek(); ok && v.Kind == wire.KindList {
		a.next("")
		if err := readStoreModifiers(opts, v.List); err != nil {
			return nil, nil, a.wrap(err)
		}
	}
	item, err := a.nextAtom("FLAGS, +FLAGS or -FLAGS")
	if err != nil {
		return nil, nil, err
	}
	sf := &imap.StoreFlags{}
	item, sf.Silent = strings.CutSuffix(item, ".SILENT")
	switch item {
	case "FLAGS":
		sf.Op = imap.StoreFlagsSet
	case "+FLAGS":
		sf.Op = imap.StoreFlagsAdd
	case "-FLAGS":
		sf.Op = imap.StoreFlagsDel
	default:
		return nil, nil, badArg("STORE: unknown item %s: expected FLAGS, +FLAGS or -FLAGS", truncateQuote(item))
	}
	if !a.more() {
		return nil, nil, badArg("STORE: missing argument: the flags")
	}
	vals := a.vals[a.i:]
	if len(vals) == 1 && vals[0].Kind == wire.KindList {
		vals = vals[0].List
	}
	if sf.Flags, err = flagList(vals); err != nil {
		return nil, nil, a.wrap(err)
	}
	return sf, opts, nil
}

// readStoreModifiers reads STORE's modifiers (RFC 4466); UNCHANGEDSINCE is the only one
// (RFC 7162 3.1.3), and 0 is a valid value there.
func readStoreModifiers(opts *imap.StoreOptions, mods []wire.Value) error {
	a := newArgList("modifiers", mods)
	name, err := a.nextAtom("UNCHANGEDSINCE")
	if err != nil {
		return err
	}
	if name != "UNCHANGEDSINCE" {
		return badArg("unknown modifier %s", truncateQuote(name))
	}
	if opts.UnchangedSince, err = a.nextNumber("UNCHANGEDSINCE's mod-sequence", maxNumber64); err != nil {
		return err
	}
	return a.end()
}

// parseEnableArgs reads ENABLE's capability names, upper-cased.
func parseEnableArgs(args []wire.Value) ([]string, error) {
	a := newArgList("ENABLE", args)
	if !a.more() {
		return nil, badArg("ENABLE: missing argument: a capability such as CONDSTORE")
	}
	var caps []string
	for a.more() {
		c, err := a.nextAtom("a capability name")
		if err != nil {
			return nil, err
		}
		caps = append(caps, c)
	}
	return caps, nil
}

// RFC 2971 limits on ID.
const (
	maxIDPairs    = 30
	maxIDKeyBytes = 30
	maxIDValBytes = 1024
)

// parseIDArgs reads ID's parameters: NIL or a list of field/value pairs. Fields are
// case-insensitive, so they are lower-cased; a field whose value is NIL is left out.
func parseIDArgs(args []wire.Value) (map[string]string, error) {
	a := newArgList("ID", args)
	v, err := a.next("NIL or a list of fields and values")
	if err != nil {
		return nil, err
	}
	if err := a.end(); err != nil {
		return nil, err
	}
	out := map[string]string{}
	if v.Kind == wire.KindNIL {
		return out, nil
	}
	if v.Kind != wire.KindList {
		return nil, badArg("ID: expected NIL or a list of fields and values, found %s", describeValue(v))
	}
	if len(v.List)%2 != 0 {
		return nil, badArg("ID: field %s has no value", describeValue(v.List[len(v.List)-1]))
	}
	if len(v.List) > 2*maxIDPairs {
		return nil, badArg("ID: more than %d fields", maxIDPairs)
	}
	seen := map[string]bool{}
	for i := 0; i < len(v.List); i += 2 {
		if err := addIDField(out, seen, v.List[i], v.List[i+1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func addIDField(out map[string]string, seen map[string]bool, k, v wire.Value) error {
	key, err := astring("an ID field name", k)
	if err != nil {
		return badArg("ID: %v", err)
	}
	if key == "" || len(key) > maxIDKeyBytes {
		return badArg("ID: field name %s must be 1 to %d bytes", truncateQuote(key), maxIDKeyBytes)
	}
	key = strings.ToLower(key)
	if seen[key] {
		return badArg("ID: field %s given twice", truncateQuote(key))
	}
	seen[key] = true
	if v.Kind == wire.KindNIL {
		return nil
	}
	val, err := astring("the value of ID field "+truncateQuote(key), v)
	if err != nil {
		return badArg("ID: %v", err)
	}
	if len(val) > maxIDValBytes {
		return badArg("ID: the value of field %s is longer than %d bytes", truncateQuote(key), maxIDValBytes)
	}
	out[key] = val
	return nil
}
