package sieve

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// relation returns the test a relational match applies to a comparison result, or nil.
func relation(rel string) func(int) bool {
	switch strings.ToLower(rel) {
	case "gt":
		return func(c int) bool { return c > 0 }
	case "ge":
		return func(c int) bool { return c >= 0 }
	case "lt":
		return func(c int) bool { return c < 0 }
	case "le":
		return func(c int) bool { return c <= 0 }
	case "eq":
		return func(c int) bool { return c == 0 }
	case "ne":
		return func(c int) bool { return c != 0 }
	}
	return nil
}

type comparator string

func (r *resolved) comparator() comparator {
	if c, ok := r.tags["comparator"]; ok {
		return comparator(c.Strs[0])
	}
	return "i;ascii-casemap"
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

// compareFold orders two strings as if ASCII-lowercased, without copying them.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if x, y := lowerByte(a[i]), lowerByte(b[i]); x != y {
			return int(x) - int(y)
		}
	}
	return len(a) - len(b)
}

// containsFold is strings.Contains ignoring ASCII case; it runs on every body and header
// a script tests, so it does not copy them.
func containsFold(s, sub string, w *budget) bool {
	if sub == "" {
		return true
	}
	if !w.spend(len(s) / 8) {
		return false
	}
	lo, up := lowerByte(sub[0]), sub[0]
	if lo >= 'a' && lo <= 'z' {
		up = lo - 'a' + 'A'
	}
	last := len(s) - len(sub) // the last offset where sub still fits
	nextLo, nextUp := indexFrom(s, lo, 0, last), indexFrom(s, up, 0, last)
	for nextLo >= 0 || nextUp >= 0 {
		i := nextLo
		if i < 0 || (nextUp >= 0 && nextUp < i) {
			i = nextUp
		}
		if !w.spend(len(sub)) {
			return false
		}
		if compareFold(s[i:i+len(sub)], sub) == 0 {
			return true
		}
		if i == nextLo {
			nextLo = indexFrom(s, lo, i+1, last)
		}
		if i == nextUp {
			nextUp = indexFrom(s, up, i+1, last)
		}
	}
	return false
}

// indexFrom finds c in s at an offset from start to last inclusive, or returns -1.
func indexFrom(s string, c byte, start, last int) int {
	if start > last {
		return -1
	}
	j := strings.IndexByte(s[start:last+1], c)
	if j < 0 {
		return -1
	}
	return start + j
}

// compare orders two strings the comparator's way (RFC 4790).
func (c comparator) compare(a, b string) int {
	switch c {
	case "i;octet":
		return strings.Compare(a, b)
	case "i;ascii-numeric":
		return compareNumeric(a, b)
	}
	return compareFold(a, b)
}

