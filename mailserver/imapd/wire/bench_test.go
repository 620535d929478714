package wire

import (
	"strings"
	"testing"
)

// repeater serves the same command for ever, as a busy client would.
type repeater struct {
	data string
	off  int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func BenchmarkReadCommand(b *testing.B) {
	message := strings.Repeat("Subject: hello\r\nFrom: alice@example.com\r\n\r\nHello, Bob.\r\n", 40)
	for _, bc := range []struct{ name, line string }{
		{"fetch", "a1 UID FETCH 1:500,700:* (UID FLAGS RFC822.SIZE INTERNALDATE " +
			"BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)])\r\n"},
		{"search", "a2 UID SEARCH RETURN (MIN MAX COUNT) CHARSET UTF-8 UNDELETED SINCE 1-Dec-2026 " +
			"OR FROM \"alice@example.com\" TO \"bob@example.com\"\r\n"},
		{"append", "a3 APPEND INBOX (\\Seen $Forwarded) \"07-Dec-2026 10:00:00 +0000\" {" +
			itoa(len(message)) + "+}\r\n" + message + "\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReader(&repeater{data: bc.line}, nil, Limits{})
			r.SetAuthenticated(true)
			b.SetBytes(int64(len(bc.line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadCommand(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func itoa(n int) string { return Number(uint64(n)).Str }
