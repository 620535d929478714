// Package srs implements the Sender Rewriting Scheme for forwarded mail, in the form libsrs2
// and postsrsd use: a forwarded message's envelope sender alice@a.example becomes
// SRS0=HHHH=TT=a.example=alice@<our domain>, so the destination checks SPF against us, and a
// bounce to that address is mapped back to alice@a.example. HHHH is a truncated HMAC-SHA1
// over the timestamp and the original address, so nobody can use us as a relay by inventing
// such addresses; TT is the day, in base32, so old addresses expire.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	hashLength = 4
	// base32 alphabet of the timestamp (RFC 4648, as libsrs2 uses it).
	stampAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	stampCycle    = 1024 // days; the timestamp is the day number modulo this
)

// Errors of Reverse for addresses that look like ours but are not valid.
var (
	ErrBadHash = errors.New("SRS address with a wrong hash")
	ErrExpired = errors.New("SRS address has expired")
	ErrInvalid = errors.New("malformed SRS address")
)

// SRS rewrites and reverses addresses of one domain.
type SRS struct {
	domain  string
	secrets [][]byte
	// MaxAge is how long a rewritten address is accepted for bounces (21 days).
	MaxAge time.Duration
	now    func() time.Time
}

// New returns an SRS for domain. The first secret signs new addresses; all of them are
// accepted when reversing, so a secret can be replaced without breaking bounces in flight.
func New(domain string, secrets []string) (*SRS, error) {
	s := &SRS{domain: strings.ToLower(domain), MaxAge: 21 * 24 * time.Hour, now: time.Now}
	for _, sec := range secrets {
		if sec = strings.TrimSpace(sec); sec != "" {
			s.secrets = append(s.secrets, []byte(sec))
		}
	}
	if len(s.secrets) == 0 {
		return nil, errors.New("SRS needs at least one secret")
	}
	if len(s.secrets[0]) < 16 {
		return nil, errors.New("SRS secret is too short (16 characters at least)")
	}
	return s, nil
}

// Domain is the domain of rewritten addresses.
func (s *SRS) Domain() string { return s.domain }

func (s *SRS) hash(secret []byte, parts ...string) string {
	mac := hmac.New(sha1.New, secret)
	for _, p := range parts {
		mac.Write([]byte(strings.ToLower(p)))
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))[:hashLength]
}

func (s *SRS) checkHash(got string, parts ...string) bool {
	for _, sec := range s.secrets {
		// Some MTAs lowercase local parts; compare as libsrs2 does, without case.
		if strings.EqualFold(got, s.hash(sec, parts...)) {
			return true
		}
	}
	return false
}

func (s *SRS) stamp() string {
	day := int(s.now().Unix()/86400) % stampCycle
	return string([]byte{stampAlphabet[day>>5&31], stampAlphabet[day&31]})
}

func (s *SRS) checkStamp(stamp string) error {
	if len(stamp) != 2 {
		return ErrInvalid
	}
	var v int
	for _, c := range strings.ToUpper(stamp) {
		i := strings.IndexRune(stampAlphabet, c)
		if i < 0 {
			return ErrInvalid
		}
		v = v<<5 | i
	}
	today := int(s.now().Unix()/86400) % stampCycle
	age := (today - v + stampCycle) % stampCycle
	if time.Duration(age)*24*time.Hour > s.MaxAge {
		return ErrExpired
	}
	return nil
}

// Forward rewrites an envelope sender. An address that is already SRS0 or SRS1 of another
// forwarder becomes SRS1, keeping the first forwarder so a bounce goes back there directly.
func (s *SRS) Forward(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("cannot rewrite %q: not an address", addr)
	}
	local, host := addr[:at], addr[at+1:]
	if strings.EqualFold(host, s.domain) {
		return addr, nil // already ours
	}
	sec := s.secrets[0]
	if tag, rest, ok := srsTag(local); ok {
		var firstHost, user string
		if tag == "SRS0" {
			// SRS1=HHHH=host==HHHH=TT=orighost=origuser
			firstHost, user = host, rest
		} else {
			// Already SRS1: keep its first hop.
			parts := strings.SplitN(rest[1:], "=", 3)
			if len(parts) < 3 || !strings.HasPrefix(parts[2], "=") {
				return "", fmt.Errorf("cannot rewrite %q: %w", addr, ErrInvalid)
			}
			firstHost, user = parts[1], parts[2]
		}
		return "SRS1=" + s.hash(sec, firstHost, user) + "=" + firstHost + "=" + user + "@" + s.domain, nil
	}
	stamp := s.stamp()
	return "SRS0=" + s.hash(sec, stamp, host, local) + "=" + stamp + "=" + host + "=" + local + "@" + s.domain, nil
}

// srsTag recognizes SRS0 and SRS1 local parts and returns the rest from the separator on.
func srsTag(local string) (tag, rest string, ok bool) {
	if len(local) < 5 {
		return "", "", false
	}
	tag = strings.ToUpper(local[:4])
	if (tag != "SRS0" && tag != "SRS1") || !strings.ContainsRune("=+-", rune(local[4])) {
		return "", "", false
	}
	return tag, "=" + local[5:], true
}

// Reverse maps an address of our SRS domain back to where bounces to it go. ok is false when
// addr is not an SRS address of ours; err is set when it is one but invalid or expired.
func (s *SRS) Reverse(addr string) (orig string, ok bool, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || !strings.EqualFold(addr[at+1:], s.domain) {
		return "", false, nil
	}
	tag, rest, isSRS := srsTag(addr[:at])
	if !isSRS {
		return "", false, nil
	}
	switch tag {
	case "SRS0":
		// =HHHH=TT=host=user (the user may itself contain '=')
		parts := strings.SplitN(rest[1:], "=", 4)
		if len(parts) != 4 || parts[2] == "" || parts[3] == "" {
			return "", true, ErrInvalid
		}
		hash, stamp, host, user := parts[0], parts[1], parts[2], parts[3]
		if !s.checkHash(hash, stamp, host, user) {
			return "", true, ErrBadHash
		}
		if err := s.checkStamp(stamp); err != nil {
			return "", true, err
		}
		return user + "@" + host, true, nil
	default:
		// =HHHH=host==rest: back to the first forwarder's SRS0 address.
		parts := strings.SplitN(rest[1:], "=", 3)
		if len(parts) != 3 || parts[1] == "" || !strings.HasPrefix(parts[2], "=") {
			return "", true, ErrInvalid
		}
		hash, host, user := parts[0], parts[1], parts[2]
		if !s.checkHash(hash, host, user) {
			return "", true, ErrBadHash
		}
		return "SRS0" + user + "@" + host, true, nil
	}
}
