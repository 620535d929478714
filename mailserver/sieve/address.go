package sieve

import (
	"net/mail"
	"strings"
)

// addrParts is one address split the ways :localpart and :domain need.
type addrParts struct {
	all, local, domain string
	null               bool // the null reverse-path <>
	invalid            bool // not an address: only :all sees it, as the raw text
}

func splitAddr(a string) addrParts {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return addrParts{all: a, local: a}
	}
	return addrParts{all: a, local: a[:at], domain: a[at+1:]}
}

// parseAddresses reads an address-list header value. RFC 5228 section 2.7.4 says an
// invalid address must not match :localpart or :domain; like Pigeonhole, :all then sees
// the whole raw value.
func parseAddresses(v string) []addrParts {
	list, err := mail.ParseAddressList(v)
	if err != nil && strings.Contains(v, "(") {
		// net/mail refuses some places RFC 5322 allows comments in.
		list, err = mail.ParseAddressList(stripComments(v))
	}
	if err != nil {
		return []addrParts{{all: v, invalid: true}}
	}
	out := make([]addrParts, 0, len(list))
	for _, a := range list {
		out = append(out, splitAddr(a.Address))
	}
	return out
}

// redirectAddress reads the address of a redirect. Like Pigeonhole it accepts a display
// name or angle brackets around the address and keeps only the address.
func redirectAddress(s string) (string, bool) {
	a, err := mail.ParseAddress(strings.TrimSpace(s))
	if err != nil || !strings.Contains(a.Address, "@") {
		return "", false
	}
	return a.Address, true
}

// part returns the piece an address part tag selects; ok is false when :detail finds no
// separator, which makes the address not match (RFC 5233 section 4).
func part(t *testNode, a addrParts) (string, bool) {
	if a.null {
		return "", true
	}
	if a.invalid {
		return a.all, !has(t, "localpart") && !has(t, "domain") && !has(t, "user") && !has(t, "detail")
	}
	switch {
	case has(t, "localpart"):
		return a.local, true
	case has(t, "domain"):
		return a.domain, true
	case has(t, "user"):
		user, _, _ := strings.Cut(a.local, "+")
		return user, true
	case has(t, "detail"):
		_, detail, ok := strings.Cut(a.local, "+")
		return detail, ok
	}
	return a.all, true
}

// cachedAddresses parses each header value once per run; scripts test From and To often.
func (r *run) cachedAddresses(v string) []addrParts {
	key := "addr\x00" + v
	if a, ok := r.cache[key].([]addrParts); ok {
		return a
	}
	a := parseAddresses(v)
	r.cache[key] = a
	return a
}

func (r *run) addressValues(t *testNode) []string {
	var out []string
	for _, name := range r.expandList(t.pos[0].Strs) {
		for _, v := range r.indexed(t, r.msg.Header(name)) {
			for _, a := range r.cachedAddresses(v) {
				if p, ok := part(t, a); ok {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func (r *run) envelopeValues(t *testNode) []string {
	var out []string
	for _, name := range r.expandList(t.pos[0].Strs) {
		var a addrParts
		switch strings.ToLower(name) {
		case "from":
			a = splitAddr(r.env.From)
			a.null = r.env.From == ""
		case "to":
			a = splitAddr(r.env.To)
		case "auth":
			if r.env.Auth == "" {
				continue
			}
			a = splitAddr(r.env.Auth)
		default:
			continue
		}
		if p, ok := part(t, a); ok {
			out = append(out, p)
		}
	}
	return out
}

// stripComments removes RFC 5322 comments: parenthesised, nestable, outside quoted strings.
func stripComments(v string) string {
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v):
			if depth == 0 {
				b.WriteString(v[i : i+2])
			}
			i++
			continue
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
			continue
		case c == ')' && !quoted && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}
