package imapd

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// listArgs is a LIST or LSUB command.
type listArgs struct {
	Ref      string
	Patterns []string // as given, "" included (it asks for the hierarchy delimiter)
	Options  imap.ListOptions
	Extended bool // LIST-EXTENDED syntax: selection options, return options or a pattern list

	ReturnMailboxID bool // RETURN (STATUS (MAILBOXID)), which imap.StatusOptions cannot hold
}

// parseListArgs reads LIST [(selection options)] reference pattern-or-(patterns)
// [RETURN (options)] (RFC 5258, RFC 5819, RFC 6154). LSUB uses it too; its handler refuses
// what LSUB does not take by looking at Extended.
func parseListArgs(args []wire.Value, utf8 bool) (*listArgs, error) {
	a := newArgList("LIST", args)
	la := &listArgs{}
	if v, ok := a.peek(); ok && v.Kind == wire.KindList {
		a.next("")
		la.Extended = true
		if err := la.readSelection(v.List); err != nil {
			return nil, a.wrap(err)
		}
	}
	ref, err := a.next("the reference name")
	if err != nil {
		return nil, err
	}
	if la.Ref, err = mailboxText("reference name", ref, utf8); err != nil {
		return nil, a.wrap(err)
	}
	pv, err := a.next("the mailbox pattern")
	if err != nil {
		return nil, err
	}
	if err := la.readPatterns(pv, utf8); err != nil {
		return nil, a.wrap(err)
	}
	if a.more() {
		if err := la.readReturn(a); err != nil {
			return nil, err
		}
	}
	if err := a.end(); err != nil {
		return nil, err
	}
	if la.Options.SelectRecursiveMatch && !la.Options.SelectSubscribed {
		return nil, badArg("LIST: RECURSIVEMATCH needs another selection option, such as SUBSCRIBED (RFC 5258)")
	}
	return la, nil
}

func (la *listArgs) readSelection(opts []wire.Value) error {
	o := &la.Options
	for _, v := range opts {
		name := ""
		if v.Kind == wire.KindAtom {
			name = strings.ToUpper(v.Str)
		}
		switch name {
		case "SUBSCRIBED":
			o.SelectSubscribed = true
		case "REMOTE":
			o.SelectRemote = true
		case "RECURSIVEMATCH":
			o.SelectRecursiveMatch = true
		case "SPECIAL-USE":
			o.SelectSpecialUse = true
		default:
			return badArg("unknown selection option %s: expected SUBSCRIBED, REMOTE, RECURSIVEMATCH or SPECIAL-USE", describeValue(v))
		}
	}
	return nil
}

func (la *listArgs) readPatterns(pv wire.Value, utf8 bool) error {
	vals := []wire.Value{pv}
	if pv.Kind == wire.KindList {
		if len(pv.List) == 0 {
			return badArg("empty list of patterns")
		}
		la.Extended, vals = true, pv.List
	}
	for _, v := range vals {
		p, err := mailboxText("mailbox pattern", v, utf8)
		if err != nil {
			return err
		}
		la.Patterns = append(la.Patterns, p)
	}
	return nil
}

// readReturn reads RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (items)).
func (la *listArgs) readReturn(a *argList) error {
	kw, err := a.nextAtom("RETURN")
	if err != nil {
		return err
	}
	if kw != "RETURN" {
		return badArg("LIST: expected RETURN after the patterns, found %s", truncateQuote(kw))
	}
	v, err := a.next("the return options")
	if err != nil {
		return err
	}
	if v.Kind != wire.KindList {
		return badArg("LIST: expected return options in parentheses, found %s", describeValue(v))
	}
	la.Extended = true
	r, o := newArgList("LIST", v.List), &la.Options
	for r.more() {
		name, err := r.nextAtom("a return option")
		if err != nil {
			return err
		}
		switch name {
		case "SUBSCRIBED":
			o.ReturnSubscribed = true
		case "CHILDREN":
			o.ReturnChildren = true
		case "SPECIAL-USE":
			o.ReturnSpecialUse = true
		case "STATUS":
			items, err := r.next("the STATUS items")
			if err != nil {
				return err
			}
			st, err := parseStatusItems(items)
			if err != nil {
				return r.wrap(err)
			}
			o.ReturnStatus, la.ReturnMailboxID = &st.StatusOptions, st.MailboxID
		default:
			return badArg("LIST: unknown return option %s: expected SUBSCRIBED, CHILDREN, SPECIAL-USE or STATUS", truncateQuote(name))
		}
	}
	return nil
}

// statusItems are the items of STATUS; MAILBOXID (RFC 8474) is not in imap.StatusOptions.
type statusItems struct {
	imap.StatusOptions
	MailboxID bool
}

