package directory

import (
	"errors"
	"fmt"
	"strings"
)

// NormalizeAddress checks that s is an addr-spec kubemail can serve (a dot-atom local part of
// at most 64 octets, a valid domain, at most 254 octets in all; angle brackets around it are
// accepted) and returns it in lowercase, the form every lookup uses.
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
	local, domain := s[:at], s[at+1:]
	if err := validateLocalPart(local); err != nil {
		return "", err
	}
	domain = strings.ToLower(domain)
	if err := ValidateDomain(domain); err != nil {
		return "", err
	}
	return strings.ToLower(local) + "@" + domain, nil
}

const atextSpecials = "!#$%&'*+-/=?^_`{|}~"

func validateLocalPart(local string) error {
	if local == "" {
		return errors.New("empty local part")
	}
	if len(local) > 64 {
		return errors.New("local part longer than 64 octets")
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return errors.New("local part has a leading, trailing or doubled dot")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' ||
			strings.IndexByte(atextSpecials, c) >= 0
		if !ok {
			return fmt.Errorf("local part has the character %q, which needs quoting", c)
		}
	}
	return nil
}

// ValidateDomain checks a lowercase, fully qualified domain name without a trailing dot.
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
