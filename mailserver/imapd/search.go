package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
	"sync"
	"time"
	"unicode"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/store"
)

// searchResult is what SEARCH found: go-imap's SearchData, and the PARTIAL slice of it.
type searchResult struct {
	*imap.SearchData
	partial imap.NumSet // nil without PARTIAL; empty when no result is at those positions
	uids    imap.UIDSet // every match, for UPDATE's context
}

// search finds the messages of the selected folder that match; numbers are UIDs when uid is
// set, else sequence numbers.
func (s *session) search(uid bool, criteria *imap.SearchCriteria, options *searchReturn, keep func(store.Message) bool) *searchResult {
	data := &imap.SearchData{}
	res := &searchResult{SearchData: data}
	var seqs, partSeqs imap.SeqSet
	var partUIDs imap.UIDSet
	var minUID, maxUID uint32
	p := options.Partial
	for _, c := range s.matches(criteria, keep) {
		res.uids.AddNum(imap.UID(c.msg.UID))
		if minUID == 0 {
			minUID = c.msg.UID
		}
		maxUID = c.msg.UID
		data.ModSeq = max(data.ModSeq, c.msg.ModSeq)
		num := c.msg.UID
		if !uid {
			seqs.AddNum(c.seq)
			num = c.seq
		}
		// Candidates ascend in both UID and sequence number.
		if data.Min == 0 {
			data.Min = num
		}
		data.Max = num
		data.Count++
		if p != nil && p.lo <= data.Count && data.Count <= p.hi {
			partUIDs.AddNum(imap.UID(c.msg.UID))
			partSeqs.AddNum(c.seq)
		}
	}
	data.All, res.partial = res.uids, partUIDs
	if !uid {
		data.All, res.partial = seqs, partSeqs
	}
	if p != nil && res.partial == nil {
		res.partial = imap.UIDSet{} // no results there: PARTIAL answers NIL
	}
	if options.ReturnSave {
		s.saveResult(options, res.uids, partUIDs, minUID, maxUID)
	}
	return res
}

// saveResult keeps a search's result for "$" (RFC 5182): with only MIN and/or MAX asked for,
// only those (2.1); with PARTIAL, the part returned, as RFC 9394 says and Dovecot does.
func (s *session) saveResult(options *searchReturn, all, partial imap.UIDSet, minUID, maxUID uint32) {
	saved := all
	switch {
	case options.Partial != nil:
		saved = partial
	case (options.ReturnMin || options.ReturnMax) && !options.ReturnAll && !options.ReturnCount && minUID != 0:
		saved = imap.UIDSet{}
		if options.ReturnMin {
			saved.AddNum(imap.UID(minUID))
		}
		if options.ReturnMax {
			saved.AddNum(imap.UID(maxUID))
		}
	}
	s.sel.mu.Lock()
	s.sel.searchRes = saved
	s.sel.mu.Unlock()
}

// matches returns the messages of the selected folder the client knows of that meet criteria,
// in ascending order. SEARCH, SORT and THREAD start from it.
func (s *session) matches(criteria *imap.SearchCriteria, keep func(store.Message) bool) []*candidate {
	sel := s.sel
	var candidates []*candidate
	sel.folder.View(func(msgs []store.Message) {
		sel.mu.Lock()
		defer sel.mu.Unlock()
		var lastUID uint32
		if len(msgs) > 0 {
			lastUID = msgs[len(msgs)-1].UID
		}
		sel.staticCriteria(criteria, sel.clientCount(), lastUID)
		for i, m := range msgs {
			if seq := sel.seqOf(i); seq != 0 {
				candidates = append(candidates, &candidate{folder: sel.folder, seq: seq, msg: m})
			}
		}
	})
	out := candidates[:0]
	for _, c := range candidates {
		if (keep == nil || keep(c.msg)) && c.match(criteria) {
			out = append(out, c)
		}
	}
	return out
}

// staticCriteria resolves "*" and "$" in criteria's sets, in place. Callers hold mu.
func (sel *selection) staticCriteria(c *imap.SearchCriteria, maxSeq, maxUID uint32) {
	var seqSets []imap.SeqSet
	for _, set := range c.SeqNum {
		seqSets = append(seqSets, staticSeqSet(set, maxSeq))
	}
	c.SeqNum = seqSets
	for i, set := range c.UID {
		if imap.IsSearchRes(set) {
			c.UID[i] = sel.searchRes
		} else {
			c.UID[i] = staticUIDSet(set, maxUID)
		}
	}
	for i := range c.Not {
		sel.staticCriteria(&c.Not[i], maxSeq, maxUID)
	}
	for i := range c.Or {
		sel.staticCriteria(&c.Or[i][0], maxSeq, maxUID)
		sel.staticCriteria(&c.Or[i][1], maxSeq, maxUID)
	}
}

