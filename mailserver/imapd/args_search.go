package imapd

import (
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// searchArgs is a SEARCH or UID SEARCH command.
type searchArgs struct {
	Return   *searchReturn // nil: answer "* SEARCH"; else ESEARCH (RETURN () means ALL)
	Charset  string        // as given, "" when absent
	Criteria *imap.SearchCriteria

	// ModSeq is set when a MODSEQ key appears anywhere, nested or not: the answer then
	// carries the highest mod-sequence of the matches (RFC 7162 3.1.5).
	ModSeq bool

	// SAVEDATE keys (RFC 8514), which imap.SearchCriteria cannot hold. They are and-ed with
	// Criteria; inside NOT or OR they are refused.
	SaveDateSince     time.Time // SAVEDSINCE, or SAVEDON's start
	SaveDateBefore    time.Time // SAVEDBEFORE, or SAVEDON's end
	SaveDateSupported bool      // SAVEDATESUPPORTED
}

// searchReader reads search keys; negation counts the NOT and OR around the key being read.
type searchReader struct {
	*argList
	sa       *searchArgs
	negation int
}

// parseSearchArgs reads [RETURN (options)] [CHARSET name] keys...
func parseSearchArgs(args []wire.Value, uid bool) (*searchArgs, error) {
	sa := &searchArgs{Criteria: &imap.SearchCriteria{}}
	r := &searchReader{argList: newArgList(commandName("SEARCH", uid), args), sa: sa}
	if err := r.readReturn(); err != nil {
		return nil, err
	}
	if err := r.readCharset(); err != nil {
		return nil, err
	}
	if !r.more() {
		return nil, badArg("%s: missing argument: a search key such as ALL", r.cmd)
	}
	for r.more() {
		if err := r.readKey(sa.Criteria); err != nil {
			return nil, err
		}
	}
	return sa, nil
}

func (r *searchReader) peekAtom(name string) bool {
	v, ok := r.peek()
	return ok && v.Kind == wire.KindAtom && strings.EqualFold(v.Str, name)
}

// searchReturn is a RETURN (...) of SEARCH or SORT: RFC 4731's MIN, MAX, ALL and COUNT,
// RFC 5182's SAVE and RFC 5267's PARTIAL, UPDATE and CONTEXT.
type searchReturn struct {
	imap.SearchOptions
	Partial *partialRange // nil without PARTIAL
	// Update keeps the result up to date with ADDTO and REMOVEFROM (context.go).
	Update bool
}

// partialRange is PARTIAL's lo:hi, positions in the result counted from 1.
type partialRange struct{ lo, hi uint32 }

func (p partialRange) String() string {
	return strconv.FormatUint(uint64(p.lo), 10) + ":" + strconv.FormatUint(uint64(p.hi), 10)
}

// onlySave reports a RETURN (SAVE), which is answered with no ESEARCH (RFC 5182 2.4).
func (o *searchReturn) onlySave() bool {
	return o.ReturnSave && !o.ReturnMin && !o.ReturnMax && !o.ReturnAll && !o.ReturnCount && o.Partial == nil && !o.Update
}

// readReturn reads RETURN (MIN MAX ALL COUNT SAVE PARTIAL lo:hi UPDATE CONTEXT).
func (r *searchReader) readReturn() error {
	if !r.peekAtom("RETURN") {
		return nil
	}
	r.next("")
	v, err := r.next("the RETURN options")
	if err != nil {
		return err
	}
	if v.Kind != wire.KindList {
		return badArg("%s: expected RETURN options in parentheses, found %s", r.cmd, describeValue(v))
	}
	opts := &searchReturn{}
	for i := 0; i < len(v.List); i++ {
		o := v.List[i]
		name := ""
		if o.Kind == wire.KindAtom {
			name = strings.ToUpper(o.Str)
		}
		switch name {
		case "MIN":
			opts.ReturnMin = true
		case "MAX":
			opts.ReturnMax = true
		case "ALL":
			opts.ReturnAll = true
		case "COUNT":
			opts.ReturnCount = true
		case "SAVE":
			opts.ReturnSave = true
		case "UPDATE":
			opts.Update = true
		case "CONTEXT":
			// A hint that PARTIAL or UPDATE may follow (RFC 5267 4.2); every result is
			// computed afresh, so there is nothing to prepare.
		case "PARTIAL":
			if opts.Partial != nil {
				return badArg("%s: PARTIAL may be given only once", r.cmd)
			}
			i++
			if i == len(v.List) {
				return badArg("%s: PARTIAL needs a range of positions, such as PARTIAL 1:100", r.cmd)
			}
			if opts.Partial, err = parsePartialRange(r.cmd, v.List[i]); err != nil {
				return err
			}
		default:
			return badArg("%s: unknown RETURN option %s: expected MIN, MAX, ALL, COUNT, SAVE, PARTIAL, UPDATE or CONTEXT",
				r.cmd, describeValue(o))
		}
	}
	if opts.Partial != nil && opts.ReturnAll {
		return badArg("%s: PARTIAL and ALL cannot be asked for together (RFC 5267 4.4)", r.cmd)
	}
	if len(v.List) == 0 {
		opts.ReturnAll = true
	}
	r.sa.Return = opts
	return nil
}

// parsePartialRange reads PARTIAL's range: two positions from 1 (in either order, as for
// sequence sets). RFC 9394's negative positions, counted from the end, are not offered.
func parsePartialRange(cmd string, v wire.Value) (*partialRange, error) {
	bad := badArg("%s: PARTIAL takes a range of positions from 1 to 4294967295, such as 1:100, not %s", cmd, describeValue(v))
	if v.Kind != wire.KindAtom {
		return nil, bad
	}
	lo, hi, ok := strings.Cut(v.Str, ":")
	if !ok {
		return nil, bad
	}
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b, err2 := strconv.ParseUint(hi, 10, 32)
	if err1 != nil || err2 != nil || a == 0 || b == 0 || lo[0] == '+' || hi[0] == '+' {
		return nil, bad
	}
	return &partialRange{lo: uint32(min(a, b)), hi: uint32(max(a, b))}, nil
}

func (r *searchReader) readCharset() error {
	if !r.peekAtom("CHARSET") {
		return nil
	}
	r.next("")
	cs, err := r.nextString("the charset name")
	if err != nil {
		return err
	}
	switch strings.ToUpper(cs) {
	case "UTF-8", "US-ASCII":
		r.sa.Charset = cs
		return nil
	}
	return &argError{code: badCharsetCode, text: r.cmd + ": charset " + truncateQuote(cs) + " is not supported, use UTF-8"}
}

// flagKeys are the search keys that test one flag; UN... keys test its absence.
var flagKeys = map[string]imap.Flag{
	"ANSWERED": imap.FlagAnswered, "DELETED": imap.FlagDeleted, "DRAFT": imap.FlagDraft,
	"FLAGGED": imap.FlagFlagged, "SEEN": imap.FlagSeen, "RECENT": flagRecent,
}

// flagRecent is the flag the library's server and our search treat \Recent as; our store never
// sets it, so RECENT and NEW match nothing and OLD everything.
const flagRecent imap.Flag = "\\Recent"

// headerKeys are the search keys that look in one header field.
var headerKeys = map[string]string{"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}

// readKey reads one search key into c, as go-imap's server did, so the search code keeps
// its meaning.
func (r *searchReader) readKey(c *imap.SearchCriteria) error {
	v, err := r.next("a search key")
	if err != nil {
		return err
	}
	if v.Kind == wire.KindList {
		return r.readGroup(c, v.List)
	}
	if v.Kind != wire.KindAtom && v.Kind != wire.KindNumber {
		return badArg("%s: expected a search key, found %s", r.cmd, describeValue(v))
	}
	key := strings.ToUpper(v.Str)
	if f, ok := flagKeys[key]; ok {
		c.Flag = append(c.Flag, f)
		return nil
	}
	if f, ok := flagKeys[strings.TrimPrefix(key, "UN")]; ok && strings.HasPrefix(key, "UN") && f != flagRecent {
		c.NotFlag = append(c.NotFlag, f)
		return nil
	}
	if h, ok := headerKeys[key]; ok {
		s, err := r.nextString(key + "'s text")
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: h, Value: s})
		return err
	}
	switch key {
	case "ALL":
	case "NEW":
		c.Flag, c.NotFlag = append(c.Flag, flagRecent), append(c.NotFlag, imap.FlagSeen)
	case "OLD":
		c.NotFlag = append(c.NotFlag, flagRecent)
	case "NOT", "OR":
		return r.readNegation(c, key)
	default:
		return r.readKeyWithArgs(c, key, v)
	}
	return nil
}

