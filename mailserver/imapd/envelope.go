package imapd

import (
	"net/mail"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// The ENVELOPE is built the way Dovecot 2.3 builds it (lib-imap/imap-envelope.c,
// lib-mail/message-address.c), because that is what clients are tested against:
//
//   - Subject and display names are the header text, unfolded, with runs of white space
//     collapsed and the ends trimmed. Encoded words (RFC 2047) are NOT decoded: clients decode
//     them, and a decoded UTF-8 subject could not be sent to a client that has not enabled
//     UTF8=ACCEPT anyway. 8-bit text in the header is kept byte for byte.
//   - Message-ID and In-Reply-To are the unfolded header text, angle brackets included.
//   - Groups keep their RFC 5322 markers: (NIL NIL "name" NIL) opens one, (NIL NIL NIL NIL)
//     closes it.
//   - An address without "@domain" gets the host "MISSING_DOMAIN", one without a local part
//     the mailbox "MISSING_MAILBOX", as Dovecot's fill_missing mode does: NIL there would
//     read as a group marker.
//   - A comment stands for the display name of a bare addr-spec: "alice@example.com (Alice)".
//   - Sender and Reply-To default to From (RFC 3501 7.4.2).
//
// The fields of the returned imap.Envelope therefore hold header text, not go-imap's decoded
// form: Subject and Address.Name may contain encoded words, MessageID is "<id@host>", and
// InReplyTo holds the whole header text as its only element. encodeEnvelope sends them as
// they are.
//
// Two differences from Dovecot remain, both from imap.Envelope's types: the date is
// re-formatted from the parsed time (a date that does not parse is NIL, where Dovecot sends
// the text), and source routes (<@route:user@host>, obsolete since RFC 2822) are dropped.

// extractEnvelopeDateLayout is RFC 5322's date-time with a numeric zone, which every client
// parses.
const extractEnvelopeDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// extractEnvelope builds the ENVELOPE of a message or of an encapsulated message/rfc822 part
// from its header. It never fails: a field that does not parse is left empty (NIL).
func extractEnvelope(h textproto.Header) *imap.Envelope {
	env := &imap.Envelope{
		Subject:   extractHumanText(h.Get("Subject")),
		From:      extractAddressList(h.Get("From")),
		Sender:    extractAddressList(h.Get("Sender")),
		ReplyTo:   extractAddressList(h.Get("Reply-To")),
		To:        extractAddressList(h.Get("To")),
		Cc:        extractAddressList(h.Get("Cc")),
		Bcc:       extractAddressList(h.Get("Bcc")),
		MessageID: extractNoNUL(h.Get("Message-Id")),
	}
	if d := h.Get("Date"); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			env.Date = t
		}
	}
	if irt := extractNoNUL(h.Get("In-Reply-To")); irt != "" {
		env.InReplyTo = []string{irt}
	}
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}

// encodeEnvelope writes an envelope as RFC 3501's envelope list. A nil envelope is ten NILs,
// as for a message whose header could not be read.
func encodeEnvelope(env *imap.Envelope) wire.Value {
	if env == nil {
		env = &imap.Envelope{}
	}
	date := wire.NIL()
	if !env.Date.IsZero() {
		date = wire.String(env.Date.Format(extractEnvelopeDateLayout))
	}
	sender, replyTo := env.Sender, env.ReplyTo
	if len(sender) == 0 {
		sender = env.From
	}
	if len(replyTo) == 0 {
		replyTo = env.From
	}
	return wire.List(
		date,
		encodeNString(env.Subject),
		encodeAddressList(env.From),
		encodeAddressList(sender),
		encodeAddressList(replyTo),
		encodeAddressList(env.To),
		encodeAddressList(env.Cc),
		encodeAddressList(env.Bcc),
		encodeNString(strings.Join(env.InReplyTo, " ")),
		encodeNString(env.MessageID),
	)
}

// encodeAddressList writes addresses as a list of (name adl mailbox host), NIL when there are
// none. Group markers are addresses with an empty host, as imap.Address defines them.
func encodeAddressList(addrs []imap.Address) wire.Value {
	if len(addrs) == 0 {
		return wire.NIL()
	}
	l := make([]wire.Value, len(addrs))
	for i, a := range addrs {
		l[i] = wire.List(encodeNString(a.Name), wire.NIL(), encodeNString(a.Mailbox), encodeNString(a.Host))
	}
	return encodeUnspacedList(l)
}

// encodeUnspacedList is a parenthesised list whose first members RFC 3501's grammar writes
// with nothing between them, followed by the rest separated by spaces: the addresses of an
// address list ("(" 1*address ")") and the bodies of a multipart body
// ("(" 1*body SP media-subtype ...")"). Outlook for iOS is reported to choke on a space
// between the bodies of a multipart.
func encodeUnspacedList(unspaced []wire.Value, rest ...wire.Value) wire.Value {
	return wire.TightList(unspaced, rest...)
}

