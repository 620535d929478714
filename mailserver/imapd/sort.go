package imapd

import (
	"bytes"
	"cmp"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// SORT (RFC 5256) with RFC 5957's DISPLAYFROM and DISPLAYTO, and its ESORT form (RFC 5267):
// the messages SEARCH would find, in the order the client asks. Only the store's header
// cache is read, never whole messages, unless the search criteria themselves need bodies.

func init() {
	commands["SORT"] = handler{states: stateSelected, uid: true, polls: true, noExpunge: true, run: (*session).cmdSort}
	extensionCaps = append(extensionCaps, "SORT", "SORT=DISPLAY", "ESORT")
}

// sortCriterion is one sort key of a SORT command, such as REVERSE DATE.
type sortCriterion struct {
	key     string // ARRIVAL, CC, DATE, ...
	reverse bool
}

// sortKeyFields are the sort keys and the header fields each reads.
var sortKeyFields = map[string]fieldSet{
	"ARRIVAL": 0, "SIZE": 0, "DATE": fieldDate,
	"CC": fieldCc, "FROM": fieldFrom, "TO": fieldTo, "SUBJECT": fieldSubject,
	"DISPLAYFROM": fieldFrom, "DISPLAYTO": fieldTo,
}

// sortArgs is a SORT or UID SORT command.
type sortArgs struct {
	criteria []sortCriterion
	search   *searchArgs // search.Return is set for ESORT's RETURN (...)
}

// parseSortArgs reads [RETURN (options)] (criteria) charset search-keys...
func parseSortArgs(args []wire.Value, uid bool) (*sortArgs, error) {
	cmd := commandName("SORT", uid)
	sa := &searchArgs{Criteria: &imap.SearchCriteria{}}
	r := &searchReader{argList: newArgList(cmd, args), sa: sa}
	if err := r.readReturn(); err != nil {
		return nil, err
	}
	v, err := r.next("the sort criteria in parentheses, such as (DATE)")
	if err != nil {
		return nil, err
	}
	criteria, err := parseSortCriteria(cmd, v)
	if err != nil {
		return nil, err
	}
	if sa.Return != nil && sa.Return.Update {
		return nil, badArg("%s: RETURN (UPDATE) is offered for SEARCH only (CONTEXT=SEARCH, not CONTEXT=SORT)", cmd)
	}
	if err := readCharsetAndKeys(cmd, args[r.i:], sa); err != nil {
		return nil, err
	}
	return &sortArgs{criteria: criteria, search: sa}, nil
}

// parseSortCriteria reads "(" ["REVERSE"] key *(SP ["REVERSE"] key) ")". REVERSE applies to
// the one key after it; "REVERSE REVERSE key", which Dovecot reads as key, is outside RFC
// 5256's grammar and refused.
func parseSortCriteria(cmd string, v wire.Value) ([]sortCriterion, error) {
	if v.Kind != wire.KindList {
		return nil, badArg("%s: expected the sort criteria in parentheses, such as (DATE), found %s", cmd, describeValue(v))
	}
	if len(v.List) == 0 {
		return nil, badArg("%s: the sort criteria are empty: name at least one, such as (DATE)", cmd)
	}
	var out []sortCriterion
	reverse := false
	for _, k := range v.List {
		name := ""
		if k.Kind == wire.KindAtom {
			name = strings.ToUpper(k.Str)
		}
		if _, ok := sortKeyFields[name]; ok {
			out = append(out, sortCriterion{key: name, reverse: reverse})
			reverse = false
			continue
		}
		if name != "REVERSE" || reverse {
			return nil, badArg("%s: unknown sort criterion %s: expected ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, "+
				"DISPLAYFROM or DISPLAYTO, each optionally after REVERSE", cmd, describeValue(k))
		}
		reverse = true
	}
	if reverse {
		return nil, badArg("%s: the sort criteria end with REVERSE: name the key it reverses", cmd)
	}
	return out, nil
}

// readCharsetAndKeys reads "charset search-key..." as SORT and THREAD end. SEARCH introduces
// the charset with CHARSET where these two name it alone; given the keyword, SEARCH's reader
// checks it, so the three commands accept the same charsets.
func readCharsetAndKeys(cmd string, args []wire.Value, sa *searchArgs) error {
	r := &searchReader{argList: newArgList(cmd, append([]wire.Value{wire.Atom("CHARSET")}, args...)), sa: sa}
	if err := r.readCharset(); err != nil {
		return err
	}
	if !r.more() {
		return badArg("%s: missing argument: a search key such as ALL", cmd)
	}
	for r.more() {
		if err := r.readKey(sa.Criteria); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) cmdSort(tag string, args []wire.Value, uid bool) (reply, error) {
	sa, err := parseSortArgs(args, uid)
	if err != nil {
		return reply{}, err
	}
	var want fieldSet
	for _, c := range sa.criteria {
		want |= sortKeyFields[c.key]
	}
	msgs := loadSortMsgs(s.matches(sa.search.Criteria, sa.search.saveDateFilter()), want)
	sortMessages(msgs, sa.criteria)
	ret := sa.search.Return
	if ret == nil {
		vals := []wire.Value{wire.Atom("SORT")}
		for _, m := range msgs {
			vals = append(vals, wire.Number(uint64(m.number(uid))))
		}
		s.w.Untagged(vals...)
		return reply{}, nil
	}
	if ret.ReturnSave {
		s.saveSorted(ret, msgs)
	}
	s.writeESort(tag, uid, ret, msgs)
	return reply{}, nil
}

// saveSorted keeps a SORT's result for "$" (RFC 5182). As for SEARCH, with only MIN and MAX
// asked for only those are kept; here they are the first and last in sort order. With
// PARTIAL, the part returned is.
func (s *session) saveSorted(o *searchReturn, msgs []*sortMsg) {
	var uids imap.UIDSet
	switch {
	case o.Partial != nil:
		for _, m := range partialMsgs(msgs, *o.Partial) {
			uids.AddNum(imap.UID(m.uid))
		}
	case len(msgs) == 0:
	case (o.ReturnMin || o.ReturnMax) && !o.ReturnAll && !o.ReturnCount:
		if o.ReturnMin {
			uids.AddNum(imap.UID(msgs[0].uid))
		}
		if o.ReturnMax {
			uids.AddNum(imap.UID(msgs[len(msgs)-1].uid))
		}
	default:
		for _, m := range msgs {
			uids.AddNum(imap.UID(m.uid))
		}
	}
	s.sel.mu.Lock()
	s.sel.searchRes = uids
	s.sel.mu.Unlock()
}

// writeESort answers SORT RETURN (...) with an ESEARCH response (RFC 5267 3.2): MIN and MAX
// are the first and last message in sort order and ALL lists them in sort order, ascending
// runs written as ranges as Dovecot does ("5,1:3,4" for 5 1 2 3 4); PARTIAL counts positions
// in sort order too (RFC 5267 4.4). A SAVE alone is answered with nothing, as for SEARCH.
func (s *session) writeESort(tag string, uid bool, o *searchReturn, msgs []*sortMsg) {
	if o.onlySave() {
		return
	}
	vals := []wire.Value{wire.Atom("ESEARCH"), wire.List(wire.Atom("TAG"), wire.String(tag))}
	if uid {
		vals = append(vals, wire.Atom("UID"))
	}
	if n := len(msgs); n > 0 {
		if o.ReturnMin {
			vals = append(vals, wire.Atom("MIN"), wire.Number(uint64(msgs[0].number(uid))))
		}
		if o.ReturnMax {
			vals = append(vals, wire.Atom("MAX"), wire.Number(uint64(msgs[n-1].number(uid))))
		}
		if o.ReturnAll {
			vals = append(vals, wire.Atom("ALL"), wire.Atom(sortedSet(msgs, uid)))
		}
	}
	if o.Partial != nil {
		vals = append(vals, wire.Atom("PARTIAL"), partialValue(*o.Partial, sortedSet(partialMsgs(msgs, *o.Partial), uid)))
	}
	if o.ReturnCount {
		vals = append(vals, wire.Atom("COUNT"), wire.Number(uint64(len(msgs))))
	}
	s.w.Untagged(vals...)
}

// partialMsgs is the part of msgs at PARTIAL's positions.
func partialMsgs(msgs []*sortMsg, p partialRange) []*sortMsg {
	n := uint32(len(msgs))
	if p.lo > n {
		return nil
	}
	return msgs[p.lo-1 : min(p.hi, n)]
}

// sortedSet writes the numbers of msgs in their order, ascending runs as ranges.
func sortedSet(msgs []*sortMsg, uid bool) string {
	var b strings.Builder
	for i := 0; i < len(msgs); {
		start := msgs[i].number(uid)
		j := i + 1
		for j < len(msgs) && msgs[j].number(uid) == msgs[j-1].number(uid)+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(start), 10))
		if j-i > 1 {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(msgs[j-1].number(uid)), 10))
		}
		i = j
	}
	return b.String()
}