// parseStatusItems reads STATUS's list of items.
func parseStatusItems(v wire.Value) (*statusItems, error) {
	if v.Kind != wire.KindList {
		return nil, badArg("STATUS: expected items in parentheses, such as (MESSAGES UNSEEN), found %s", describeValue(v))
	}
	if len(v.List) == 0 {
		return nil, badArg("STATUS: empty list of items")
	}
	st := &statusItems{}
	o := &st.StatusOptions
	items := map[string]*bool{
		"MESSAGES": &o.NumMessages, "UIDNEXT": &o.UIDNext, "UIDVALIDITY": &o.UIDValidity,
		"UNSEEN": &o.NumUnseen, "DELETED": &o.NumDeleted, "SIZE": &o.Size, "RECENT": &o.NumRecent,
		"HIGHESTMODSEQ": &o.HighestModSeq, "APPENDLIMIT": &o.AppendLimit,
		"DELETED-STORAGE": &o.DeletedStorage, "MAILBOXID": &st.MailboxID,
	}
	for _, it := range v.List {
		var p *bool
		if it.Kind == wire.KindAtom {
			p = items[strings.ToUpper(it.Str)]
		}
		if p == nil {
			return nil, badArg("STATUS: unknown item %s", describeValue(it))
		}
		*p = true
	}
	return st, nil
}

// selectArgs is a SELECT or EXAMINE command.
type selectArgs struct {
	Mailbox   string
	CondStore bool         // (CONDSTORE) parameter (RFC 7162 3.1.8)
	QResync   *qresyncArgs // (QRESYNC (...)) parameter (RFC 7162 3.2.5); it implies CONDSTORE
}

// qresyncArgs is what a client remembers of a folder: (QRESYNC (uidvalidity modseq
// [known-uids [(seq-match uid-match)]])).
type qresyncArgs struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   imap.UIDSet
	SeqMatch    imap.SeqSet
	UIDMatch    imap.UIDSet
}

// parseSelectArgs reads SELECT's folder and optional parameters.
func parseSelectArgs(args []wire.Value, utf8 bool) (*selectArgs, error) {
	a := newArgList("SELECT", args)
	v, err := a.next("the mailbox name")
	if err != nil {
		return nil, err
	}
	sa := &selectArgs{}
	if sa.Mailbox, err = parseMailbox(v, utf8); err != nil {
		return nil, a.wrap(err)
	}
	if !a.more() {
		return sa, nil
	}
	params, _ := a.next("")
	if params.Kind != wire.KindList {
		return nil, badArg("SELECT: expected parameters in parentheses after the mailbox, found %s", describeValue(params))
	}
	if err := sa.readParams(newArgList("SELECT", params.List)); err != nil {
		return nil, err
	}
	return sa, a.end()
}

func (sa *selectArgs) readParams(p *argList) error {
	for p.more() {
		name, err := p.nextAtom("a parameter")
		if err != nil {
			return err
		}
		switch {
		case name == "CONDSTORE" && !sa.CondStore:
			sa.CondStore = true
		case name == "QRESYNC" && sa.QResync == nil:
			v, err := p.next("QRESYNC's (uidvalidity modseq ...)")
			if err != nil {
				return err
			}
			if sa.QResync, err = parseQResync(v); err != nil {
				return p.wrap(err)
			}
		case name == "CONDSTORE" || name == "QRESYNC":
			return badArg("SELECT: parameter %s given twice", name)
		default:
			return badArg("SELECT: unknown parameter %s: expected CONDSTORE or QRESYNC", truncateQuote(name))
		}
	}
	return nil
}

func parseQResync(v wire.Value) (*qresyncArgs, error) {
	if v.Kind != wire.KindList {
		return nil, badArg("QRESYNC: expected (uidvalidity modseq [known-uids]) in parentheses, found %s", describeValue(v))
	}
	a := newArgList("QRESYNC", v.List)
	q := &qresyncArgs{}
	n, err := a.nextNumber("the UIDVALIDITY", maxNumber)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, badArg("QRESYNC: UIDVALIDITY cannot be 0")
	}
	q.UIDValidity = uint32(n)
	if q.ModSeq, err = a.nextNumber("the mod-sequence", maxNumber64); err != nil {
		return nil, err
	}
	if q.ModSeq == 0 {
		return nil, badArg("QRESYNC: the mod-sequence cannot be 0")
	}
	if known, ok := a.peek(); ok && known.Kind != wire.KindList {
		a.next("")
		if q.KnownUIDs, err = parseUIDList("known UIDs", known); err != nil {
			return nil, a.wrap(err)
		}
	}
	if match, ok := a.peek(); ok && match.Kind == wire.KindList {
		a.next("")
		if err := q.readMatch(match.List); err != nil {
			return nil, a.wrap(err)
		}
	}
	return q, a.end()
}

// readMatch reads (seq-match uid-match): message numbers and the UIDs the client had for them.
func (q *qresyncArgs) readMatch(vals []wire.Value) error {
	if len(vals) != 2 {
		return badArg("expected (message-numbers UIDs), such as (1:3 10,12,15)")
	}
	seqs, err := parseUIDList("message numbers", vals[0])
	if err != nil {
		return err
	}
	for _, r := range seqs {
		q.SeqMatch.AddRange(uint32(r.Start), uint32(r.Stop))
	}
	q.UIDMatch, err = parseUIDList("UIDs", vals[1])
	return err
}