// readGroup reads a parenthesised list of keys, which all must match.
func (r *searchReader) readGroup(c *imap.SearchCriteria, keys []wire.Value) error {
	if len(keys) == 0 {
		return badArg("%s: empty parentheses: a group needs at least one key", r.cmd)
	}
	sub := &searchReader{argList: newArgList(r.cmd, keys), sa: r.sa, negation: r.negation}
	var g imap.SearchCriteria
	for sub.more() {
		if err := sub.readKey(&g); err != nil {
			return err
		}
	}
	andCriteria(c, &g)
	return nil
}

// andCriteria and-s g into c; imap.SearchCriteria.And forgets ModSeq.
func andCriteria(c, g *imap.SearchCriteria) {
	c.And(g)
	if g.ModSeq != nil && (c.ModSeq == nil || g.ModSeq.ModSeq > c.ModSeq.ModSeq) {
		c.ModSeq = g.ModSeq
	}
}

func (r *searchReader) readNegation(c *imap.SearchCriteria, key string) error {
	r.negation++
	defer func() { r.negation-- }()
	if key == "NOT" {
		var not imap.SearchCriteria
		if err := r.readKey(&not); err != nil {
			return err
		}
		c.Not = append(c.Not, not)
		return nil
	}
	var or [2]imap.SearchCriteria
	if err := r.readKey(&or[0]); err != nil {
		return err
	}
	if err := r.readKey(&or[1]); err != nil {
		return err
	}
	c.Or = append(c.Or, or)
	return nil
}

