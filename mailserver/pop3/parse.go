package pop3

import (
	"errors"
	"math"
	"strings"
)

// Reasons parseCommand refuses a line. The session answers each with -ERR and goes on.
var (
	errEmptyLine  = errors.New("empty command line")
	errBadKeyword = errors.New("command keyword must be 3 or 4 letters or digits, starting with a letter")
	errControl    = errors.New("control character in command line")
)

// parseCommand splits a command line (without its line ending) into an upper-case keyword and
// its arguments. Keywords are 3 or 4 letters (RFC 1939), or letters and digits (UTF8). Arguments are separated by spaces;
// runs of spaces are tolerated. PASS is the exception: its argument is everything after the
// keyword and one space, because a password may contain spaces (RFC 1939 section 7). Control
// characters are refused anywhere: no command needs them, and a stray CR or NUL means a
// confused or hostile client.
func parseCommand(line string) (cmd string, args []string, err error) {
	if line == "" {
		return "", nil, errEmptyLine
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < ' ' || c == 0x7f {
			return "", nil, errControl
		}
	}
	keyword, rest, hasRest := strings.Cut(line, " ")
	if len(keyword) < 3 || len(keyword) > 4 {
		return "", nil, errBadKeyword
	}
	for i := 0; i < len(keyword); i++ {
		// Letters, and digits after the first (RFC 6856's UTF8).
		c := keyword[i]
		if l := c | 0x20; !(l >= 'a' && l <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return "", nil, errBadKeyword
		}
	}
	cmd = strings.ToUpper(keyword)
	if !hasRest {
		return cmd, nil, nil
	}
	if cmd == "PASS" {
		if rest == "" {
			return cmd, nil, nil
		}
		return cmd, []string{rest}, nil
	}
	for _, a := range strings.Split(rest, " ") {
		if a != "" {
			args = append(args, a)
		}
	}
	return cmd, args, nil
}

// parseNumber reads an unsigned decimal argument (a message number or a line count). Values too
// large for any maildrop saturate at math.MaxInt32 rather than fail, so "TOP 1 99999999999"
// means "the whole body".
func parseNumber(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < math.MaxInt32 {
			n = min(n*10+int(c-'0'), math.MaxInt32)
		}
	}
	return n, true
}
