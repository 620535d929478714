package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The differential test compares what two servers answer after removing what may legitimately
// differ between two correct servers. Every rule is here, with its reason; a rule that hid a
// real difference would make the test useless, so each masks as little as it can.
//
//  1. Text after a status response's code is free text ("OK [READ-WRITE] Select completed
//     (0.001 + 0.000 secs)."): only tag, status and code are compared. Likewise the text of
//     continuation requests ("+ idling") and of greetings.
//  2. Numbers a server picks for itself are replaced by the order in which a session first saw
//     them: UIDVALIDITY (code, STATUS, APPENDUID, COPYUID), MAILBOXID, EMAILID, THREADID. So
//     "the same mailbox has the same UIDVALIDITY" is still compared, the value is not.
//  3. Modification sequences (HIGHESTMODSEQ, MODSEQ in FETCH, SEARCH and ESEARCH) are masked:
//     RFC 7162 lets a server raise them by any amount and share one value among messages
//     changed together; whether they are present is still compared.
//  4. INTERNALDATE values within two days of the test's start were assigned by the server at
//     APPEND and are masked; dates a script gives explicitly (scripts use dates long past)
//     are compared, in one spelling of the day (" 1-Jan-2001" and "01-Jan-2001" are both
//     RFC 3501's date-day-fixed). SAVEDATE is always the time of saving and is masked unless
//     NIL.
//  5. Sets: CAPABILITY and ENABLED lists are compared as sets, without the capabilities in
//     oneSidedCaps; flag lists (FLAGS, PERMANENTFLAGS, FETCH FLAGS) and mailbox attributes are
//     sets; sequence sets in APPENDUID, COPYUID, ESEARCH ALL, VANISHED and MODIFIED are
//     compared as the numbers they contain ("1:3" is "1,2,3"); SEARCH results are a set.
//  6. Items of a FETCH, STATUS or ESEARCH response are compared as a map (RFC 3501 fixes no
//     order), and FETCH responses for one message within one command are merged (a server may
//     split them). Item names are compared without regard to case.
//  7. Untagged responses within one command (between continuation requests) are compared in
//     sorted order: RFC 3501 fixes no order among them (FLAGS and OK [PERMANENTFLAGS] in a
//     SELECT, LIST responses, FETCH responses of several messages). A run of EXPUNGE
//     responses is compared as the set of messages it removes, numbered as before the first
//     ("* 7 EXPUNGE, * 6 EXPUNGE" and "* 6 EXPUNGE, * 6 EXPUNGE" both remove 6 and 7), after
//     the other responses; VANISHED keeps its order.
//  8. Strings are compared by content: a quoted string and a literal with the same bytes are
//     equal, and so are an atom and a string where the grammar allows either (astring:
//     mailbox names).
//  9. ID (RFC 2971) values name the implementation and are masked; whether a server answers
//     with parameters or NIL is compared.
// 10. \Recent: kubemail never sets it (IMAP4rev2 dropped it; docs/imap.md), so \Recent is
//     removed from FETCH FLAGS, untagged RECENT responses are dropped and the RECENT count of
//     STATUS is masked. SEARCH RECENT/NEW still show the difference.
// 11. Dovecot's "* OK Waiting for authentication process to respond.." (sent while its
//     authentication process starts) is dropped.
// 12. A server may announce capabilities in an untagged CAPABILITY response or in the tagged
//     OK's CAPABILITY code (RFC 3501 7.1, 9051 7.1): "* CAPABILITY X" followed by a tagged
//     OK without a code is compared as "tag OK [CAPABILITY X]".
// 13. A UID item in a FETCH response is dropped when the command did not ask for UIDs (no
//     UID command, no UID item): RFC 3501 7.4.2 lets a server add it, and kubemail adds it to
//     every FETCH response.
// 14. Header names in a section spec are compared unquoted and upper-cased:
//     BODY[HEADER.FIELDS ("From")] is BODY[HEADER.FIELDS (FROM)] (astring, rule 8).
// 15. The MAILBOXID response code (RFC 8474) that kubemail adds to SELECT, EXAMINE and CREATE
//     is dropped: Dovecot 2.3 has no OBJECTID, so it can be no oracle for it (the objectid
//     script still compares FETCH EMAILID and STATUS MAILBOXID, which Dovecot refuses);
//     TestObjectIDAndSaveDate checks kubemail's.