// dateKeys are the keys that take a date, with the criteria they set.
var dateKeys = map[string]func(c *imap.SearchCriteria, t time.Time){
	"SINCE":      func(c *imap.SearchCriteria, t time.Time) { c.Since = t },
	"BEFORE":     func(c *imap.SearchCriteria, t time.Time) { c.Before = t },
	"ON":         func(c *imap.SearchCriteria, t time.Time) { c.Since, c.Before = t, t.AddDate(0, 0, 1) },
	"SENTSINCE":  func(c *imap.SearchCriteria, t time.Time) { c.SentSince = t },
	"SENTBEFORE": func(c *imap.SearchCriteria, t time.Time) { c.SentBefore = t },
	"SENTON":     func(c *imap.SearchCriteria, t time.Time) { c.SentSince, c.SentBefore = t, t.AddDate(0, 0, 1) },
}

func (r *searchReader) readKeyWithArgs(c *imap.SearchCriteria, key string, v wire.Value) error {
	if set, ok := dateKeys[key]; ok {
		d, err := r.nextDate(key)
		if err != nil {
			return err
		}
		var dc imap.SearchCriteria
		set(&dc, d)
		c.And(&dc)
		return nil
	}
	switch key {
	case "BODY", "TEXT":
		s, err := r.nextString(key + "'s text")
		if key == "BODY" {
			c.Body = append(c.Body, s)
		} else {
			c.Text = append(c.Text, s)
		}
		return err
	case "HEADER":
		name, err := r.nextString("HEADER's field name")
		if err != nil {
			return err
		}
		s, err := r.nextString("HEADER's text")
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: name, Value: s})
		return err
	case "KEYWORD", "UNKEYWORD":
		return r.readKeyword(c, key)
	case "LARGER", "SMALLER":
		return r.readSize(c, key)
	case "UID":
		return r.readUID(c)
	case "MODSEQ":
		return r.readModSeq(c)
	case "SAVEDSINCE", "SAVEDBEFORE", "SAVEDON", "SAVEDATESUPPORTED":
		return r.readSaveDate(key)
	}
	set, err := parseNumSet(v, false)
	if err != nil {
		return badArg("%s: unknown search key %s", r.cmd, describeValue(v))
	}
	if s, ok := set.(imap.UIDSet); ok { // "$"
		c.UID = append(c.UID, s)
	} else {
		c.SeqNum = append(c.SeqNum, set.(imap.SeqSet))
	}
	return nil
}

