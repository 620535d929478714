package imapd

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 5.1.3) is how IMAP4rev1 clients spell folder names outside ASCII:
// printable ASCII stands for itself, "&" is written "&-", and anything else is UTF-16 in a
// base64 variant (",", not "/", no padding) between "&" and "-".

const utf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

// utf7Values maps a byte to its 6-bit value in utf7Alphabet, or 0xff.
var utf7Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(utf7Alphabet); i++ {
		t[utf7Alphabet[i]] = byte(i)
	}
	return t
}()

func isPrintableASCII(r rune) bool { return r >= 0x20 && r <= 0x7e }

// utf7Encode spells a UTF-8 folder name in modified UTF-7. Invalid UTF-8 cannot come from our
// store; it is encoded as U+FFFD rather than passed through unreadable.
func utf7Encode(s string) string {
	var b strings.Builder
	var units []uint16
	flush := func() {
		if units != nil {
			b.WriteByte('&')
			b.WriteString(utf7Base64(units))
			b.WriteByte('-')
			units = nil
		}
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case isPrintableASCII(r):
			flush()
			b.WriteRune(r)
		default:
			units = utf16.AppendRune(units, r)
		}
	}
	flush()
	return b.String()
}

// utf7Base64 writes UTF-16BE code units in the modified base64, zero-filling the last sextet.
func utf7Base64(units []uint16) string {
	var b strings.Builder
	var acc uint32
	bits := 0
	for _, u := range units {
		acc = acc<<16 | uint32(u)
		bits += 16
		for bits >= 6 {
			bits -= 6
			b.WriteByte(utf7Alphabet[(acc>>bits)&0x3f])
		}
	}
	if bits > 0 {
		b.WriteByte(utf7Alphabet[(acc<<(6-bits))&0x3f])
	}
	return b.String()
}

var errUTF7 = errors.New("invalid modified UTF-7")

// utf7Decode reads a modified UTF-7 folder name. Only the one spelling utf7Encode produces is
// accepted, so that two spellings cannot name the same folder (RFC 3501 5.1.3 forbids the
// others). Raw UTF-8 is let through: IMAP4rev1 clients send it although they should not, and
// the library this replaced accepted it.
func utf7Decode(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errors.New("invalid UTF-8")
	}
	var b strings.Builder
	afterShift := false // a segment just ended: another one right away is not the shortest form
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", errUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			afterShift = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New(`invalid modified UTF-7: "&" without its closing "-"`)
		}
		seg := s[i+1 : i+1+end]
		i += end + 2
		if seg == "" {
			b.WriteByte('&')
			afterShift = false
			continue
		}
		if afterShift {
			return "", errors.New("invalid modified UTF-7: two encoded runs in a row")
		}
		text, err := utf7DecodeRun(seg)
		if err != nil {
			return "", err
		}
		b.WriteString(text)
		afterShift = true
	}
	return b.String(), nil
}

// utf7DecodeRun decodes the base64 between "&" and "-".
func utf7DecodeRun(seg string) (string, error) {
	var units []uint16
	var acc uint32
	bits := 0
	for i := 0; i < len(seg); i++ {
		v := utf7Values[seg[i]]
		if v == 0xff {
			return "", errors.New("invalid modified UTF-7: " + quoteByte(seg[i]) + " in an encoded run")
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 16 {
			bits -= 16
			units = append(units, uint16(acc>>bits))
			acc &= 1<<bits - 1
		}
	}
	// Leftover bits are padding: fewer than six, all zero, else the run is not the shortest.
	if bits >= 6 || acc != 0 {
		return "", errors.New("invalid modified UTF-7: the encoded run does not end on a character")
	}
	var b strings.Builder
	for i := 0; i < len(units); i++ {
		r := rune(units[i])
		if utf16.IsSurrogate(r) {
			if i+1 == len(units) {
				return "", errors.New("invalid modified UTF-7: unpaired UTF-16 surrogate")
			}
			if r = utf16.DecodeRune(r, rune(units[i+1])); r == utf8.RuneError {
				return "", errors.New("invalid modified UTF-7: unpaired UTF-16 surrogate")
			}
			i++
		}
		if isPrintableASCII(r) {
			return "", errors.New("invalid modified UTF-7: printable ASCII must not be encoded")
		}
		b.WriteRune(r)
	}
	return b.String(), nil
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return `"` + string(rune(c)) + `"`
	}
	return "a non-printable byte"
}