// encodeNString is NIL for the empty string: IMAP has no way to tell an absent header field
// from an empty one in an envelope, and Dovecot sends NIL for both.
func encodeNString(s string) wire.Value {
	if s == "" {
		return wire.NIL()
	}
	return wire.String(s)
}

// extractHumanText is header text as Dovecot's imap_append_string_for_humans sends it: line
// breaks removed, tabs and runs of spaces made one space, the ends trimmed, and NUL (which
// no IMAP string may carry) made 0x80.
func extractHumanText(s string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n':
		case ' ', '\t':
			space = b.Len() > 0
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			if c == 0 {
				c = 0x80
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// extractNoNUL is header text with NUL made 0x80, as Dovecot does for the strings it sends.
func extractNoNUL(s string) string {
	return strings.ReplaceAll(s, "\x00", "\x80")
}

// An extractAddrToken is one lexical token of an address header (RFC 5322 3.2): a word (atom or
// dot-atom), the content of a quoted string, a domain literal, a comment's content, or one
// special character.
type extractAddrToken struct {
	kind byte // 'a' atom, 'q' quoted string, '[' domain literal, '(' comment, or the special itself
	text string
}

// extractAddrTokens splits an unfolded header value. It never fails: an unterminated quoted
// string, comment or domain literal runs to the end of the value.
func extractAddrTokens(s string) []extractAddrToken {
	var toks []extractAddrToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			text, n := extractAddrComment(s[i:])
			toks = append(toks, extractAddrToken{'(', text})
			i += n
		case c == '"':
			text, n := extractAddrQuoted(s[i:])
			toks = append(toks, extractAddrToken{'q', text})
			i += n
		case c == '[':
			n := strings.IndexByte(s[i:], ']') + 1
			if n == 0 {
				n = len(s) - i
			}
			toks = append(toks, extractAddrToken{'[', s[i : i+n]})
			i += n
		case strings.IndexByte(extractAddrSpecials, c) >= 0:
			toks = append(toks, extractAddrToken{c, string(c)})
			i++
		default:
			n := strings.IndexAny(s[i:], extractAddrSpecials+" \t\r\n(\"[")
			if n < 0 {
				n = len(s) - i
			}
			toks = append(toks, extractAddrToken{'a', s[i : i+n]})
			i += n
		}
	}
	return toks
}

// extractAddrSpecials are RFC 5322's specials other than '.', '(', '"' and '[': a dot belongs
// to the atom it joins (dot-atom and obs-phrase), the others open tokens of their own.
const extractAddrSpecials = "<>@:;,)]\\"

// extractAddrComment returns the content of the comment s starts with, nested comments kept
// as text, and its length.
func extractAddrComment(s string) (string, int) {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '(':
			if depth > 0 {
				b.WriteByte(c)
			}
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return b.String(), i + 1
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), len(s)
}

// extractAddrQuoted returns the unescaped content of the quoted string s starts with, and its
// length.
func extractAddrQuoted(s string) (string, int) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String(), i + 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), len(s)
}

// extractAddrParser reads an address-list (RFC 5322 3.4) leniently: whatever it cannot make
// sense of is skipped up to the next comma, never reported, since an ENVELOPE must be sent
// for every message.
type extractAddrParser struct {
	toks    []extractAddrToken
	i       int
	comment string // the last comment passed, the display name of a bare addr-spec
}

// Dovecot's placeholders for the parts an address lacks (message-address.c, fill_missing).
const (
	extractMissingMailbox = "MISSING_MAILBOX"
	extractMissingDomain  = "MISSING_DOMAIN"
)

// extractAddressList parses an address header's value into IMAP addresses, groups as start
// and end markers. An empty or absent header gives nil.
func extractAddressList(s string) []imap.Address {
	p := &extractAddrParser{toks: extractAddrTokens(s)}
	var out []imap.Address
	for p.skipComments() {
		if k := p.toks[p.i].kind; k == ',' || k == ';' {
			p.i++
			continue
		}
		out = p.address(out)
	}
	return out
}

// skipComments passes comments, remembering the last, and reports whether a token is left.
func (p *extractAddrParser) skipComments() bool {
	for p.i < len(p.toks) && p.toks[p.i].kind == '(' {
		p.comment = p.toks[p.i].text
		p.i++
	}
	return p.i < len(p.toks)
}

// at reports whether the next token, after comments, is the special c.
func (p *extractAddrParser) at(c byte) bool {
	return p.skipComments() && p.toks[p.i].kind == c
}