func (r *searchReader) nextDate(key string) (time.Time, error) {
	v, err := r.next(key + "'s date")
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseSearchDate(v)
	return t, r.wrap(err)
}

func (r *searchReader) readKeyword(c *imap.SearchCriteria, key string) error {
	v, err := r.next(key + "'s keyword")
	if err != nil {
		return err
	}
	// Searching for \Recent is harmless, unlike setting it.
	f := flagRecent
	if v.Kind != wire.KindAtom || !strings.EqualFold(v.Str, string(flagRecent)) {
		if f, err = parseFlag(v); err != nil {
			return r.wrap(err)
		}
	}
	if key == "KEYWORD" {
		c.Flag = append(c.Flag, f)
	} else {
		c.NotFlag = append(c.NotFlag, f)
	}
	return nil
}

// readSize reads LARGER n or SMALLER n. SMALLER 0 matches nothing, which Smaller cannot say
// (0 is "no limit"): it becomes NOT ALL.
func (r *searchReader) readSize(c *imap.SearchCriteria, key string) error {
	n, err := r.nextNumber(key+"'s size", maxNumber64)
	if err != nil {
		return err
	}
	switch {
	case key == "LARGER":
		c.And(&imap.SearchCriteria{Larger: int64(n)})
	case n == 0:
		c.Not = append(c.Not, imap.SearchCriteria{})
	default:
		c.And(&imap.SearchCriteria{Smaller: int64(n)})
	}
	return nil
}

func (r *searchReader) readUID(c *imap.SearchCriteria) error {
	v, err := r.next("UID's set")
	if err != nil {
		return err
	}
	set, err := parseNumSet(v, true)
	if err != nil {
		return r.wrap(err)
	}
	c.UID = append(c.UID, set.(imap.UIDSet))
	return nil
}

// readModSeq reads MODSEQ ["entry-name" entry-type] n (RFC 7162 3.1.5).
func (r *searchReader) readModSeq(c *imap.SearchCriteria) error {
	ms := &imap.SearchCriteriaModSeq{}
	if v, ok := r.peek(); ok && v.Kind != wire.KindNumber {
		name, err := r.nextString("MODSEQ's entry name")
		if err != nil {
			return err
		}
		typ, err := r.nextAtom("MODSEQ's entry type (priv, shared or all)")
		if err != nil {
			return err
		}
		switch t := imap.SearchCriteriaMetadataType(strings.ToLower(typ)); t {
		case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
			ms.MetadataName, ms.MetadataType = name, t
		default:
			return badArg("%s: MODSEQ entry type %s is not priv, shared or all", r.cmd, truncateQuote(typ))
		}
	}
	n, err := r.nextNumber("MODSEQ's mod-sequence", maxNumber64)
	if err != nil {
		return err
	}
	ms.ModSeq = n
	andCriteria(c, &imap.SearchCriteria{ModSeq: ms})
	r.sa.ModSeq = true
	return nil
}

func (r *searchReader) readSaveDate(key string) error {
	if r.negation > 0 {
		return badArg("%s: %s is not supported inside NOT or OR", r.cmd, key)
	}
	sa := r.sa
	if key == "SAVEDATESUPPORTED" {
		sa.SaveDateSupported = true
		return nil
	}
	d, err := r.nextDate(key)
	if err != nil {
		return err
	}
	var dc imap.SearchCriteria
	switch key {
	case "SAVEDSINCE":
		dc.Since = d
	case "SAVEDBEFORE":
		dc.Before = d
	case "SAVEDON":
		dc.Since, dc.Before = d, d.AddDate(0, 0, 1)
	}
	// And intersects the ranges the way the other date keys do.
	acc := imap.SearchCriteria{Since: sa.SaveDateSince, Before: sa.SaveDateBefore}
	acc.And(&dc)
	sa.SaveDateSince, sa.SaveDateBefore = acc.Since, acc.Before
	return nil
}
