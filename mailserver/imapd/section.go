package imapd

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// Sections (RFC 3501 6.4.5, RFC 3516) are cut out of the stored bytes unchanged: mail appended
// with BINARY may hold bare LF and NUL, and a client that fetches a part and then its pieces
// must see the same bytes in both. Only the blank line that ends HEADER.FIELDS is produced
// here, always as CRLF.
//
// A section that does not exist (BODY[5] of a message with two parts) is returned as nil, an
// existing empty one as an empty non-nil slice; encodeBodyLiteral and encodeBinaryLiteral turn
// nil into NIL, as Dovecot answers.
//
// HEADER, TEXT and HEADER.FIELDS after a part number are meant for message/rfc822 parts and
// then address the encapsulated message; after another part they address that part's own
// header and body, as go-imap's server did, rather than failing.

// extractBodySection returns the whole of the section bs names, without applying bs.Partial:
// the caller cuts <origin.octets> out of it, and needs the whole for the size of BODY[]<n>.
func extractBodySection(r io.ReaderAt, size int64, bs *imap.FetchItemBodySection) ([]byte, error) {
	if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader {
		// The message list's request: read no further than the header, which the header
		// cache may hold already.
		if ch, ok := r.(cachedHeader); ok {
			hdr := extractHeaderBlock(ch.h.Raw)
			return extractHeaderSection(hdr, 0, len(hdr), bs), nil
		}
		hdr, err := extractReadHeader(r, size)
		if err != nil {
			return nil, err
		}
		return extractHeaderSection(hdr, 0, len(hdr), bs), nil
	}
	buf, err := extractReadAll(r, size)
	if err != nil {
		return nil, err
	}
	root := extractParseMessage(buf)
	e := extractFindPart(root, bs.Part)
	if e == nil {
		return nil, nil
	}
	switch bs.Specifier {
	case imap.PartSpecifierNone:
		if len(bs.Part) == 0 {
			return buf, nil
		}
		return buf[e.bodyStart:e.end], nil
	case imap.PartSpecifierMIME:
		return buf[e.start:e.bodyStart], nil
	case imap.PartSpecifierText:
		m := extractMessageOf(e, bs.Part)
		return buf[m.bodyStart:m.end], nil
	case imap.PartSpecifierHeader:
		m := extractMessageOf(e, bs.Part)
		return extractHeaderSection(buf, m.start, m.bodyStart, bs), nil
	}
	return nil, fmt.Errorf("section specifier %q is not one of HEADER, HEADER.FIELDS, TEXT, MIME", bs.Specifier)
}

// extractMessageOf is the message whose HEADER or TEXT a section names: the encapsulated
// message of a message/rfc822 part, otherwise the entity itself.
func extractMessageOf(e *extractEntity, part []int) *extractEntity {
	if len(part) > 0 && e.message != nil {
		return e.message
	}
	return e
}

// extractFindPart follows a part number (RFC 3501 6.4.5): each number picks a part of a
// multipart; after a message/rfc822 part the next number picks within the encapsulated
// message; a message that is not multipart has only part 1, its body. nil when there is no
// such part.
func extractFindPart(root *extractEntity, part []int) *extractEntity {
	cur := root
	for i, n := range part {
		if i > 0 {
			if cur.message != nil {
				cur = cur.message
			} else if len(cur.children) == 0 {
				return nil // a leaf part has no subparts
			}
		}
		switch {
		case len(cur.children) > 0:
			if n < 1 || n > len(cur.children) {
				return nil
			}
			cur = cur.children[n-1]
		case n != 1:
			return nil
		}
	}
	return cur
}

// extractHeaderSection is HEADER (the whole header block, blank line included) or
// HEADER.FIELDS (.NOT): the fields named, matched without regard to case, as their original
// lines (folding included) in message order, then a blank line (RFC 3501 6.4.5).
func extractHeaderSection(buf []byte, start, end int, bs *imap.FetchItemBodySection) []byte {
	if len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		return buf[start:end]
	}
	names, keep := bs.HeaderFields, true
	if len(names) == 0 {
		names, keep = bs.HeaderFieldsNot, false
	}
	out := []byte{}
	for pos := start; pos < end; {
		fieldEnd := extractFieldEnd(buf, pos, end)
		line := buf[pos:fieldEnd]
		colon := bytes.IndexByte(line, ':')
		if colon > 0 {
			name := string(bytes.TrimRight(line[:colon], " \t"))
			if extractNameIn(name, names) == keep {
				out = append(out, line...)
			}
		}
		pos = fieldEnd
	}
	return append(out, '\r', '\n')
}