// sortMsg is what SORT and THREAD know of one matching message.
type sortMsg struct {
	seq, uid uint32
	arrival  time.Time // INTERNALDATE
	size     int64
	fields   [numFields]string // raw values of the header fields asked for, "" when absent
	keys     []sortValue       // one per sort criterion, filled by sortMessages
}

// number is how the client is told of the message: by UID or by sequence number.
func (m *sortMsg) number(uid bool) uint32 {
	if uid {
		return m.uid
	}
	return m.seq
}

// sentDate is the message's Date, or its arrival when Date is missing or does not parse
// (RFC 5256 2.2). Times compare as instants, whatever their zones.
func (m *sortMsg) sentDate() time.Time {
	if d := m.fields[fieldIndexDate]; d != "" {
		// Most mail is dated exactly so; mail.ParseDate tries its other layouts first, which
		// costs more than the rest of a SORT (DATE).
		if t, err := time.Parse(sentDateLayout, d); err == nil {
			return t
		}
		if t, err := mail.ParseDate(d); err == nil {
			return t
		}
	}
	return m.arrival
}

// sentDateLayout is RFC 5322's date-time with a numeric zone; "2" reads "02" too.
const sentDateLayout = "Mon, 2 Jan 2006 15:04:05 -0700"

// loadSortMsgs reads what sorting and threading need of the matching messages: numbers, size
// and arrival from the index, the fields in want from the header cache. A message expunged
// meanwhile has no fields and sorts as if they were empty.
func loadSortMsgs(cands []*candidate, want fieldSet) []*sortMsg {
	msgs := make([]*sortMsg, len(cands))
	backing := make([]sortMsg, len(cands))
	for i, c := range cands {
		m := &backing[i]
		m.seq, m.uid, m.arrival, m.size = c.seq, c.msg.UID, c.msg.InternalDate, c.msg.Size
		if want != 0 {
			if h := c.rawHeader(); h != nil {
				readFields(h.Raw, want, &m.fields)
			}
		}
		msgs[i] = m
	}
	return msgs
}