// compareNumeric compares the leading digits of each string as unbounded numbers; a string
// that does not start with a digit counts as positive infinity.
func compareNumeric(a, b string) int {
	da, db := leadingDigits(a), leadingDigits(b)
	switch {
	case da == "" && db == "":
		return 0
	case da == "":
		return 1
	case db == "":
		return -1
	}
	da, db = strings.TrimLeft(da, "0"), strings.TrimLeft(db, "0")
	if len(da) != len(db) {
		return len(da) - len(db)
	}
	return strings.Compare(da, db)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func (c comparator) fold(s string) string {
	if c == "i;ascii-casemap" {
		return asciiLower(s)
	}
	return s
}

// matchValues applies the test's match type to every value and key. A successful
// :matches or :regex sets the match variables ${0}, ${1}, ...
func (r *run) matchValues(t *testNode, values, keys []string) (bool, error) {
	cmp := t.comparator()
	if c, ok := t.tags["count"]; ok {
		n := 0
		for _, v := range values {
			if v != "" || t.Name != "string" {
				n++
			}
		}
		rel := relation(c.Strs[0])
		for _, k := range keys {
			if rel(cmp.compare(strconv.Itoa(n), k)) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, v := range values {
		for _, k := range keys {
			w := &budget{left: (r.s.limits.MaxSteps - r.steps) * 1024}
			start := w.left
			ok, err := r.matchOne(t, cmp, v, k, w)
			if err != nil {
				return false, err
			}
			if err := r.step(t.Pos, 1+(start-w.left)/1024); err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
	}
	return false, nil
}

// budget is the matching work a run may still do, counted in bytes compared: a key list
// over a large body, or a pathological pattern, costs what it really costs and ends at
// MaxSteps instead of running for minutes.
type budget struct{ left int }

// spend takes n units; false means the budget is gone and the match must give up.
func (w *budget) spend(n int) bool {
	w.left -= n
	return w.left >= 0
}

func (r *run) matchOne(t *testNode, cmp comparator, v, k string, w *budget) (bool, error) {
	switch {
	case has(t, "regex"):
		// RE2 runs in time linear in the value, with a factor that grows with the pattern.
		if !w.spend(len(v) * (1 + len(k)/64)) {
			return false, nil
		}
		return r.regexMatch(t, cmp, v, k)
	case has(t, "matches"):
		caps, ok := wildcard(cmp.fold(k), cmp.fold(v), v, w)
		if ok {
			r.setMatch(t, append([]string{v}, caps...))
		}
		return ok, nil
	}
	if !w.spend(len(v)) {
		return false, nil
	}
	switch {
	case has(t, "value"):
		return relation(t.tags["value"].Strs[0])(cmp.compare(v, k)), nil
	case has(t, "contains"):
		if cmp == "i;ascii-casemap" {
			return containsFold(v, k, w), nil
		}
		return strings.Contains(v, k), nil
	}
	return cmp.compare(v, k) == 0, nil
}

func has(t *testNode, tag string) bool {
	_, ok := t.tags[tag]
	return ok
}

func (r *run) setMatch(t *testNode, m []string) {
	// RFC 5173 section 6: the body test leaves the match variables alone.
	if r.s.exts["variables"] && t.Name != "body" {
		r.match = m
	}
}

func (r *run) regexMatch(t *testNode, cmp comparator, v, k string) (bool, error) {
	key := string(cmp) + "\x00" + k
	var re *regexp.Regexp
	if cached, ok := r.s.regexps.Load(key); ok {
		re = cached.(*regexp.Regexp)
	} else {
		src := k
		if cmp == "i;ascii-casemap" {
			src = "(?i)" + k
		}
		var err error
		if re, err = regexp.Compile(src); err != nil {
			return false, errorf(t.Pos, "bad regular expression %q: %v", k, err)
		}
		re.Longest() // POSIX leftmost-longest, as Pigeonhole's regcomp does
		if r.s.regexpCount.Add(1) <= maxCachedRegexps {
			r.s.regexps.Store(key, re)
		}
	}
	m := re.FindStringSubmatch(v)
	if m == nil {
		return false, nil
	}
	r.setMatch(t, m)
	return true, nil
}

// pattern element of a :matches key: a literal byte, '?' (one character) or '*'.
type globItem struct {
	lit  byte
	kind byte // 0 literal, '?', '*'
}

func compileGlob(p string) []globItem {
	var items []globItem
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 < len(p) {
				i++
			}
			items = append(items, globItem{lit: p[i]})
		case '*', '?':
			items = append(items, globItem{kind: p[i]})
		default:
			items = append(items, globItem{lit: p[i]})
		}
	}
	return items
}

// wildcard matches value (already folded) against pattern, returning what each '*' and
// '?' covered, taken from orig so that case is kept. Each '*' but the last takes as little
// as it can, which is what RFC 5229's examples show; fixed runs between stars are placed at
// their leftmost fit, which keeps the work linear in the value for each run.
func wildcard(pattern, value, orig string, w *budget) ([]string, bool) {
	if !w.spend(len(value)) {
		return nil, false
	}
	items := compileGlob(pattern)
	var segs [][]globItem
	start := 0
	for i, it := range items {
		if it.kind == '*' {
			segs = append(segs, items[start:i])
			start = i + 1
		}
	}
	segs = append(segs, items[start:])
	var caps []string
	end, segCaps, ok := segAt(segs[0], value, orig, 0, w)
	if !ok || (len(segs) == 1 && end != len(value)) {
		return nil, false
	}
	caps = append(caps, segCaps...)
	pos := end
	for i := 1; i < len(segs); i++ {
		last := i == len(segs)-1
		found := false
		for s := pos; s <= len(value); s++ {
			e, c, ok := segAt(segs[i], value, orig, s, w)
			if ok && (!last || e == len(value)) {
				caps = append(caps, orig[pos:s])
				caps = append(caps, c...)
				pos, found = e, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return caps, true
}

// segAt matches a run without stars at offset off; '?' takes one UTF-8 character.
func segAt(seg []globItem, value, orig string, off int, w *budget) (int, []string, bool) {
	if !w.spend(len(seg)) {
		return 0, nil, false
	}
	var caps []string
	for _, it := range seg {
		if off >= len(value) {
			return 0, nil, false
		}
		if it.kind == '?' {
			_, n := utf8.DecodeRuneInString(value[off:])
			caps = append(caps, orig[off:off+n])
			off += n
			continue
		}
		if value[off] != it.lit {
			return 0, nil, false
		}
		off++
	}
	return off, caps, true
}
