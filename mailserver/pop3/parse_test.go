package pop3

import (
	"bufio"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		line string
		cmd  string
		args []string
		err  error
	}{
		{line: "STAT", cmd: "STAT"},
		{line: "stat", cmd: "STAT"},
		{line: "Top 1 10", cmd: "TOP", args: []string{"1", "10"}},
		{line: "LIST  2 ", cmd: "LIST", args: []string{"2"}},
		{line: "USER alice@example.com", cmd: "USER", args: []string{"alice@example.com"}},
		// Passwords keep their spaces, even leading and trailing ones.
		{line: "PASS two words ", cmd: "PASS", args: []string{"two words "}},
		{line: "PASS  lead", cmd: "PASS", args: []string{" lead"}},
		{line: "PASS", cmd: "PASS"},
		{line: "PASS ", cmd: "PASS"},
		{line: "PASS pässwörd", cmd: "PASS", args: []string{"pässwörd"}},
		{line: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", cmd: "AUTH", args: []string{"PLAIN", "AGFsaWNlAHNlY3JldA=="}},
		{line: "", err: errEmptyLine},
		{line: " STAT", err: errBadKeyword},
		{line: "ST", err: errBadKeyword},
		{line: "STATS", err: errBadKeyword},
		{line: "4TAT", err: errBadKeyword},
		{line: "utf8", cmd: "UTF8"},
		{line: "RETR\t1", err: errControl},
		{line: "RETR 1\r", err: errControl},
		{line: "PASS a\x00b", err: errControl},
		{line: "NOOP\x7f", err: errControl},
		{line: "\xff\xfe\xfd", err: errBadKeyword},
	} {
		cmd, args, err := parseCommand(tc.line)
		if !errors.Is(err, tc.err) || cmd != tc.cmd || !slices.Equal(args, tc.args) {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q, %v", tc.line, cmd, args, err, tc.cmd, tc.args, tc.err)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		okay bool
	}{
		{"1", 1, true},
		{"007", 7, true},
		{"0", 0, true},
		{"2147483647", 2147483647, true},
		{"99999999999999999999", 2147483647, true},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1a", 0, false},
		{"1.0", 0, false},
	} {
		if n, ok := parseNumber(tc.in); n != tc.n || ok != tc.okay {
			t.Errorf("parseNumber(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.okay)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"STAT", "top 1 10", "PASS  a b ", "AUTH PLAIN =", "", " ", "RETR\x001",
		"USER \xff", "LIST 1 2 3 4 5", "X", "CAPA\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, args, err := parseCommand(line)
		if err != nil {
			if cmd != "" || args != nil {
				t.Fatalf("error %v with results %q %q", err, cmd, args)
			}
			return
		}
		if len(cmd) < 3 || len(cmd) > 4 || strings.ToUpper(cmd) != cmd || !strings.EqualFold(line[:len(cmd)], cmd) {
			t.Fatalf("keyword %q from %q", cmd, line)
		}
		for _, a := range args {
			if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("argument %q from %q", a, line)
			}
			if cmd != "PASS" && strings.Contains(a, " ") {
				t.Fatalf("argument %q of %s contains a space", a, cmd)
			}
		}
		if cmd == "PASS" && len(args) == 1 && "PASS "+args[0] != strings.ToUpper(line[:4])+line[4:] {
			t.Fatalf("PASS argument %q does not keep the rest of %q", args[0], line)
		}
		if cmd != "PASS" && strings.Join(append([]string{cmd}, args...), " ") != strings.Join(strings.FieldsFunc(strings.ToUpper(line[:len(cmd)])+line[len(cmd):], func(r rune) bool { return r == ' ' }), " ") {
			t.Fatalf("arguments %q lose text of %q", args, line)
		}
	})
}

func TestWriteMessage(t *testing.T) {
	long := strings.Repeat("x", 40000) + ".not at line start"
	for _, tc := range []struct {
		name  string
		msg   string
		lines int
		want  string
	}{
		{"plain", "A: b\r\n\r\nbody\r\n", -1, "A: b\r\n\r\nbody\r\n.\r\n"},
		{"dots", "A: b\r\n\r\n.x\r\n..y\r\n.\r\nz\r\n", -1, "A: b\r\n\r\n..x\r\n...y\r\n..\r\nz\r\n.\r\n"},
		{"no final line ending", "A: b\r\n\r\nbody", -1, "A: b\r\n\r\nbody\r\n.\r\n"},
		{"final lone dot without line ending", "A: b\r\n\r\n.", -1, "A: b\r\n\r\n..\r\n.\r\n"},
		{"empty", "", -1, ".\r\n"},
		{"top 0", "A: b\r\nC: d\r\n\r\n1\r\n2\r\n", 0, "A: b\r\nC: d\r\n\r\n.\r\n"},
		{"top 1 with dot", "A: b\r\n\r\n.1\r\n2\r\n", 1, "A: b\r\n\r\n..1\r\n.\r\n"},
		{"top beyond body", "A: b\r\n\r\n1\r\n2", 5, "A: b\r\n\r\n1\r\n2\r\n.\r\n"},
		{"top without body", "A: b\r\n", 2, "A: b\r\n.\r\n"},
		{"line longer than the read buffer", "A: b\r\n\r\n" + long + "\r\n.end\r\n", -1, "A: b\r\n\r\n" + long + "\r\n..end\r\n.\r\n"},
		{"top counts a long line once", "A: b\r\n\r\n" + long + "\r\nsecond\r\n", 1, "A: b\r\n\r\n" + long + "\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			w := bufio.NewWriter(&b)
			n, err := writeMessage(w, strings.NewReader(tc.msg), tc.lines)
			if err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
			if n != int64(len(tc.want)) {
				t.Errorf("counted %d octets, wrote %d", n, len(tc.want))
			}
		})
	}
}