// candidate is a message SEARCH tests; its file is read only if a criterion needs it.
type candidate struct {
	folder *store.Folder
	seq    uint32
	msg    store.Message

	// raw is the message's header block from the store's header cache; nil until asked for,
	// or when the message is gone.
	raw     *store.Header
	rawRead bool

	headerRead bool
	hdr        *mail.Header
	whole      []byte
	wholeRead  bool
}

// headerReaders are the buffers header blocks are parsed with: a SEARCH parses one per
// message that may match.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func (c *candidate) rawHeader() *store.Header {
	if !c.rawRead {
		c.rawRead = true
		c.raw, _ = c.folder.Header(c.msg.UID)
	}
	return c.raw
}

// mayContain is a quick test before a header search parses a message: false means no header
// field can contain pattern. Parsing every field of every message is most of what such a
// SEARCH costs, and most messages do not match. It answers true whenever the raw bytes could
// differ from the decoded text: patterns with white space (folding changes it) and headers
// with RFC 2047 encoded words.
func (c *candidate) mayContain(pattern string) bool {
	if pattern == "" || strings.IndexFunc(pattern, unicode.IsSpace) >= 0 {
		return true
	}
	h := c.rawHeader()
	if h == nil || h.EncodedWords {
		return true
	}
	lower := strings.ToLower(pattern)
	if h.ASCII || (dirspec.IsASCII(lower) && !hasASCIILowerable(h.Raw)) {
		// Lower-casing folds A-Z alone here: in 7-bit text, and for a 7-bit pattern in 8-bit
		// text without the two letters whose lower case is 7-bit. The same answer as below,
		// without copying.
		return containsFoldASCII(h.Raw, lower)
	}
	return bytes.Contains(bytes.ToLower(h.Raw), []byte(lower))
}

// hasASCIILowerable reports whether b holds one of the two non-ASCII letters that
// bytes.ToLower turns into ASCII: U+0130 (İ, to i) and U+212A (the Kelvin sign, to k).
func hasASCIILowerable(b []byte) bool {
	return bytes.Contains(b, []byte("\u0130")) || bytes.Contains(b, []byte("\u212a"))
}

// containsFoldASCII reports whether s, with A-Z folded to a-z, contains lower. Candidates are
// found with IndexByte, for the first letter in either case.
func containsFoldASCII(s []byte, lower string) bool {
	n := len(lower)
	if n == 0 {
		return true
	}
	first := lower[0]
	upper := first
	if 'a' <= first && first <= 'z' {
		upper = first - 'a' + 'A'
	}
	last := len(s) - n // the last position a match can start at
	if last < 0 {
		return false
	}
	window := s[:last+1]
	// The next candidate at or after at in each case; past last when there is none.
	nextLower, nextUpper := -1, last+1
	if upper != first {
		nextUpper = -1
	}
	for at := 0; at <= last; {
		if nextLower < at {
			nextLower = indexByteFrom(window, first, at)
		}
		if upper != first && nextUpper < at {
			nextUpper = indexByteFrom(window, upper, at)
		}
		i := min(nextLower, nextUpper)
		if i > last {
			return false
		}
		if equalFoldASCII(s[i+1:i+n], lower[1:]) {
			return true
		}
		at = i + 1
	}
	return false
}

// indexByteFrom is the index of the first c in s at or after from, len(s) when there is none.
func indexByteFrom(s []byte, c byte, from int) int {
	if i := bytes.IndexByte(s[from:], c); i >= 0 {
		return from + i
	}
	return len(s)
}

// equalFoldASCII reports whether b, with A-Z folded to a-z, equals lower.
func equalFoldASCII(b []byte, lower string) bool {
	for j := range len(lower) {
		c := b[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[j] {
			return false
		}
	}
	return true
}

func (c *candidate) header() *mail.Header {
	if !c.headerRead {
		c.headerRead = true
		if raw := c.rawHeader(); raw != nil {
			r := headerReaders.Get().(*bufio.Reader)
			r.Reset(bytes.NewReader(raw.Raw))
			h, err := textproto.ReadHeader(r)
			r.Reset(nil)
			headerReaders.Put(r)
			if err == nil {
				c.hdr = &mail.Header{Header: gomessage.Header{Header: h}}
			}
		}
	}
	return c.hdr
}

func (c *candidate) content() []byte {
	if !c.wholeRead {
		c.wholeRead = true
		if f, err := c.folder.Open(c.msg.UID); err == nil {
			c.whole, _ = io.ReadAll(f)
			f.Close()
		}
	}
	return c.whole
}

// match reports whether the message meets every criterion: the index's first, the file's
// last.
func (c *candidate) match(cr *imap.SearchCriteria) bool {
	for _, set := range cr.SeqNum {
		if !set.Contains(c.seq) {
			return false
		}
	}
	for _, set := range cr.UID {
		if !set.Contains(imap.UID(c.msg.UID)) {
			return false
		}
	}
	if !matchDate(c.msg.InternalDate, cr.Since, cr.Before) {
		return false
	}
	if cr.ModSeq != nil && c.msg.ModSeq < cr.ModSeq.ModSeq {
		return false
	}
	for _, f := range cr.Flag {
		if !hasFlag(c.msg.Flags, f) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if hasFlag(c.msg.Flags, f) {
			return false
		}
	}
	if cr.Larger > 0 && c.msg.Size <= cr.Larger {
		return false
	}
	if cr.Smaller > 0 && c.msg.Size >= cr.Smaller {
		return false
	}
	for _, not := range cr.Not {
		if c.match(&not) {
			return false
		}
	}
	for _, or := range cr.Or {
		if !c.match(&or[0]) && !c.match(&or[1]) {
			return false
		}
	}
	if len(cr.Header) > 0 || !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		for _, hf := range cr.Header {
			if !c.mayContain(prefilterText(hf.Key, hf.Value)) {
				return false
			}
		}
		h := c.header()
		if h == nil {
			return false
		}
		for _, hf := range cr.Header {
			if !matchFields(h.FieldsByKey(hf.Key), hf.Value) && !matchAddresses(h, hf.Key, hf.Value) {
				return false
			}
		}
		if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
			t, err := h.Date()
			if err != nil || !matchDate(t, cr.SentSince, cr.SentBefore) {
				return false
			}
		}
	}
	for _, text := range cr.Text {
		if !matchContent(c.content(), text, true) {
			return false
		}
	}
	for _, body := range cr.Body {
		if !matchContent(c.content(), body, false) {
			return false
		}
	}
	return true
}