// sortValue is one message's value for one sort criterion: a collation key, a time or a
// number.
type sortValue struct {
	str  string
	time time.Time
	num  int64
}

// sortMessages orders msgs by criteria; messages equal on all of them stay in mailbox order
// (RFC 5256 3), REVERSE or not.
func sortMessages(msgs []*sortMsg, criteria []sortCriterion) {
	for _, m := range msgs {
		m.keys = make([]sortValue, len(criteria))
		for i, c := range criteria {
			m.keys[i] = sortValueOf(m, c.key)
		}
	}
	slices.SortFunc(msgs, func(a, b *sortMsg) int {
		for i, c := range criteria {
			x, y := &a.keys[i], &b.keys[i]
			r := strings.Compare(x.str, y.str)
			if r == 0 {
				r = x.time.Compare(y.time)
			}
			if r == 0 {
				r = cmp.Compare(x.num, y.num)
			}
			if r != 0 {
				if c.reverse {
					return -r
				}
				return r
			}
		}
		return cmp.Compare(a.seq, b.seq)
	})
}

// sortValueOf computes a message's value for one sort key. Strings compare with
// i;unicode-casemap; a missing field is the empty string, which sorts first.
func sortValueOf(m *sortMsg, key string) sortValue {
	switch key {
	case "ARRIVAL":
		return sortValue{time: m.arrival}
	case "DATE":
		return sortValue{time: m.sentDate()}
	case "SIZE":
		return sortValue{num: m.size}
	case "SUBJECT":
		base, _ := baseSubject(m.fields[fieldIndexSubject])
		return sortValue{str: collationKey(base)}
	case "FROM", "DISPLAYFROM":
		return sortValue{str: addressKey(m.fields[fieldIndexFrom], key == "DISPLAYFROM")}
	case "TO", "DISPLAYTO":
		return sortValue{str: addressKey(m.fields[fieldIndexTo], key == "DISPLAYTO")}
	case "CC":
		return sortValue{str: addressKey(m.fields[fieldIndexCc], false)}
	}
	return sortValue{}
}