// oneSidedCaps are capabilities only one of the servers can have, for reasons that have nothing
// to do with correctness; they are left out of CAPABILITY comparisons.
var oneSidedCaps = map[string]string{
	// Dovecot extensions that are not in kubemail's plan (the list).
	"LOGIN-REFERRALS": "Dovecot: RFC 2221 referrals, for proxies; kubemail does not plan them",
	"THREAD=REFS":     "Dovecot: a draft threading algorithm, not in kubemail's plan",
	"I18NLEVEL=1":     "Dovecot: RFC 5255 comparators, not in kubemail's plan",
	"WITHIN":          "Dovecot: RFC 5032 YOUNGER/OLDER, not in kubemail's plan",
	"SNIPPET=FUZZY":   "Dovecot: draft of PREVIEW, not in kubemail's plan",
	"PREVIEW=FUZZY":   "Dovecot: draft of PREVIEW, not in kubemail's plan",
	"PREVIEW":         "Dovecot: RFC 8970, not in kubemail's plan",
	// Extensions in kubemail's plan that Dovecot 2.3 (Debian 12) does not implement, so
	// Dovecot cannot be their oracle.
	"IMAP4REV2":          "Dovecot 2.3 implements IMAP4rev1 only",
	"UTF8=ACCEPT":        "Dovecot 2.3 has no UTF8=ACCEPT",
	"CREATE-SPECIAL-USE": "Dovecot 2.3 does not advertise CREATE-SPECIAL-USE",
	"OBJECTID":           "Dovecot 2.3 has no OBJECTID",
	"LITERAL-":           "Dovecot offers LITERAL+, which implies LITERAL- (RFC 7888)",
}

// appendLimitCap: APPENDLIMIT=n is in kubemail's plan; Dovecot 2.3 does not advertise it.
const appendLimitCap = "APPENDLIMIT"

// node is a parsed response token: an atom (also numbers and NIL), a string (quoted or
// literal), or a parenthesised list.
type respNode struct {
	kind nodeKind
	text string
	list []*respNode
}

type nodeKind int

const (
	atomNode nodeKind = iota
	stringNode
	listNode
)

func (n *respNode) is(atom string) bool { return n.kind == atomNode && strings.EqualFold(n.text, atom) }

func (n *respNode) String() string {
	switch n.kind {
	case stringNode:
		return strconv.Quote(n.text)
	case listNode:
		parts := make([]string, len(n.list))
		for i, c := range n.list {
			parts[i] = c.String()
		}
		return "(" + strings.Join(parts, " ") + ")"
	}
	return n.text
}

func renderNodes(ns []*respNode) string {
	parts := make([]string, len(ns))
	for i, c := range ns {
		parts[i] = c.String()
	}
	return strings.Join(parts, " ")
}

// parser tokenises one response as read from the wire, literals included ("{5}\r\nhello").
type respParser struct {
	s   string
	pos int
}

func (p *respParser) skipSpaces() {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

// tokens reads tokens up to end (')' or ']'), which it consumes, or to the end of input.
func (p *respParser) tokens(end byte) []*respNode {
	var out []*respNode
	for {
		p.skipSpaces()
		if p.pos >= len(p.s) {
			return out
		}
		c := p.s[p.pos]
		if end != 0 && c == end {
			p.pos++
			return out
		}
		switch {
		case c == '(':
			p.pos++
			out = append(out, &respNode{kind: listNode, list: p.tokens(')')})
		case c == '"':
			out = append(out, p.quoted())
		case c == '{' || (c == '~' && p.pos+1 < len(p.s) && p.s[p.pos+1] == '{'):
			if n := p.literal(); n != nil {
				out = append(out, n)
			} else {
				out = append(out, p.atom(end))
			}
		default:
			out = append(out, p.atom(end))
		}
	}
}

func (p *respParser) quoted() *respNode {
	p.pos++
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch c {
		case '\\':
			if p.pos < len(p.s) {
				b.WriteByte(p.s[p.pos])
				p.pos++
			}
		case '"':
			return &respNode{kind: stringNode, text: b.String()}
		default:
			b.WriteByte(c)
		}
	}
	return &respNode{kind: stringNode, text: b.String()}
}

