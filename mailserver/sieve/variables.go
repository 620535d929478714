package sieve

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxVarSize bounds one variable's value, as Pigeonhole does, and maxExpanded any string
// after substitution, so that a script cannot grow a string without limit: a 1 MB script
// of "${a}" references would otherwise build gigabytes.
const (
	maxVarSize  = 4096
	maxExpanded = 64 << 10
)

// expand substitutes ${name} and ${N} when the script required variables.
func (r *run) expand(s string) string {
	if !r.s.exts["variables"] || !strings.Contains(s, "${") {
		return s
	}
	return truncate(replaceBraced(s, maxExpanded, r.lookup), maxExpanded)
}

// replaceBraced replaces each ${body} in s with what sub returns for body; a body sub refuses
// (ok false) stays as written. It stops substituting once the result passes limit bytes
// (0: no limit), leaving the caller to truncate.
func replaceBraced(s string, limit int, sub func(body string) (string, bool)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		val, ok := sub(s[i+2 : i+j])
		if !ok {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[i+j+1:]
		if limit > 0 && b.Len() > limit {
			return b.String()
		}
	}
	b.WriteString(s)
	return b.String()
}

// lookup resolves a variable reference; ok is false when name is not a valid reference,
// which RFC 5229 says must be left in the string as written.
func (r *run) lookup(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if n, err := strconv.Atoi(name); err == nil && allDigits(name) {
		if n < len(r.match) {
			return r.match[n], true
		}
		return "", true
	}
	if !validVarName(name) {
		return "", false
	}
	return r.vars[strings.ToLower(name)], true
}

func anyRef(in []string) bool {
	for _, s := range in {
		if strings.Contains(s, "${") {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (r *run) expandList(in []string) []string {
	if !r.s.exts["variables"] || !anyRef(in) {
		return in
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = r.expand(s)
	}
	return out
}

// set applies the modifiers in RFC 5229's order of precedence: case, first letter,
// quoting, then length.
func (r *run) set(a *resolved) error {
	name := strings.ToLower(a.pos[0].Strs[0])
	v := r.expand(a.pos[1].Strs[0])
	if _, ok := a.tags["lower"]; ok {
		v = strings.ToLower(v)
	}
	if _, ok := a.tags["upper"]; ok {
		v = strings.ToUpper(v)
	}
	if _, ok := a.tags["lowerfirst"]; ok {
		v = mapFirst(v, strings.ToLower)
	}
	if _, ok := a.tags["upperfirst"]; ok {
		v = mapFirst(v, strings.ToUpper)
	}
	if _, ok := a.tags["quotewildcard"]; ok {
		v = quoteWildcard(v)
	}
	if _, ok := a.tags["quoteregex"]; ok {
		v = quoteRegex(v)
	}
	if _, ok := a.tags["length"]; ok {
		v = strconv.Itoa(utf8.RuneCountInString(v))
	}
	r.vars[name] = truncate(v, maxVarSize)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func mapFirst(s string, f func(string) string) string {
	_, size := utf8.DecodeRuneInString(s)
	return f(s[:size]) + s[size:]
}

func quoteWildcard(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '*' || s[i] == '?' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func quoteRegex(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`\^$.[]|()?*+{}`, s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// decodeEncoded implements encoded-character (RFC 5228 section 2.4.2.4). A malformed
// sequence stays as written.
func decodeEncoded(s string) string {
	return replaceBraced(s, 0, decodeOne)
}

func decodeOne(body string) (string, bool) {
	colon := strings.IndexByte(body, ':')
	if colon < 0 {
		return "", false
	}
	kind := strings.ToLower(body[:colon])
	if kind != "hex" && kind != "unicode" {
		return "", false
	}
	var b strings.Builder
	for _, f := range strings.Fields(body[colon+1:]) {
		n, err := strconv.ParseUint(f, 16, 32)
		if err != nil || len(f) > 8 {
			return "", false
		}
		if kind == "hex" {
			if n > 0xff {
				return "", false
			}
			b.WriteByte(byte(n))
		} else {
			if (n >= 0xd800 && n <= 0xdfff) || n > 0x10ffff {
				return "", false
			}
			b.WriteRune(rune(n))
		}
	}
	return b.String(), true
}
