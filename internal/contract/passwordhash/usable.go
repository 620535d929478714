package passwordhash

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Unusable says what makes a password unusable, or "" when it is fine; the operator refuses
// such a password in a Secret and `kubectl mail passwd` refuses to write one. Control
// characters are refused because no mail client can type them: a NUL or a trailing newline (as
// `echo pw > file` leaves) is a mistake, and logging in would fail without saying why.
func Unusable(pw []byte) string {
	switch {
	case len(pw) == 0:
		return "is empty"
	case !utf8.Valid(pw):
		return "is not valid UTF-8"
	}
	for _, r := range string(pw) {
		if unicode.IsControl(r) {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}
