package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// readOne reads one command from input, returning what the reader wrote back to the client.
func readOne(t *testing.T, input string, lim Limits, auth bool) (*Command, error, string) {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out)
	r := NewReader(strings.NewReader(input), w, lim)
	r.SetAuthenticated(auth)
	cmd, err := r.ReadCommand()
	w.Flush()
	return cmd, err, out.String()
}

func atom(s string) Value    { return Value{Kind: KindAtom, Str: s} }
func quoted(s string) Value  { return Value{Kind: KindQuoted, Str: s} }
func lit(s string) Value     { return Value{Kind: KindLiteral, Lit: []byte(s)} }
func bin(s string) Value     { return Value{Kind: KindLiteral, Lit: []byte(s), Binary: true} }
func num(n uint64) Value     { return Number(n) }
func list(vs ...Value) Value { return List(vs...) }

const ready = "+ Ready for literal data\r\n"

var readCases = []struct {
	name, in string
	want     Command
	cont     string // continuation requests the reader must have sent
}{
	{"no args", "a1 NOOP\r\n", Command{"a1", "NOOP", nil}, ""},
	{"lower-case name, bare LF", "a1 noop\n", Command{"a1", "NOOP", nil}, ""},
	{"login", "a2 LOGIN alice \"pass word\"\r\n",
		Command{"a2", "LOGIN", []Value{atom("alice"), quoted("pass word")}}, ""},
	{"escapes", `a3 LOGIN "a\"b" "c\\d"` + "\r\n",
		Command{"a3", "LOGIN", []Value{quoted(`a"b`), quoted(`c\d`)}}, ""},
	{"empty quoted", "a4 LIST \"\" %\r\n",
		Command{"a4", "LIST", []Value{quoted(""), atom("%")}}, ""},
	{"utf-8 quoted", "a5 SELECT \"Données\"\r\n",
		Command{"a5", "SELECT", []Value{quoted("Données")}}, ""},
	{"sync literal", "a6 SELECT {5}\r\nINBOX\r\n",
		Command{"a6", "SELECT", []Value{lit("INBOX")}}, ready},
	{"two literals", "a7 LOGIN {1}\r\na {2}\r\nbc\r\n",
		Command{"a7", "LOGIN", []Value{lit("a"), lit("bc")}}, ready + ready},
	{"empty literal", "a8 LOGIN {0}\r\n x\r\n",
		Command{"a8", "LOGIN", []Value{lit(""), atom("x")}}, ready},
	{"non-sync literal", "a9 APPEND x (\\Seen) {3+}\r\nabc\r\n",
		Command{"a9", "APPEND", []Value{atom("x"), list(atom(`\Seen`)), lit("abc")}}, ""},
	{"binary literal", "b1 APPEND x ~{5}\r\na\x00b\nc\r\n",
		Command{"b1", "APPEND", []Value{atom("x"), bin("a\x00b\nc")}}, ready},
	{"binary non-sync", "b2 APPEND x ~{2+}\r\n\x00\x00\r\n",
		Command{"b2", "APPEND", []Value{atom("x"), bin("\x00\x00")}}, ""},
	{"fetch with section", "b3 FETCH 1:*,3 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM \"TO\")]<0.100>)\r\n",
		Command{"b3", "FETCH", []Value{atom("1:*,3"), list(atom("FLAGS"),
			atom(`BODY.PEEK[HEADER.FIELDS (FROM "TO")]<0.100>`))}}, ""},
	{"empty section", "b4 FETCH 7 BODY[]\r\n",
		Command{"b4", "FETCH", []Value{num(7), atom("BODY[]")}}, ""},
	{"uid search", "b5 UID SEARCH CHARSET UTF-8 OR (FROM x) (TO y) NOT ((DELETED))\r\n",
		Command{"b5", "UID", []Value{atom("SEARCH"), atom("CHARSET"), atom("UTF-8"), atom("OR"),
			list(atom("FROM"), atom("x")), list(atom("TO"), atom("y")), atom("NOT"),
			list(list(atom("DELETED")))}}, ""},
	{"store flags", "b6 STORE 1 +FLAGS.SILENT (\\Seen $Junk \\*)\r\n",
		Command{"b6", "STORE", []Value{num(1), atom("+FLAGS.SILENT"),
			list(atom(`\Seen`), atom("$Junk"), atom(`\*`))}}, ""},
	{"NIL in any case", "b7 ID NIL nil\r\n",
		Command{"b7", "ID", []Value{{Kind: KindNIL, Str: "NIL"}, {Kind: KindNIL, Str: "nil"}}}, ""},
	{"numbers", "b8 X 0 4294967296 18446744073709551615 18446744073709551616 007\r\n",
		Command{"b8", "X", []Value{num(0), num(4294967296), num(18446744073709551615),
			atom("18446744073709551616"), {Kind: KindNumber, Str: "007", Num: 7}}}, ""},
	{"empty and nested lists", "b9 X () (()) (a (b (c)))\r\n",
		Command{"b9", "X", []Value{list(), list(list()),
			list(atom("a"), list(atom("b"), list(atom("c"))))}}, ""},
	{"tag with ]", "c]1 NOOP\r\n", Command{"c]1", "NOOP", nil}, ""},
	{"tilde atom", "c2 X ~abc\r\n", Command{"c2", "X", []Value{atom("~abc")}}, ""},
	{"UTF-8 atom, as Python's imaplib sends names", "c5 CREATE Entw\xc3\xbcrfe\r\n",
		Command{"c5", "CREATE", []Value{atom("Entwürfe")}}, ""},
	{"list then literal", "c3 X (a) {1}\r\nz\r\n",
		Command{"c3", "X", []Value{list(atom("a")), lit("z")}}, ready},
	{"literal in list", "c4 ID (\"name\" {3}\r\nabc)\r\n",
		Command{"c4", "ID", []Value{list(quoted("name"), lit("abc"))}}, ready},
}