// addressKey is the sort key of an address field: the mailbox (local part) of its first
// address (RFC 5256), or with display its display name, decoded, falling back to the
// address itself when it has none (RFC 5957). A group's first "address" is the group's
// name, as in the ENVELOPE.
func addressKey(field string, display bool) string {
	if field == "" {
		return ""
	}
	addrs := extractAddressList(field)
	if len(addrs) == 0 {
		return ""
	}
	a := addrs[0]
	if !display {
		return collationKey(a.Mailbox)
	}
	if name := strings.TrimSpace(normalizeSubject(decodeWords(a.Name))); name != "" {
		return collationKey(name)
	}
	if a.Host == "" {
		return collationKey(a.Mailbox)
	}
	return collationKey(a.Mailbox + "@" + a.Host)
}

// fieldSet names header fields SORT and THREAD read, one bit each.
type fieldSet uint8

// The fields, by their index in sortMsg.fields.
const (
	fieldIndexSubject = iota
	fieldIndexFrom
	fieldIndexTo
	fieldIndexCc
	fieldIndexDate
	fieldIndexMessageID
	fieldIndexReferences
	fieldIndexInReplyTo
	numFields
)

const (
	fieldSubject    fieldSet = 1 << fieldIndexSubject
	fieldFrom       fieldSet = 1 << fieldIndexFrom
	fieldTo         fieldSet = 1 << fieldIndexTo
	fieldCc         fieldSet = 1 << fieldIndexCc
	fieldDate       fieldSet = 1 << fieldIndexDate
	fieldMessageID  fieldSet = 1 << fieldIndexMessageID
	fieldReferences fieldSet = 1 << fieldIndexReferences
	fieldInReplyTo  fieldSet = 1 << fieldIndexInReplyTo
)

var fieldNames = [numFields][]byte{
	[]byte("Subject"), []byte("From"), []byte("To"), []byte("Cc"), []byte("Date"),
	[]byte("Message-ID"), []byte("References"), []byte("In-Reply-To"),
}

// readFields copies the first occurrence of each field in want from a header block into out,
// unfolded, white space around it trimmed. It scans the block once and parses nothing else:
// sorting a large folder reads one header per message, and a full parse of each would cost
// more than the sort.
func readFields(raw []byte, want fieldSet, out *[numFields]string) {
	for len(raw) > 0 && want != 0 {
		line, rest := cutLine(raw)
		raw = rest
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return // the end of the header
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue // not a field, or the continuation of one not asked for
		}
		name := bytes.TrimRight(line[:colon], " \t")
		for i, fn := range fieldNames {
			if want&(1<<i) == 0 || !bytes.EqualFold(name, fn) {
				continue
			}
			want &^= 1 << i
			value := append([]byte(nil), bytes.TrimRight(line[colon+1:], "\r\n")...)
			for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') {
				line, raw = cutLine(raw)
				value = append(value, bytes.TrimRight(line, "\r\n")...)
			}
			out[i] = string(bytes.TrimSpace(value))
			break
		}
	}
}

// cutLine splits off the first line of b, its line break included.
func cutLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], b[i+1:]
	}
	return b, nil
}