// words reads a phrase: the atoms and quoted strings up to the next special.
func (p *extractAddrParser) words() []extractAddrToken {
	var ws []extractAddrToken
	for p.skipComments() {
		t := p.toks[p.i]
		if t.kind != 'a' && t.kind != 'q' {
			break
		}
		ws = append(ws, t)
		p.i++
	}
	return ws
}

// address reads a group or a mailbox (RFC 5322 address).
func (p *extractAddrParser) address(out []imap.Address) []imap.Address {
	start := p.i
	name := p.words()
	if len(name) == 0 || !p.at(':') {
		p.i = start
		return p.mailbox(out)
	}
	p.i++
	out = append(out, imap.Address{Mailbox: extractHumanText(extractPhrase(name))})
	for p.skipComments() {
		if p.at(';') {
			p.i++
			break
		}
		if p.at(',') {
			p.i++
			continue
		}
		out = p.mailbox(out)
	}
	// The end marker is written even when ';' is missing: a group left open would make the
	// client read the rest of the list as its members.
	return append(out, imap.Address{})
}

// mailbox reads a name-addr or an addr-spec, and skips what follows it up to the next ',' or
// ';'.
func (p *extractAddrParser) mailbox(out []imap.Address) []imap.Address {
	p.comment = ""
	phrase := p.words()
	var a imap.Address
	switch {
	case p.at('<'):
		p.i++
		a = p.angleAddr()
		a.Name = extractHumanText(extractPhrase(phrase))
		p.skipRest()
	case len(phrase) > 0 || p.at('@'):
		// Words before an addr-spec without angle brackets are not allowed; the last
		// dot-joined run is the local part and the rest, if any, the name.
		n := extractDotRun(phrase)
		a.Mailbox = extractJoin(phrase[len(phrase)-n:])
		if p.at('@') {
			p.i++
			a.Host = p.domain()
		}
		p.skipRest()
		a.Name = extractHumanText(p.comment)
		if n < len(phrase) && a.Name == "" {
			a.Name = extractHumanText(extractPhrase(phrase[:len(phrase)-n]))
		}
	default:
		p.skipRest() // nothing that looks like an address: skip to the next one
		return out
	}
	if a.Mailbox == "" {
		a.Mailbox = extractMissingMailbox
	}
	if a.Host == "" {
		a.Host = extractMissingDomain
	}
	return append(out, a)
}

// angleAddr reads what follows '<': an optional obsolete route, local-part "@" domain, '>'.
func (p *extractAddrParser) angleAddr() imap.Address {
	var a imap.Address
	if p.at('@') {
		for j := p.i; j < len(p.toks) && p.toks[j].kind != '>'; j++ {
			if p.toks[j].kind == ':' {
				p.i = j + 1 // the route is dropped: imap.Address has no field for it
				break
			}
		}
	}
	local := p.words()
	a.Mailbox = extractJoin(local[len(local)-extractDotRun(local):])
	if p.at('@') {
		p.i++
		a.Host = p.domain()
	}
	for p.i < len(p.toks) {
		k := p.toks[p.i].kind
		p.i++
		if k == '>' {
			break
		}
	}
	return a
}

// domain reads a dot-atom or a domain literal. Words after it that a dot does not join
// ("a@example.com Alice") are left for skipRest.
func (p *extractAddrParser) domain() string {
	var b strings.Builder
	prev := ""
	for p.skipComments() {
		t := p.toks[p.i]
		if t.kind != 'a' && t.kind != '[' {
			break
		}
		if prev != "" && !strings.HasSuffix(prev, ".") && !strings.HasPrefix(t.text, ".") {
			break
		}
		b.WriteString(t.text)
		prev = t.text
		p.i++
	}
	return b.String()
}

// skipRest passes tokens up to the next ',' or ';', which it leaves for the caller.
func (p *extractAddrParser) skipRest() {
	for p.skipComments() {
		if k := p.toks[p.i].kind; k == ',' || k == ';' {
			return
		}
		p.i++
	}
}

// extractDotRun is how many of the last tokens form one dot-joined run: "john . doe" in the
// obsolete syntax, or the single token "john.doe".
func extractDotRun(ts []extractAddrToken) int {
	if len(ts) == 0 {
		return 0
	}
	n := 1
	for i := len(ts) - 1; i > 0; i-- {
		if !strings.HasSuffix(ts[i-1].text, ".") && !strings.HasPrefix(ts[i].text, ".") {
			break
		}
		n++
	}
	return n
}

// extractJoin concatenates tokens with nothing between them, as a dot-atom is written.
func extractJoin(ts []extractAddrToken) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.text)
	}
	return b.String()
}

// extractPhrase joins a phrase's words with single spaces, as Dovecot's rfc822_parse_phrase
// does; quoted strings contribute their content.
func extractPhrase(ts []extractAddrToken) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.text
	}
	return strings.Join(parts, " ")
}