// extractFieldEnd is the end of the header field that starts at pos: after its last
// continuation line. The blank line that ends the header is a "field" without a colon.
func extractFieldEnd(buf []byte, pos, end int) int {
	for first := true; pos < end; first = false {
		if !first && buf[pos] != ' ' && buf[pos] != '\t' {
			return pos
		}
		i := bytes.IndexByte(buf[pos:end], '\n')
		if i < 0 {
			return end
		}
		pos += i + 1
		if first && (i == 0 || (i == 1 && buf[pos-2] == '\r')) {
			return pos // the blank line
		}
	}
	return end
}

func extractNameIn(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// extractBinarySection returns the content of a part with its Content-Transfer-Encoding
// undone (RFC 3516); the whole message when part is empty, its body decoded if the message
// itself is base64 or quoted-printable. ok is false when the encoding is unknown or the data
// does not decode: the caller answers NO [UNKNOWN-CTE]. data is nil, with ok, for a part that
// does not exist.
func extractBinarySection(r io.ReaderAt, size int64, part []int) (data []byte, ok bool, err error) {
	buf, err := extractReadAll(r, size)
	if err != nil {
		return nil, false, err
	}
	root := extractParseMessage(buf)
	e := extractFindPart(root, part)
	if e == nil {
		return nil, true, nil
	}
	cte := strings.ToLower(extractMIMEToken(e.header.Get("Content-Transfer-Encoding")))
	body, ok := extractDecode(buf[e.bodyStart:e.end], cte)
	if !ok || len(part) > 0 {
		return body, ok, nil
	}
	if extractIdentityCTE(cte) {
		return buf, true, nil
	}
	return append(append([]byte{}, buf[e.start:e.bodyStart]...), body...), true, nil
}

// extractIdentityCTE reports whether an encoding leaves the data as it is.
func extractIdentityCTE(cte string) bool {
	return cte == "" || cte == "7bit" || cte == "8bit" || cte == "binary"
}

// extractDecode undoes a Content-Transfer-Encoding. Go's quoted-printable reader is lenient
// the way mail needs ("=" without hex digits is taken as is, bare LF kept) but refuses control
// bytes and junk after a soft line break; such a part gets NO [UNKNOWN-CTE] for BINARY, and
// its client can still fetch BODY and decode it itself.
func extractDecode(b []byte, cte string) ([]byte, bool) {
	switch {
	case extractIdentityCTE(cte):
		return b, true
	case cte == "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, b)
		out, err := base64.StdEncoding.DecodeString(string(clean))
		if err != nil {
			// Encoders that drop the padding exist.
			out, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(clean), "="))
		}
		return out, err == nil
	case cte == "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if out == nil {
			out = []byte{}
		}
		return out, err == nil
	}
	return nil, false
}

// extractReadAll reads the message; sections of a part need the MIME structure before them.
func extractReadAll(r io.ReaderAt, size int64) ([]byte, error) {
	buf := make([]byte, size)
	n, err := r.ReadAt(buf, 0)
	if n == len(buf) {
		return buf, nil // ReadAt may report io.EOF with the last byte
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("reading message: %d of %d bytes: %w", n, size, err)
}

// extractReadHeader reads the message's header block, blank line included, and nothing
// after it.
func extractReadHeader(r io.ReaderAt, size int64) ([]byte, error) {
	br := bufio.NewReader(io.NewSectionReader(r, 0, size))
	hdr := []byte{}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			content := bytes.TrimRight(line, "\r\n")
			if len(content) > 0 && !extractIsHeaderLine(content, len(hdr) == 0) {
				return hdr, nil
			}
			hdr = append(hdr, line...)
			if len(content) == 0 {
				return hdr, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return hdr, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading message header: %w", err)
		}
	}
}