// literal reads {n}CRLF followed by n bytes (~{n} for literal8); nil if it is not one.
func (p *respParser) literal() *respNode {
	start := p.pos
	if p.s[p.pos] == '~' {
		p.pos++
	}
	close := strings.Index(p.s[p.pos:], "}\r\n")
	if close < 0 {
		p.pos = start
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(p.s[p.pos+1:p.pos+close], "+"))
	if err != nil || p.pos+close+3+n > len(p.s) {
		p.pos = start
		return nil
	}
	p.pos += close + 3
	text := p.s[p.pos : p.pos+n]
	p.pos += n
	return &respNode{kind: stringNode, text: text}
}

// atom reads up to a space, parenthesis or end; a [...] inside it (BODY[HEADER.FIELDS (To)])
// is part of the atom, spaces included.
func (p *respParser) atom(end byte) *respNode {
	start := p.pos
	depth := 0
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if depth == 0 && (c == ' ' || c == '(' || c == ')' || (end != 0 && c == end)) {
			break
		}
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case '"':
			p.quoted()
			continue
		}
		p.pos++
	}
	if p.pos == start { // a stray delimiter: take it as an atom so parsing ends
		p.pos++
	}
	return &respNode{kind: atomNode, text: p.s[start:p.pos]}
}

// normaliser holds one server's state across a script's responses (rule 2).
type diffNormaliser struct {
	ids   map[string]map[string]int
	start time.Time
}

func newNormaliser(start time.Time) *diffNormaliser {
	return &diffNormaliser{ids: map[string]map[string]int{}, start: start}
}

// ordinal replaces a server-chosen value by the order it was first seen in among its kind.
func (n *diffNormaliser) ordinal(kind, value string) string {
	m := n.ids[kind]
	if m == nil {
		m = map[string]int{}
		n.ids[kind] = m
	}
	if _, ok := m[value]; !ok {
		m[value] = len(m) + 1
	}
	return fmt.Sprintf("<%s#%d>", kind, m[value])
}

// normalise turns one command's responses into the lines compared (rules 6 and 7 across
// lines); command is the command line sent, for rule 13.
func (n *diffNormaliser) normalise(command string, raw []string) []string {
	keepUID := uidWord.MatchString(command)
	var out, segment, expunges []string
	fetches := map[string]*fetchResponse{}
	var fetchOrder []string
	flush := func() {
		for _, seq := range fetchOrder {
			segment = append(segment, fetches[seq].String())
		}
		sort.Strings(segment)
		out = append(out, segment...)
		out = append(out, expunged(expunges)...)
		segment, expunges, fetchOrder = nil, nil, nil
		fetches = map[string]*fetchResponse{}
	}
	for _, r := range raw {
		switch {
		case strings.HasPrefix(r, "<"): // the runner's own notes: timeouts, closed connections
			flush()
			out = append(out, r)
		case strings.HasPrefix(r, "+"):
			flush()
			out = append(out, "+")
		case strings.HasPrefix(r, "* OK Waiting for authentication process"): // rule 11
		case strings.HasPrefix(r, "* "):
			p := &respParser{s: r[2:]}
			if status, code, ok := n.status(p); ok {
				if !strings.HasPrefix(code, " [MAILBOXID") { // rule 15
					segment = append(segment, "* "+status+code)
				}
				continue
			}
			toks := p.tokens(0)
			if len(toks) == 2 && toks[1].is("RECENT") { // rule 10
				continue
			}
			if len(toks) >= 3 && toks[1].is("FETCH") && toks[2].kind == listNode {
				f := fetches[toks[0].text]
				if f == nil {
					f = &fetchResponse{seq: toks[0].text, items: map[string]string{}}
					fetches[toks[0].text] = f
					fetchOrder = append(fetchOrder, toks[0].text)
				}
				n.fetchItems(f, toks[2].list, keepUID)
				continue
			}
			line := n.untagged(toks)
			if len(toks) == 2 && toks[1].is("EXPUNGE") {
				expunges = append(expunges, "* "+toks[0].text+" EXPUNGE")
			} else if len(toks) > 0 && toks[0].is("VANISHED") {
				expunges = append(expunges, line)
			} else {
				segment = append(segment, line)
			}
		default:
			tag, rest, _ := strings.Cut(r, " ")
			flush()
			p := &respParser{s: rest}
			if status, code, ok := n.status(p); ok {
				if strings.HasPrefix(code, " [MAILBOXID") { // rule 15
					code = ""
				}
				out = append(out, tag+" "+status+code)
			} else {
				out = append(out, tag+" "+renderNodes(p.tokens(0)))
			}
		}
	}
	flush()
	return capabilityInCode(out)
}

