package imapd

import (
	"bufio"
	"bytes"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// extractEntity is one MIME entity of a stored message, located by byte offsets into the
// message so that BODY[...] sections are cut out exactly as stored, bare LF and NUL
// included, and BODYSTRUCTURE sizes match them.
type extractEntity struct {
	header textproto.Header
	// start is the first byte of the header, bodyStart the first byte after the blank line
	// that ends it (or after the header when no blank line does), end the end of the body: for
	// a part of a multipart, the line break before the next boundary belongs to the boundary
	// (RFC 2046 5.1.1).
	start, bodyStart, end int

	typ, subtype string         // Content-Type as written, defaults applied
	params       []extractParam // its parameters, RFC 2231 continuations merged
	children     []*extractEntity
	message      *extractEntity // the message a message/rfc822 part encapsulates
}

// extractParam is a MIME parameter; name is lower-cased, value as written.
type extractParam struct{ name, value string }

// extractMaxDepth bounds the nesting of multiparts and message/rfc822 parts followed, so that
// a crafted message cannot make the parser recurse without end (Dovecot has such a limit
// too). Deeper entities are reported as opaque application/octet-stream.
const extractMaxDepth = 50

// extractParseMessage parses a whole message.
func extractParseMessage(buf []byte) *extractEntity {
	return extractParseEntity(buf, 0, len(buf), false, 0)
}

// extractParseEntity parses the entity in buf[start:end]. inDigest says the entity is a part
// of a multipart/digest, whose parts default to message/rfc822 (RFC 2046 5.1.5).
func extractParseEntity(buf []byte, start, end int, inDigest bool, depth int) *extractEntity {
	e := &extractEntity{start: start, end: end}
	e.bodyStart = extractHeaderEnd(buf, start, end)
	// A header that does not parse to the end keeps the fields before the fault.
	e.header, _ = textproto.ReadHeader(bufio.NewReader(bytes.NewReader(buf[start:e.bodyStart])))

	var ok bool
	e.typ, e.subtype, e.params, ok = extractContentType(e.header.Get("Content-Type"))
	if !ok {
		// RFC 2045 5.2: no (valid) Content-Type is text/plain; charset=us-ascii.
		e.typ, e.subtype, e.params = "text", "plain", nil
		if inDigest {
			e.typ, e.subtype = "message", "rfc822"
		}
	}
	switch {
	case strings.EqualFold(e.typ, "multipart"):
		if depth >= extractMaxDepth {
			e.typ, e.subtype, e.params = "application", "octet-stream", nil
			break
		}
		boundary := extractParamValue(e.params, "boundary")
		if boundary != "" {
			digest := strings.EqualFold(e.subtype, "digest")
			e.children = extractSplitParts(buf, e.bodyStart, end, boundary, digest, depth+1)
		}
		if len(e.children) == 0 {
			// No boundary, or none found (wrong boundary, truncated message): IMAP has no
			// multipart without parts, and showing the body as text lets the user read it.
			e.typ, e.subtype, e.params = "text", "plain", nil
		}
	case extractIsMessage(e.typ, e.subtype):
		if depth >= extractMaxDepth {
			e.typ, e.subtype, e.params = "application", "octet-stream", nil
			break
		}
		e.message = extractParseEntity(buf, e.bodyStart, end, false, depth+1)
	}
	return e
}

// extractIsMessage reports whether a part encapsulates a message: message/rfc822, or its
// internationalised twin message/global (RFC 6532), which IMAP describes the same way.
func extractIsMessage(typ, subtype string) bool {
	return strings.EqualFold(typ, "message") &&
		(strings.EqualFold(subtype, "rfc822") || strings.EqualFold(subtype, "global"))
}

// extractHeaderEnd finds where the header that starts at start ends: after the first empty
// line, or at the first line that is neither a field nor a continuation (a part without a
// header and without the blank line), or at end.
func extractHeaderEnd(buf []byte, start, end int) int {
	for pos := start; pos < end; {
		next := end
		if i := bytes.IndexByte(buf[pos:end], '\n'); i >= 0 {
			next = pos + i + 1
		}
		line := bytes.TrimRight(buf[pos:next], "\r\n")
		if len(line) == 0 {
			return next
		}
		if !extractIsHeaderLine(line, pos == start) {
			return pos
		}
		pos = next
	}
	return end
}

// extractIsHeaderLine reports whether line (without its line break) continues a header: a
// continuation line, or "name:" with a name of printable ASCII.
func extractIsHeaderLine(line []byte, first bool) bool {
	if line[0] == ' ' || line[0] == '\t' {
		return !first
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range bytes.TrimRight(line[:colon], " \t") {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// extractSplitParts splits a multipart body at its boundary lines. Text before the first
// boundary (preamble) and after the closing one (epilogue) belongs to no part; a message
// truncated before the closing boundary ends its last part at the end of the data.
func extractSplitParts(buf []byte, start, end int, boundary string, digest bool, depth int) []*extractEntity {
	delim := []byte("--" + boundary)
	var parts []*extractEntity
	partStart := -1
	for pos := start; pos < end; {
		next := end
		if i := bytes.IndexByte(buf[pos:end], '\n'); i >= 0 {
			next = pos + i + 1
		}
		if isDelim, isClose := extractIsDelimiter(buf[pos:next], delim); isDelim {
			if partStart >= 0 {
				partEnd := extractBeforeLineBreak(buf, partStart, pos)
				parts = append(parts, extractParseEntity(buf, partStart, partEnd, digest, depth))
			}
			if isClose {
				return parts
			}
			partStart = next
		}
		pos = next
	}
	if partStart >= 0 {
		parts = append(parts, extractParseEntity(buf, partStart, end, digest, depth))
	}
	return parts
}

// extractIsDelimiter reports whether line is "--boundary" or the closing "--boundary--",
// followed only by white space (RFC 2046 5.1.1 transport padding). Requiring that keeps a
// boundary that is a prefix of a nested part's boundary from matching the nested one.
func extractIsDelimiter(line, delim []byte) (isDelim, isClose bool) {
	if !bytes.HasPrefix(line, delim) {
		return false, false
	}
	rest := line[len(delim):]
	if bytes.HasPrefix(rest, []byte("--")) {
		isClose = true
		rest = rest[2:]
	}
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return false, false
	}
	return true, isClose
}

// extractBeforeLineBreak is pos moved back over the CRLF or LF before it, which belongs to the
// boundary line that starts at pos, but never before partStart.
func extractBeforeLineBreak(buf []byte, partStart, pos int) int {
	if pos-2 >= partStart && buf[pos-2] == '\r' && buf[pos-1] == '\n' {
		return pos - 2
	}
	if pos-1 >= partStart && buf[pos-1] == '\n' {
		return pos - 1
	}
	return pos
}

// extractParamValue is the value of the parameter name, "" when absent.
func extractParamValue(params []extractParam, name string) string {
	for _, p := range params {
		if p.name == name {
			return p.value
		}
	}
	return ""
}

// extractContentType parses "type/subtype; params" (RFC 2045 5.1). ok is false when there is
// no type/subtype, and the caller applies the default.
func extractContentType(v string) (typ, subtype string, params []extractParam, ok bool) {
	s := extractMIMEScanner{s: v}
	typ = s.token()
	if typ == "" || !s.accept('/') {
		return "", "", nil, false
	}
	subtype = s.token()
	if subtype == "" {
		return "", "", nil, false
	}
	return typ, subtype, s.params(), true
}

// extractDisposition parses a Content-Disposition: "value; params" (RFC 2183).
func extractDisposition(v string) (value string, params []extractParam) {
	s := extractMIMEScanner{s: v}
	value = s.token()
	if value == "" {
		return "", nil
	}
	return value, s.params()
}

// extractMIMEScanner reads the tokens, quoted strings and parameters of MIME header fields,
// skipping comments.
type extractMIMEScanner struct {
	s string
	i int
}

// extractMIMESpecials are RFC 2045's tspecials.
const extractMIMESpecials = "()<>@,;:\\\"/[]?="

// skip passes white space and comments.
func (s *extractMIMEScanner) skip() {
	for s.i < len(s.s) {
		switch s.s[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		case '(':
			_, n := extractAddrComment(s.s[s.i:])
			s.i += n
		default:
			return
		}
	}
}

func (s *extractMIMEScanner) accept(c byte) bool {
	s.skip()
	if s.i < len(s.s) && s.s[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *extractMIMEScanner) token() string {
	s.skip()
	start := s.i
	for s.i < len(s.s) && s.s[s.i] > ' ' && s.s[s.i] != 0x7f && strings.IndexByte(extractMIMESpecials, s.s[s.i]) < 0 {
		s.i++
	}
	return s.s[start:s.i]
}

// value reads a parameter value: a quoted string, or, leniently, everything up to the next
// ';' (mailers send unquoted file names with spaces and tspecials).
func (s *extractMIMEScanner) value() string {
	s.skip()
	if s.i < len(s.s) && s.s[s.i] == '"' {
		v, n := extractAddrQuoted(s.s[s.i:])
		s.i += n
		return v
	}
	start := s.i
	for s.i < len(s.s) && s.s[s.i] != ';' {
		s.i++
	}
	return strings.TrimRight(s.s[start:s.i], " \t\r\n")
}

// params reads "; name=value" pairs up to the end, skipping what does not parse, and merges
// RFC 2231 continuations.
func (s *extractMIMEScanner) params() []extractParam {
	var params []extractParam
	for {
		s.skip()
		if s.i >= len(s.s) {
			break
		}
		if !s.accept(';') {
			s.i++ // garbage between parameters: skip it, as Dovecot does
			continue
		}
		name := strings.ToLower(s.token())
		if name == "" || !s.accept('=') {
			continue
		}
		params = append(params, extractParam{name, s.value()})
	}
	return extractMerge2231(params)
}

// extractMerge2231 joins RFC 2231 continuations (name*0, name*1*, ...) into one parameter, the
// way Dovecot's rfc2231_parse does: when any section is charset-encoded the result is the
// parameter "name*" with the value "charset'language'%XX..." (plain sections %-escaped), so
// that the client, which knows RFC 2231, decodes it with the right charset; otherwise the
// sections are simply concatenated under "name". Sections with a gap in their numbering are
// left as they are. Parameters without '*' keep their order; merged ones follow, sorted.
func extractMerge2231(params []extractParam) []extractParam {
	var out []extractParam
	sections := map[string][]extract2231Section{}
	for _, p := range params {
		star := strings.IndexByte(p.name, '*')
		if star < 0 {
			out = append(out, p)
			continue
		}
		base, rest := p.name[:star], p.name[star+1:]
		sec := extract2231Section{value: p.value}
		if strings.HasSuffix(rest, "*") {
			sec.extended = true
			rest = rest[:len(rest)-1]
		} else if rest == "" {
			sec.extended = true // "name*" is a single encoded section
		}
		if rest != "" {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				out = append(out, p)
				continue
			}
			sec.idx = n
		}
		sections[base] = append(sections[base], sec)
	}
	names := make([]string, 0, len(sections))
	for name := range sections {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		out = append(out, extractJoin2231(name, sections[name])...)
	}
	return out
}

// extract2231Section is one section of an RFC 2231 parameter: name*idx or name*idx*.
type extract2231Section struct {
	idx      int
	extended bool // charset-encoded
	value    string
}

// extractJoin2231 merges the sections of one parameter, or returns them one by one when their
// numbering has a gap.
func extractJoin2231(name string, secs []extract2231Section) []extractParam {
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].idx < secs[j].idx })
	contiguous, extended := true, false
	for i, sec := range secs {
		contiguous = contiguous && sec.idx == i
		extended = extended || sec.extended
	}
	if !contiguous {
		out := make([]extractParam, len(secs))
		for i, sec := range secs {
			key := name + "*" + strconv.Itoa(sec.idx)
			if sec.extended {
				key += "*"
			}
			out[i] = extractParam{key, sec.value}
		}
		return out
	}
	var b strings.Builder
	if extended && !secs[0].extended {
		b.WriteString("''") // the value of "name*" starts with charset'language'
	}
	for _, sec := range secs {
		if extended && !sec.extended {
			b.WriteString(strings.ReplaceAll(sec.value, "%", "%25"))
		} else {
			b.WriteString(sec.value)
		}
	}
	if extended {
		name += "*"
	}
	return []extractParam{{name, b.String()}}
}