// extractHeaderBlock is extractReadHeader over bytes in memory: the start of b up to its
// blank line, or up to a line that cannot be part of a header. It shares b's memory.
func extractHeaderBlock(b []byte) []byte {
	for pos := 0; pos < len(b); {
		end := len(b)
		if i := bytes.IndexByte(b[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		content := bytes.TrimRight(b[pos:end], "\r\n")
		if len(content) > 0 && !extractIsHeaderLine(content, pos == 0) {
			return b[:pos]
		}
		pos = end
		if len(content) == 0 {
			return b[:pos]
		}
	}
	return b
}

// encodeBodyLiteral is the data of a BODY[...] response item: "" for a section that does not
// exist, otherwise a literal. IMAP literals must not hold NUL, which only mail stored by
// APPEND with a literal8 can contain; like Dovecot (imap-msgpart.c) we send each NUL as the
// byte 0x80, which keeps the length, so that sizes and partial fetches stay consistent. The
// exact bytes are available through BINARY[].
func encodeBodyLiteral(b []byte) wire.Value {
	if b == nil {
		return wire.String("") // Dovecot 2.3 answers a missing part with "", not NIL
	}
	if bytes.IndexByte(b, 0) < 0 {
		return wire.Literal(b)
	}
	return wire.Literal(bytes.ReplaceAll(b, []byte{0}, []byte{0x80}))
}

// encodeBinaryLiteral is the data of a BINARY[...] response item: NIL for a part that does not
// exist, otherwise a literal8, which may carry NUL (RFC 3516).
func encodeBinaryLiteral(b []byte) wire.Value {
	if b == nil {
		return wire.NIL()
	}
	return wire.Binary(b)
}

// encodeSectionName is the name of a BODY[...] response item. A partial fetch carries only its
// origin, "BODY[]<0>" for BODY[]<0.100> (RFC 3501 7.4.2).
func encodeSectionName(bs *imap.FetchItemBodySection) string {
	var b strings.Builder
	b.WriteString("BODY[")
	b.WriteString(encodePartPath(bs.Part))
	if bs.Specifier != imap.PartSpecifierNone {
		if len(bs.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(bs.Specifier))
		names, suffix := bs.HeaderFields, ".FIELDS"
		if len(names) == 0 {
			names, suffix = bs.HeaderFieldsNot, ".FIELDS.NOT"
		}
		if len(names) > 0 {
			b.WriteString(suffix)
			b.WriteString(" (")
			for i, n := range names {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(encodeAString(n))
			}
			b.WriteByte(')')
		}
	}
	b.WriteByte(']')
	encodeOrigin(&b, bs.Partial)
	return b.String()
}

// encodeBinarySectionName is the name of a BINARY[...] response item, with the origin of a
// partial fetch as for BODY.
func encodeBinarySectionName(bs *imap.FetchItemBinarySection) string {
	var b strings.Builder
	b.WriteString("BINARY[")
	b.WriteString(encodePartPath(bs.Part))
	b.WriteByte(']')
	encodeOrigin(&b, bs.Partial)
	return b.String()
}

// encodeBinarySizeName is the name of a BINARY.SIZE[...] response item.
func encodeBinarySizeName(bs *imap.FetchItemBinarySectionSize) string {
	return "BINARY.SIZE[" + encodePartPath(bs.Part) + "]"
}

func encodePartPath(part []int) string {
	s := make([]string, len(part))
	for i, n := range part {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

func encodeOrigin(b *strings.Builder, p *imap.SectionPartial) {
	if p != nil {
		b.WriteByte('<')
		b.WriteString(strconv.FormatInt(p.Offset, 10))
		b.WriteByte('>')
	}
}

// encodeAString is a header field name as an astring inside an atom-like item name: as is when
// it is an atom, else quoted. Field names come from the client's command, which could only
// carry odd ones in quotes or literals.
func encodeAString(s string) string {
	if s != "" && !strings.ContainsAny(s, "(){ %*\"\\]") && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f
	}) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