// capabilityInCode applies rule 12 to normalised lines.
func capabilityInCode(lines []string) []string {
	if len(lines) < 2 {
		return lines
	}
	last := lines[len(lines)-1]
	tag, status, _ := strings.Cut(last, " ")
	if status != "OK" {
		return lines
	}
	var caps string
	var rest []string
	for _, l := range lines[:len(lines)-1] {
		if c, ok := strings.CutPrefix(l, "* CAPABILITY "); ok && caps == "" {
			caps = c
			continue
		}
		rest = append(rest, l)
	}
	if caps == "" {
		return lines
	}
	return append(rest, tag+" OK [CAPABILITY "+caps+"]")
}

// expunged rewrites a run of "* n EXPUNGE" lines as one line with the messages' numbers
// before the run (rule 7); VANISHED lines stay as they are.
func expunged(lines []string) []string {
	var out []string
	var removed []int // original numbers, sorted
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != "EXPUNGE" {
			out = append(out, l)
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			out = append(out, l)
			continue
		}
		o := n
		for _, r := range removed {
			if r <= o {
				o++
			}
		}
		removed = append(removed, o)
		sort.Ints(removed)
	}
	if len(removed) > 0 {
		nums := make([]string, len(removed))
		for i, v := range removed {
			nums[i] = strconv.Itoa(v)
		}
		out = append(out, "* EXPUNGE "+strings.Join(nums, " "))
	}
	return out
}

// status parses "OK [code] text" (rule 1); ok is false if the response is not a status.
func (n *diffNormaliser) status(p *respParser) (status, code string, ok bool) {
	word, rest, _ := strings.Cut(p.s[p.pos:], " ")
	word = strings.ToUpper(word)
	switch word {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
	default:
		return "", "", false
	}
	if !strings.HasPrefix(rest, "[") {
		return word, "", true
	}
	cp := &respParser{s: rest[1:]}
	return word, " [" + renderNodes(n.code(cp.tokens(']'))) + "]", true
}

// code normalises a response code's arguments.
func (n *diffNormaliser) code(toks []*respNode) []*respNode {
	if len(toks) == 0 {
		return toks
	}
	name := strings.ToUpper(toks[0].text)
	toks[0] = &respNode{text: name}
	args := toks[1:]
	switch name {
	case "CAPABILITY":
		return append(toks[:1], capSet(args)...)
	case "UIDVALIDITY":
		if len(args) == 1 {
			args[0] = n.atom("uidvalidity", args[0])
		}
	case "APPENDUID":
		if len(args) == 2 {
			args[0], args[1] = n.atom("uidvalidity", args[0]), canonicalSet(args[1])
		}
	case "COPYUID":
		if len(args) == 3 {
			args[0], args[1], args[2] = n.atom("uidvalidity", args[0]), canonicalSet(args[1]), canonicalSet(args[2])
		}
	case "HIGHESTMODSEQ":
		if len(args) == 1 {
			args[0] = &respNode{text: "<modseq>"}
		}
	case "MODIFIED":
		if len(args) == 1 {
			args[0] = canonicalSet(args[0])
		}
	case "MAILBOXID":
		if len(args) == 1 && args[0].kind == listNode && len(args[0].list) == 1 {
			args[0].list[0] = n.atom("mailboxid", args[0].list[0])
		}
	case "PERMANENTFLAGS":
		if len(args) == 1 {
			args[0] = flagSet(args[0], false)
		}
	}
	return toks
}

func (n *diffNormaliser) atom(kind string, v *respNode) *respNode {
	return &respNode{text: n.ordinal(kind, v.text)}
}

