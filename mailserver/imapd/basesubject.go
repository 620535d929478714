package imapd

import (
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

// The base subject (RFC 5256 2.1) is what SORT (SUBJECT) and both THREAD algorithms compare:
// the subject without the "Re:", "Fwd:", "[list]" and "(fwd)" that replies and forwards add.
// The RFC defines it by this grammar (case-insensitive), applied in the steps baseSubject
// follows:
//
//	subj-refwd   = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
//	subj-blob    = "[" *BLOBCHAR "]" *WSP
//	subj-fwd-hdr = "[fwd:"
//	subj-fwd-trl = "]"
//	subj-leader  = (*subj-blob subj-refwd) / WSP
//	subj-trailer = "(fwd)" / WSP

// subjectDecoder decodes RFC 2047 encoded words with every charset go-message knows.
var subjectDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// baseSubject extracts the base subject of a Subject field's raw value. replyOrFwd reports
// whether extraction removed a reply or forward marker (subj-refwd, "(fwd)" or "[fwd: ...]"),
// which REFERENCES threading asks when it merges threads by subject (RFC 5256 4, step 5).
func baseSubject(raw string) (base string, replyOrFwd bool) {
	s := normalizeSubject(decodeWords(raw))
	for {
		// (2) trailers, then (3)-(5) leaders and blobs until none is left.
		var fwd bool
		s, fwd = trimSubjectTrailers(s)
		replyOrFwd = replyOrFwd || fwd
		for changed := true; changed; {
			var refwd bool
			s, refwd = trimSubjectLeaders(s)
			replyOrFwd = replyOrFwd || refwd
			s, changed = trimSubjectBlob(s)
			changed = changed || refwd
		}
		// (6) "[fwd: subject]" is a forward of subject: unwrap it and start again.
		if len(s) >= len("[fwd:]") && hasPrefixFold(s, "[fwd:") && strings.HasSuffix(s, "]") {
			s, replyOrFwd = s[len("[fwd:"):len(s)-1], true
			continue
		}
		return s, replyOrFwd
	}
}

// decodeWords decodes RFC 2047 encoded words to UTF-8 (step 1). A word in a charset nobody
// knows leaves the text as it was, which still sorts in a stable place.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := subjectDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// normalizeSubject turns tabs and line breaks into spaces and runs of spaces into one
// (step 1).
func normalizeSubject(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	if space {
		b.WriteByte(' ')
	}
	return b.String()
}

// trimSubjectTrailers removes trailing white space and "(fwd)" (step 2); fwd reports a
// "(fwd)".
func trimSubjectTrailers(s string) (out string, fwd bool) {
	for {
		switch {
		case strings.HasSuffix(s, " "):
			s = s[:len(s)-1]
		case len(s) >= len("(fwd)") && strings.EqualFold(s[len(s)-len("(fwd)"):], "(fwd)"):
			s, fwd = s[:len(s)-len("(fwd)")], true
		default:
			return s, fwd
		}
	}
}

// trimSubjectLeaders removes every subj-leader at the start (step 3): white space, and
// "Re:", "Fw:", "Fwd:" with the blobs around them ("[list] Re[2]: "). refwd reports that one
// of those was removed.
func trimSubjectLeaders(s string) (out string, refwd bool) {
	for {
		if strings.HasPrefix(s, " ") {
			s = s[1:]
			continue
		}
		i := 0
		for {
			n := subjectBlobLen(s[i:])
			if n == 0 {
				break
			}
			i += n
		}
		n := subjectRefwdLen(s[i:])
		if n == 0 {
			return s, refwd
		}
		s, refwd = s[i+n:], true
	}
}

// trimSubjectBlob removes one leading subj-blob if text is left after it (step 4): "[ann]"
// stays the base subject of "[ann]".
func trimSubjectBlob(s string) (string, bool) {
	n := subjectBlobLen(s)
	if n == 0 || n == len(s) {
		return s, false
	}
	return s[n:], true
}

// subjectBlobLen is the length of the subj-blob s starts with, 0 for none.
func subjectBlobLen(s string) int {
	if !strings.HasPrefix(s, "[") {
		return 0
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return 0
	}
	n := end + 2
	for n < len(s) && s[n] == ' ' {
		n++
	}
	return n
}

// subjectRefwdLen is the length of the subj-refwd s starts with, 0 for none.
func subjectRefwdLen(s string) int {
	var n int
	switch {
	case hasPrefixFold(s, "re"):
		n = 2
	case hasPrefixFold(s, "fwd"):
		n = 3
	case hasPrefixFold(s, "fw"):
		n = 2
	default:
		return 0
	}
	for n < len(s) && s[n] == ' ' {
		n++
	}
	n += subjectBlobLen(s[n:])
	if n < len(s) && s[n] == ':' {
		return n + 1
	}
	return 0
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// collationKey is s prepared for the i;unicode-casemap collation (RFC 5051) that RFC 5256
// asks SORT and THREAD to compare strings with: every character replaced by its titlecase,
// then decomposed (NFKD), so that keys compare as bytes. Bytes that are not UTF-8 count as
// U+FFFD, as RFC 5051 allows. Plain ASCII, the common case, only has its letters raised.
func collationKey(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	return norm.NFKD.String(strings.Map(unicode.ToTitle, strings.ToValidUTF8(s, "\uFFFD")))
}