// appendMessage is one message of APPEND: a literal, or the parts of a CATENATE (RFC 4469).
type appendMessage struct {
	Flags  []imap.Flag
	Time   time.Time      // zero: now
	Data   []byte         // the literal; nil when Parts is used
	Binary bool           // sent as ~{n} (RFC 3516): may hold NUL and bare LF, kept exactly
	Parts  []catenatePart // CATENATE's parts
}

// catenatePart is a CATENATE part: a URL of a message or part, or text.
type catenatePart struct {
	URL    string
	Text   []byte
	Binary bool
}

// appendArgs is APPEND, with one message or more (MULTIAPPEND, RFC 3502).
type appendArgs struct {
	Mailbox  string
	Messages []appendMessage
}

// parseAppendArgs reads APPEND mailbox, then for each message [flags] [date-time] followed by
// a literal, UTF8 (literal8) (RFC 6855) or CATENATE (parts).
func parseAppendArgs(args []wire.Value, utf8 bool) (*appendArgs, error) {
	a := newArgList("APPEND", args)
	v, err := a.next("the mailbox name")
	if err != nil {
		return nil, err
	}
	aa := &appendArgs{}
	if aa.Mailbox, err = parseMailbox(v, utf8); err != nil {
		return nil, a.wrap(err)
	}
	for first := true; first || a.more(); first = false {
		m, err := readAppendMessage(a)
		if err != nil {
			return nil, err
		}
		aa.Messages = append(aa.Messages, *m)
	}
	return aa, nil
}

func readAppendMessage(a *argList) (*appendMessage, error) {
	m := &appendMessage{}
	v, err := a.next("the message literal")
	if err != nil {
		return nil, err
	}
	if v.Kind == wire.KindList {
		if m.Flags, err = flagList(v.List); err != nil {
			return nil, a.wrap(err)
		}
		if v, err = a.next("the message literal"); err != nil {
			return nil, err
		}
	}
	if v.Kind == wire.KindQuoted {
		if m.Time, err = parseDateTime(v.Str); err != nil {
			return nil, a.wrap(err)
		}
		if v, err = a.next("the message literal"); err != nil {
			return nil, err
		}
	}
	switch ext := strings.ToUpper(v.Str); {
	case v.Kind == wire.KindLiteral:
		m.Data, m.Binary = v.Lit, v.Binary
	case v.Kind == wire.KindAtom && ext == "UTF8":
		m.Data, m.Binary, err = readUTF8Data(a)
	case v.Kind == wire.KindAtom && ext == "CATENATE":
		m.Parts, err = readCatenate(a)
	default:
		return nil, badArg("APPEND: expected the message as a literal, found %s", describeValue(v))
	}
	return m, err
}

// readUTF8Data reads the (literal8) after UTF8 (RFC 6855 4).
func readUTF8Data(a *argList) ([]byte, bool, error) {
	v, err := a.next("UTF8's (literal8)")
	if err != nil {
		return nil, false, err
	}
	if v.Kind != wire.KindList || len(v.List) != 1 || v.List[0].Kind != wire.KindLiteral {
		return nil, false, badArg("%s: expected UTF8 (~{n} message), found %s", a.cmd, describeValue(v))
	}
	return v.List[0].Lit, v.List[0].Binary, nil
}

// readCatenate reads CATENATE (URL url TEXT literal ...) (RFC 4469, RFC 6855 UTF8 parts).
func readCatenate(a *argList) ([]catenatePart, error) {
	v, err := a.next("CATENATE's parts")
	if err != nil {
		return nil, err
	}
	if v.Kind != wire.KindList || len(v.List) == 0 {
		return nil, badArg("%s: expected CATENATE (URL ... TEXT ...), found %s", a.cmd, describeValue(v))
	}
	p := newArgList("APPEND: CATENATE", v.List)
	var parts []catenatePart
	for p.more() {
		kind, err := p.nextAtom("URL or TEXT")
		if err != nil {
			return nil, err
		}
		var part catenatePart
		switch kind {
		case "URL":
			part.URL, err = p.nextString("the URL")
		case "TEXT":
			var t wire.Value
			if t, err = p.next("the text literal"); err == nil && t.Kind != wire.KindLiteral {
				err = badArg("APPEND: CATENATE TEXT must be a literal, found %s", describeValue(t))
			}
			part.Text, part.Binary = t.Lit, t.Binary
		case "UTF8":
			part.Text, part.Binary, err = readUTF8Data(p)
		default:
			err = badArg("APPEND: CATENATE part %s: expected URL or TEXT", truncateQuote(kind))
		}
		if err != nil {
			return nil, err
		}
		parts = append(parts, part)
	}
	return parts, nil
}