// matchDate compares the calendar date of t in its own zone, as RFC 3501 asks (time and zone
// disregarded). since and before are dates at UTC midnight.
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(since) {
		return false
	}
	if !before.IsZero() && !d.Before(before) {
		return false
	}
	return true
}

// matchFields reports whether a field contains pattern, case-insensitively, after decoding
// RFC 2047 words; an empty pattern only asks that the field be present.
func matchFields(fields gomessage.HeaderFields, pattern string) bool {
	if pattern == "" {
		return fields.Len() > 0
	}
	pattern = strings.ToLower(pattern)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), pattern) {
			return true
		}
	}
	return false
}

// addressFields are the header fields SEARCH also matches as parsed addresses.
var addressFields = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "sender": true, "reply-to": true}

// prefilterText is the part of a SEARCH string that a matching message's raw header must
// contain. For an address field that is one word of it: "alice@example.com" also matches
// "alice @ example.com" and "alice(the user)@example.com", read as addresses.
func prefilterText(key, pattern string) string {
	if !addressFields[strings.ToLower(key)] {
		return pattern
	}
	word := strings.FieldsFunc(pattern, func(r rune) bool { return strings.ContainsRune(" @.()<>\",\t", r) })
	if len(word) == 0 {
		return ""
	}
	return word[0]
}

// matchAddresses matches an address field as RFC 5322 reads it: each address as
// "name <mailbox@host>", comments and folding whitespace gone, as Dovecot searches them.
func matchAddresses(h *mail.Header, key, pattern string) bool {
	if !addressFields[strings.ToLower(key)] {
		return false
	}
	pattern = strings.ToLower(pattern)
	fields := h.FieldsByKey(key)
	for fields.Next() {
		for _, a := range extractAddressList(fields.Value()) {
			text := a.Addr()
			if a.Name != "" {
				// The name as read, encoded words decoded: "=?ISO" matches no decoded name.
				name, err := mimeWordDecoder.DecodeHeader(a.Name)
				if err != nil {
					name = a.Name
				}
				text = name + " <" + text + ">"
			}
			if strings.Contains(strings.ToLower(text), pattern) {
				return true
			}
		}
	}
	return false
}

// mimeWordDecoder decodes RFC 2047 encoded words in any charset go-message knows.
var mimeWordDecoder = mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// matchContent searches the text of a message: its text parts, decoded from their transfer
// encoding and charset, and with withHeader (SEARCH TEXT) every header field too.
func matchContent(raw []byte, pattern string, withHeader bool) bool {
	if pattern == "" {
		return true
	}
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil || (err != nil && !gomessage.IsUnknownCharset(err) && !gomessage.IsUnknownEncoding(err)) {
		// Unparseable: fall back to the raw bytes rather than never matching.
		return bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(pattern)))
	}
	return matchEntity(e, strings.ToLower(pattern), withHeader)
}

func matchEntity(e *gomessage.Entity, pattern string, withHeader bool) bool {
	if withHeader && matchFields(e.Header.Fields(), pattern) {
		return true
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) || (err != nil && !gomessage.IsUnknownCharset(err)) || part == nil {
				return false
			}
			if matchEntity(part, pattern, withHeader) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if strings.HasPrefix(t, "message/") {
		inner, err := gomessage.Read(e.Body)
		if inner != nil && (err == nil || gomessage.IsUnknownCharset(err)) {
			return matchEntity(inner, pattern, withHeader)
		}
		return false
	}
	if !strings.HasPrefix(t, "text/") {
		return false // attachments are not searched
	}
	body, _ := io.ReadAll(e.Body)
	return strings.Contains(strings.ToLower(string(body)), pattern)
}
