package store

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Standard folders every mailbox has, with their RFC 6154 special-use attributes.
var standardFolders = []struct{ Name, SpecialUse string }{
	{"INBOX", ""},
	{"Sent", `\Sent`},
	{"Drafts", `\Drafts`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

// Delimiter separates levels of folder names ("Archive/2026").
const Delimiter = '/'

// ErrBadFolderName is returned for names that could escape the mailbox or that no client could
// display.
var ErrBadFolderName = errors.New("invalid folder name")

// ValidateFolderName refuses names that are empty, too long, not UTF-8, contain control
// characters, or have empty, "." or ".." levels (which could escape the mailbox's directory on
// some systems and confuse every client).
func ValidateFolderName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("%w: must be 1 to 512 bytes", ErrBadFolderName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: not valid UTF-8", ErrBadFolderName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: contains a control character", ErrBadFolderName)
		}
	}
	for _, level := range strings.Split(name, string(Delimiter)) {
		switch level {
		case "":
			return fmt.Errorf("%w: empty level (leading, trailing or doubled %q)", ErrBadFolderName, Delimiter)
		case ".", "..":
			return fmt.Errorf("%w: %q is not allowed as a level", ErrBadFolderName, level)
		}
	}
	return nil
}

// CanonicalFolderName returns name with INBOX in its canonical case: INBOX is case-insensitive
// (RFC 3501 §5.1), every other name is case-sensitive.
func CanonicalFolderName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX/") {
		return "INBOX" + name[5:]
	}
	return name
}

// encodeName turns a user-chosen name (an address or a folder name) into one safe directory
// entry: letters, digits and "-_+@" stay, everything else (including "/" and a leading ".")
// becomes %XX. Distinct names map to distinct entries.
func encodeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '+' || c == '@' || (c == '.' && i > 0)
		if safe {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// decodeName reverses encodeName.
func decodeName(enc string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if enc[i] != '%' {
			b.WriteByte(enc[i])
			continue
		}
		if i+2 >= len(enc) {
			return "", fmt.Errorf("bad escape in %q", enc)
		}
		var c byte
		if _, err := fmt.Sscanf(enc[i+1:i+3], "%02X", &c); err != nil {
			return "", fmt.Errorf("bad escape in %q", enc)
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}
