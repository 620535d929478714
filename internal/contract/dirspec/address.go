package dirspec

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// NormalizeAddress checks that s is an addr-spec kubemail can serve and returns the one form
// every lookup uses. Internationalised addresses (RFC 6530) are accepted:
//
//   - The local part is a dot-atom of at most 64 octets. ASCII characters follow RFC 5322's
//     atext; other characters may be letters, marks, digits, punctuation and symbols of any
//     script (RFC 6531's UTF8-non-ascii, without controls, spaces and unassigned code
//     points), plus the zero-width (non-)joiners some scripts need. It is brought to Unicode
//     NFC and lowercased (Unicode simple case mapping), so "JÖRG", "jörg" and a "jörg" typed
//     with a combining diaeresis are one address. There is no further folding: "ß" and "ss",
//     or "ﬁ" and "fi", stay different addresses, as in the mail systems of the large providers.
//   - The domain is a fully qualified name in ASCII, or in Unicode (U-labels), which is
//     converted to its A-labels (IDNA2008 with UTS #46 mapping, as for a DNS lookup). So
//     "jörg@bücher.example" and "jörg@xn--bcher-kva.example" are the same address, and the
//     result always carries the A-label form.
//
// Angle brackets around the address are accepted; the whole must be at most 254 octets.
func NormalizeAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	if len(s) > 254 {
		return "", errors.New("address longer than 254 octets")
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", errors.New("address has no @")
	}
	local, err := normalizeLocalPart(s[:at])
	if err != nil {
		return "", err
	}
	domain, err := NormalizeDomain(s[at+1:])
	if err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}

// IsASCII reports whether s has only ASCII characters: an address that is not needs SMTPUTF8
// in an SMTP envelope (RFC 6531).
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// NormalizeDomain returns a domain name in the form lookups use: lowercase A-labels. A name
// in Unicode is converted (IDNA2008, UTS #46 mapping); an ASCII name must be a valid host
// name, and its A-labels (xn--) must decode.
func NormalizeDomain(domain string) (string, error) {
	if domain == "" {
		return "", errors.New("empty domain")
	}
	if !IsASCII(domain) {
		if !utf8.ValidString(domain) {
			return "", errors.New("domain is not valid UTF-8")
		}
		a, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return "", fmt.Errorf("domain %q is not a valid internationalised domain name: %v", domain, err)
		}
		domain = a
	}
	domain = strings.ToLower(domain)
	if err := ValidateDomain(domain); err != nil {
		return "", err
	}
	for _, l := range strings.Split(domain, ".") {
		if strings.HasPrefix(l, "xn--") {
			if _, err := idna.Lookup.ToUnicode(l); err != nil {
				return "", fmt.Errorf("domain %q has the label %q, which is not a valid A-label", domain, l)
			}
		}
	}
	return domain, nil
}

// DomainToUnicode returns a domain for people to read: its A-labels as U-labels. A domain that
// does not convert is returned as it is.
func DomainToUnicode(domain string) string {
	u, err := idna.Display.ToUnicode(domain)
	if err != nil {
		return domain
	}
	return u
}

const atextSpecials = "!#$%&'*+-/=?^_`{|}~"

// normalizeLocalPart validates a dot-atom local part and returns it in NFC, lowercase.
func normalizeLocalPart(local string) (string, error) {
	if local == "" {
		return "", errors.New("empty local part")
	}
	if !IsASCII(local) {
		if !utf8.ValidString(local) {
			return "", errors.New("local part is not valid UTF-8")
		}
		local = norm.NFC.String(strings.ToLower(norm.NFC.String(local)))
	} else {
		local = strings.ToLower(local)
	}
	if len(local) > 64 {
		return "", errors.New("local part longer than 64 octets")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return "", errors.New("local part has a leading, trailing or doubled dot")
	}
	for _, r := range local {
		if r >= utf8.RuneSelf {
			if !localRune(r) {
				return "", fmt.Errorf("local part has the character %U, which is not allowed in an address", r)
			}
			continue
		}
		c := byte(r)
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || strings.IndexByte(atextSpecials, c) >= 0
		if !ok {
			return "", fmt.Errorf("local part has the character %q, which needs quoting", c)
		}
	}
	return local, nil
}

// localRune reports whether a non-ASCII character may appear in a local part.
func localRune(r rune) bool {
	if r == '\u200c' || r == '\u200d' { // ZWNJ, ZWJ: needed to spell words in some scripts
		return true
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// ValidateDomain checks a lowercase, fully qualified ASCII domain name (A-labels for an
// internationalised one) without a trailing dot.
func ValidateDomain(domain string) error {
	if domain == "" {
		return errors.New("empty domain")
	}
	if len(domain) > 253 {
		return errors.New("domain longer than 253 octets")
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return fmt.Errorf("domain %q is not fully qualified", domain)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("domain %q has an empty or over-long label", domain)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("domain %q has a label starting or ending with a hyphen", domain)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q has the character %q", domain, c)
			}
		}
	}
	if tld := labels[len(labels)-1]; tld[0] >= '0' && tld[0] <= '9' {
		return fmt.Errorf("domain %q ends in a numeric label", domain)
	}
	return nil
}