// untagged normalises untagged data other than status responses and FETCH.
func (n *diffNormaliser) untagged(toks []*respNode) string {
	if len(toks) == 0 {
		return "*"
	}

	switch strings.ToUpper(toks[0].text) {
	case "CAPABILITY", "ENABLED":
		return "* " + renderNodes(append([]*respNode{{text: strings.ToUpper(toks[0].text)}}, capSet(toks[1:])...))
	case "FLAGS":
		if len(toks) == 2 {
			toks[1] = flagSet(toks[1], false)
		}
	case "LIST", "LSUB":
		if len(toks) >= 4 {
			toks[1] = flagSet(toks[1], false)
			toks[3] = asString(toks[3])
		}
	case "STATUS":
		if len(toks) == 3 && toks[2].kind == listNode {
			toks[1] = asString(toks[1])
			toks[2] = n.statusItems(toks[2])
		}
	case "SEARCH":
		return "* SEARCH " + n.searchResult(toks[1:])
	case "SORT":
		toks = n.maskModseqList(toks)
	case "ESEARCH":
		return n.esearch(toks)
	case "VANISHED":
		if len(toks) >= 2 {
			toks[len(toks)-1] = canonicalSet(toks[len(toks)-1])
		}
	case "ID":
		if len(toks) == 2 && toks[1].kind == listNode { // rule 9
			toks[1] = &respNode{text: "(<id parameters>)"}
		}
	case "QUOTAROOT":
		if len(toks) >= 2 {
			toks[1] = asString(toks[1])
		}
	}
	return "* " + renderNodes(toks)
}

func (n *diffNormaliser) statusItems(l *respNode) *respNode {
	items := map[string]string{}
	for i := 0; i+1 < len(l.list); i += 2 {
		k, v := strings.ToUpper(l.list[i].text), l.list[i+1]
		switch k {
		case "UIDVALIDITY":
			v = n.atom("uidvalidity", v)
		case "HIGHESTMODSEQ":
			v = &respNode{text: "<modseq>"}
		case "RECENT":
			v = &respNode{text: "<n>"}
		case "MAILBOXID":
			if v.kind == listNode && len(v.list) == 1 {
				v = &respNode{kind: listNode, list: []*respNode{n.atom("mailboxid", v.list[0])}}
			}
		}
		items[k] = v.String()
	}
	return &respNode{text: sortedMap(items)}
}

// searchResult: numbers as a set (rule 5), "(MODSEQ n)" masked (rule 3).
func (n *diffNormaliser) searchResult(toks []*respNode) string {
	var nums []int
	var rest []string
	for _, t := range toks {
		if v, err := strconv.Atoi(t.text); err == nil && t.kind == atomNode {
			nums = append(nums, v)
			continue
		}
		if t.kind == listNode && len(t.list) == 2 && t.list[0].is("MODSEQ") {
			rest = append(rest, "(MODSEQ <modseq>)")
			continue
		}
		rest = append(rest, t.String())
	}
	sort.Ints(nums)
	parts := make([]string, 0, len(nums)+len(rest))
	for _, v := range nums {
		parts = append(parts, strconv.Itoa(v))
	}
	return strings.TrimSpace(strings.Join(append(parts, rest...), " "))
}

func (n *diffNormaliser) maskModseqList(toks []*respNode) []*respNode {
	for i, t := range toks {
		if t.kind == listNode && len(t.list) == 2 && t.list[0].is("MODSEQ") {
			toks[i] = &respNode{text: "(MODSEQ <modseq>)"}
		}
	}
	return toks
}

// esearch: "* ESEARCH [(TAG "x")] [UID] name value ..."; the name/value pairs are a map.
func (n *diffNormaliser) esearch(toks []*respNode) string {
	head := []string{"* ESEARCH"}
	i := 1
	if i < len(toks) && toks[i].kind == listNode {
		head = append(head, toks[i].String())
		i++
	}
	if i < len(toks) && toks[i].is("UID") {
		head = append(head, "UID")
		i++
	}
	items := map[string]string{}
	for ; i+1 < len(toks); i += 2 {
		k, v := strings.ToUpper(toks[i].text), toks[i+1]
		switch k {
		case "ALL":
			v = canonicalSet(v)
		case "MODSEQ":
			v = &respNode{text: "<modseq>"}
		}
		items[k] = v.String()
	}
	if len(items) > 0 {
		head = append(head, sortedMap(items))
	}
	return strings.Join(head, " ")
}

