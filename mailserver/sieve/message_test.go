package sieve

import (
	"reflect"
	"testing"
)

func TestParseMessage(t *testing.T) {
	cases := []struct {
		name, raw, header string
		want              []string
		body              string
	}{
		{"crlf", "Subject: a\r\n\r\nbody\r\n", "subject", []string{"a"}, "body\r\n"},
		{"bare lf", "Subject: a\nX: 1\n\nbody\n", "x", []string{"1"}, "body\n"},
		{"folded", "Subject: a\r\n  b\r\n\tc\r\n\r\n", "Subject", []string{"a  b\tc"}, ""},
		{"repeated in order", "X: 1\r\nY: 0\r\nx: 2\r\n\r\n", "X", []string{"1", "2"}, ""},
		{"no body", "Subject: a\r\n", "Subject", []string{"a"}, ""},
		{"empty value", "X:\r\n\r\n", "X", []string{""}, ""},
		{"no space after colon", "X:v\r\n\r\n", "X", []string{"v"}, ""},
		{"line without colon ends header", "X: 1\r\nnot a header\r\nY: 2\r\n\r\n", "Y", nil, "not a header\r\nY: 2\r\n\r\n"},
		{"missing", "X: 1\r\n\r\n", "Y", nil, ""},
		{"colon in value", "X: a: b\r\n\r\n", "X", []string{"a: b"}, ""},
	}
	for _, c := range cases {
		m := ParseMessage([]byte(c.raw))
		if got := m.Header(c.header); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Header(%q) = %q, want %q", c.name, c.header, got, c.want)
		}
		if string(m.Body()) != c.body {
			t.Errorf("%s: body %q, want %q", c.name, m.Body(), c.body)
		}
		if m.Size() != int64(len(c.raw)) {
			t.Errorf("%s: size %d", c.name, m.Size())
		}
	}
}

// TestParseMessageKeepsInput checks that unfolding works on a copy: the caller's buffer
// may be the stored message itself.
func TestParseMessageKeepsInput(t *testing.T) {
	raw := []byte("Subject: a\r\n b\r\nX: y\r\n\r\nbody")
	orig := string(raw)
	ParseMessage(raw).Header("Subject")
	if string(raw) != orig {
		t.Fatalf("input changed to %q", raw)
	}
}