func TestReadCommand(t *testing.T) {
	for _, tc := range readCases {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err, out := readOne(t, tc.in, Limits{}, false)
			if err != nil {
				t.Fatalf("ReadCommand(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(*cmd, tc.want) {
				t.Errorf("ReadCommand(%q)\n got %#v\nwant %#v", tc.in, *cmd, tc.want)
			}
			if out != tc.cont {
				t.Errorf("sent %q to the client, want %q", out, tc.cont)
			}
		})
	}
}

// next is a well-formed command after each bad one: the reader must find it.
const next = "z9 NOOP\r\n"

var errorCases = []struct {
	name, in string
	kind     error
	tag      string
}{
	{"empty line", "\r\n", ErrSyntax, ""},
	{"no space after tag", "a1\r\n", ErrSyntax, "a1"},
	{"bad tag", "+ NOOP\r\n", ErrSyntax, ""},
	{"no name", "a1 \r\n", ErrSyntax, "a1"},
	{"trailing space", "a1 NOOP \r\n", ErrSyntax, "a1"},
	{"double space", "a1 X a  b\r\n", ErrSyntax, "a1"},
	{"unterminated quote", "a1 X \"abc\r\n", ErrSyntax, "a1"},
	{"bad escape", "a1 X \"a\\nb\"\r\n", ErrSyntax, "a1"},
	{"NUL in quoted", "a1 X \"a\x00b\"\r\n", ErrNUL, "a1"},
	{"invalid UTF-8 in quoted", "a1 X \"\xff\xfe\"\r\n", ErrInvalidUTF8, "a1"},
	{"truncated UTF-8 in quoted", "a1 X \"caf\xc3\"\r\n", ErrInvalidUTF8, "a1"},
	{"8-bit atom, not UTF-8", "a1 X caf\xc3 x\r\n", ErrInvalidUTF8, "a1"},
	{"unclosed list", "a1 X (a b\r\n", ErrSyntax, "a1"},
	{"stray paren", "a1 X a)\r\n", ErrSyntax, "a1"},
	{"literal without size", "a1 X {abc}\r\n", ErrSyntax, "a1"},
	{"text after literal size", "a1 X {3}x\r\n", ErrSyntax, "a1"},
	{"CR alone", "a1 X\rY\r\n", ErrSyntax, "a1"},
	{"NUL in literal", "a1 X {3}\r\na\x00c\r\n", ErrNUL, "a1"},
	{"unterminated section", "a1 FETCH 1 BODY[1\r\n", ErrSyntax, "a1"},
	{"literal in section", "a1 FETCH 1 BODY[{3}]\r\n", ErrSyntax, "a1"},
	{"skipped non-sync literal", "a1 X \"\x00 {5+}\r\nhello and more\r\n", ErrNUL, "a1"},
}

func TestReadCommandErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in+next), nil, Limits{})
			_, err := r.ReadCommand()
			checkError(t, err, tc.kind, tc.tag, false)
			checkNext(t, r)
		})
	}
}

func checkError(t *testing.T, err error, kind error, tag string, fatal bool) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want an *Error", err)
	}
	if !errors.Is(err, kind) || e.Tag != tag || e.Fatal != fatal {
		t.Fatalf("got %v (tag %q, fatal %v), want %v (tag %q, fatal %v)", err, e.Tag, e.Fatal, kind, tag, fatal)
	}
	return e
}

// checkNext asserts that the reader resynchronised on the command after a rejected one.
func checkNext(t *testing.T, r *Reader) {
	t.Helper()
	cmd, err := r.ReadCommand()
	if err != nil || cmd.Tag != "z9" || cmd.Name != "NOOP" {
		t.Fatalf("after the error, read %+v, %v; want z9 NOOP", cmd, err)
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("at the end, got %v, want io.EOF", err)
	}
}

func TestReadCommandEOF(t *testing.T) {
	for in, want := range map[string]error{
		"":                   io.EOF,
		"a1 NOOP":            io.ErrUnexpectedEOF,
		"a1 X {5}\r\nab":     io.ErrUnexpectedEOF,
		"a1 X \"ab":          io.ErrUnexpectedEOF,
		"a1 X {5+}\r\nab":    io.ErrUnexpectedEOF,
		"a1 X \x00 {5+}\r\n": io.ErrUnexpectedEOF, // while skipping the literal
	} {
		r := NewReader(strings.NewReader(in), nil, Limits{})
		if _, err := r.ReadCommand(); err != want {
			t.Errorf("ReadCommand(%q) = %v, want %v", in, err, want)
		}
	}
}

func TestReadLine(t *testing.T) {
	in := "dGVzdA==\r\nDONE\n" + strings.Repeat("A", 200) + "\r\n*\r\n\r\n" + next
	r := NewReader(strings.NewReader(in), nil, Limits{MaxLine: 100})
	for _, want := range []string{"dGVzdA==", "DONE", "(too long)", "*", ""} {
		got, err := r.ReadLine()
		if want == "(too long)" {
			checkError(t, err, ErrLineTooLong, "", false)
			continue
		}
		if err != nil || got != want {
			t.Fatalf("ReadLine() = %q, %v; want %q", got, err, want)
		}
	}
	checkNext(t, r)
}

// TestBufferedShowsPipelinedPlaintext: a command pipelined after STARTTLS is visible in
// Buffered, so the server can refuse the switch instead of running it under TLS.
func TestBufferedShowsPipelinedPlaintext(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"a1 STARTTLS\r\n", 0},
		{"a1 STARTTLS\r\na2 LOGIN alice secret\r\n", len("a2 LOGIN alice secret\r\n")},
	} {
		r := NewReader(strings.NewReader(tc.in), nil, Limits{})
		cmd, err := r.ReadCommand()
		if err != nil || cmd.Name != "STARTTLS" {
			t.Fatalf("%q: read %+v, %v", tc.in, cmd, err)
		}
		if got := r.Buffered(); got != tc.want {
			t.Errorf("%q: Buffered() = %d after STARTTLS, want %d", tc.in, got, tc.want)
		}
	}
}