type fetchResponse struct {
	seq   string
	items map[string]string
}

func (f *fetchResponse) String() string { return "* " + f.seq + " FETCH " + sortedMap(f.items) }

// uidWord finds UID as a command or a FETCH item in a command line (rule 13).
var uidWord = regexp.MustCompile(`(?i)(^|[ (])UID([ )]|$)`)

func (n *diffNormaliser) fetchItems(f *fetchResponse, l []*respNode, keepUID bool) {
	for i := 0; i+1 < len(l); i += 2 {
		k, v := sectionName(l[i].text), l[i+1]
		switch k {
		case "UID":
			if !keepUID {
				continue
			}
		case "FLAGS":
			v = flagSet(v, true)
		case "MODSEQ":
			v = &respNode{text: "(<modseq>)"}
		case "INTERNALDATE":
			v = n.date(v)
		case "SAVEDATE":
			if !v.is("NIL") {
				v = &respNode{text: "<savedate>"}
			}
		case "EMAILID", "THREADID":
			if v.kind == listNode && len(v.list) == 1 {
				v = &respNode{kind: listNode, list: []*respNode{n.atom(strings.ToLower(k), v.list[0])}}
			}
		}
		f.items[k] = v.String()
	}
}

// date masks an INTERNALDATE near the test's start (rule 4).
func (n *diffNormaliser) date(v *respNode) *respNode {
	t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", strings.TrimLeft(v.text, " "))
	switch {
	case err != nil:
		return v
	case t.Sub(n.start).Abs() < 48*time.Hour:
		return &respNode{text: "<now>"}
	}
	return &respNode{kind: stringNode, text: t.Format("02-Jan-2006 15:04:05 -0700")}
}

// sectionName upper-cases a FETCH item name and unquotes the header names of its section
// (rule 14).
func sectionName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, `"`, ""))
}

func sortedMap(items map[string]string) string {
	keys := make([]string, 0, len(items))
	for k := range items {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + items[k]
	}
	return "(" + strings.Join(parts, " ") + ")"
}

// capSet: upper-cased, sorted, without oneSidedCaps and APPENDLIMIT (rule 5).
func capSet(toks []*respNode) []*respNode {
	var caps []string
	for _, t := range toks {
		c := strings.ToUpper(t.text)
		if _, skip := oneSidedCaps[c]; skip || c == appendLimitCap || strings.HasPrefix(c, appendLimitCap+"=") {
			continue
		}
		caps = append(caps, c)
	}
	sort.Strings(caps)
	caps = slices.Compact(caps)
	out := make([]*respNode, len(caps))
	for i, c := range caps {
		out[i] = &respNode{text: c}
	}
	return out
}

// flagSet sorts a list of flags or attributes; in FETCH FLAGS it drops \Recent (rule 10).
func flagSet(l *respNode, dropRecent bool) *respNode {
	if l.kind != listNode {
		return l
	}
	var flags []*respNode
	for _, f := range l.list {
		if dropRecent && f.is(`\Recent`) {
			continue
		}
		flags = append(flags, f)
	}
	sort.SliceStable(flags, func(i, j int) bool { return strings.ToLower(flags[i].text) < strings.ToLower(flags[j].text) })
	return &respNode{kind: listNode, list: flags}
}

func asString(n *respNode) *respNode {
	if n.kind == atomNode && !n.is("NIL") {
		return &respNode{kind: stringNode, text: n.text}
	}
	return n
}

// canonicalSet rewrites a sequence set as sorted, merged ranges; "*" and anything unparsable
// stays as it is.
func canonicalSet(n *respNode) *respNode {
	if n.kind != atomNode || strings.Contains(n.text, "*") {
		return n
	}
	var nums []int
	for _, part := range strings.Split(n.text, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if !isRange {
			b, err2 = a, err1
		}
		if err1 != nil || err2 != nil || b-a > 100000 || a-b > 100000 {
			return n
		}
		if a > b {
			a, b = b, a
		}
		for v := a; v <= b; v++ {
			nums = append(nums, v)
		}
	}
	sort.Ints(nums)
	nums = slices.Compact(nums)
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(nums[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d:%d", nums[i], nums[j]))
		}
		i = j + 1
	}
	return &respNode{text: strings.Join(parts, ",")}
}
