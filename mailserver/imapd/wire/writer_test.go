package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var valueCases = []struct {
	name string
	v    Value
	utf8 bool
	want string
}{
	{"atom", Atom("FLAGS"), false, "FLAGS"},
	{"flag", Atom(`\Seen`), false, `\Seen`},
	{"fetch item", Atom("BODY[HEADER.FIELDS (FROM)]"), false, "BODY[HEADER.FIELDS (FROM)]"},
	{"number", Number(4294967296), false, "4294967296"},
	{"NIL", NIL(), false, "NIL"},
	{"quoted", String("INBOX"), false, `"INBOX"`},
	{"empty", String(""), false, `""`},
	{"escapes", String(`a"b\c`), false, `"a\"b\\c"`},
	{"CRLF goes literal", String("a\r\nb"), false, "{4}\r\na\r\nb"},
	{"tab goes literal", String("a\tb"), false, "{3}\r\na\tb"},
	{"UTF-8 without UTF8=ACCEPT", String("é"), false, "{2}\r\né"},
	{"UTF-8 with UTF8=ACCEPT", String("é"), true, `"é"`},
	{"8-bit, not UTF-8", String("\xe9t\xe9"), true, "{3}\r\n\xe9t\xe9"},
	{"long goes literal", String(strings.Repeat("a", 1025)), false, "{1025}\r\n" + strings.Repeat("a", 1025)},
	{"literal", Literal([]byte("x")), false, "{1}\r\nx"},
	{"binary", Binary([]byte("a\x00b")), false, "~{3}\r\na\x00b"},
	{"empty list", List(), false, "()"},
	{"nested list", List(Atom("a"), List(Number(1), NIL()), String("b c")), false, `(a (1 NIL) "b c")`},
}

func TestWriteValues(t *testing.T) {
	for _, tc := range valueCases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out)
			w.UTF8 = tc.utf8
			if err := w.Untagged(tc.v); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if want := "* " + tc.want + "\r\n"; out.String() != want {
				t.Errorf("wrote %q, want %q", out.String(), want)
			}
		})
	}
}

func TestWriteRefusesUnencodable(t *testing.T) {
	for name, v := range map[string]Value{
		"NUL in string":  String("a\x00b"),
		"NUL in literal": Literal([]byte("a\x00b")),
		"CRLF in atom":   Atom("a\r\nb"),
		"empty atom":     Atom(""),
		"zero value":     {},
		"deep in a list": List(Atom("a"), List(String("\x00"))),
	} {
		var out bytes.Buffer
		w := NewWriter(&out)
		err := w.Untagged(Number(1), Atom("FETCH"), v)
		w.Flush()
		if !errors.Is(err, ErrUnencodable) || out.Len() != 0 {
			t.Errorf("%s: got %v and wrote %q, want ErrUnencodable and nothing written", name, err, out.String())
		}
		if err := w.Untagged(Atom("OK")); err != nil {
			t.Errorf("%s: the writer is unusable after a refused response: %v", name, err)
		}
	}
}

func TestWriteResponses(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	w.Tagged("a1", NO, "TOOBIG", nil, "literal too large")
	w.Tagged("a2", OK, "UIDVALIDITY", []Value{Number(5)}, "UIDs valid")
	w.UntaggedStatus(OK, "PERMANENTFLAGS", []Value{List(Atom(`\Seen`), Atom(`\*`))}, "Limited")
	w.Tagged("a3", NO, "AUTHENTICATIONFAILED", nil, "")
	w.Tagged("a4", BAD, "", nil, "[not a code]\r\n* injected")
	w.Untagged(Number(1), Atom("FETCH"), List(Atom("UID"), Number(7), Atom("BODY[]"), Literal([]byte("hi"))))
	w.Continue("")
	w.Tagged("a5", OK, "", nil, "Données")
	if err := w.Tagged("a6", OK, "X]\r\n", nil, "t"); !errors.Is(err, ErrUnencodable) {
		t.Errorf("a response code with CRLF: got %v, want ErrUnencodable", err)
	}
	if out.Len() != 0 {
		t.Fatalf("wrote %q before Flush", out.String())
	}
	w.Flush()
	want := "a1 NO [TOOBIG] literal too large\r\n" +
		"a2 OK [UIDVALIDITY 5] UIDs valid\r\n" +
		"* OK [PERMANENTFLAGS (\\Seen \\*)] Limited\r\n" +
		"a3 NO [AUTHENTICATIONFAILED] NO\r\n" +
		"a4 BAD  [not a code]  * injected\r\n" +
		"* 1 FETCH (UID 7 BODY[] {2}\r\nhi)\r\n" +
		"+ \r\n" +
		"a5 OK Donn??es\r\n"
	if out.String() != want {
		t.Errorf("wrote\n%q\nwant\n%q", out.String(), want)
	}
}

func TestWriteReaderError(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	r := NewReader(strings.NewReader("\r\na1 LOGIN {9000+}\r\n"), w, Limits{})
	for range 2 {
		_, err := r.ReadCommand()
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("got %v, want an *Error", err)
		}
		w.Error(e)
	}
	w.Flush()
	want := "* BAD syntax error: a command starts with a tag\r\n" +
		"a1 BAD [TOOBIG] literal too large: literal of 9000 bytes, at most 8192 allowed\r\n" +
		"* BYE cannot read past the rejected command\r\n"
	if out.String() != want {
		t.Errorf("wrote\n%q\nwant\n%q", out.String(), want)
	}
}

// TestRoundTrip encodes values as a command's arguments and reads them back: what a proxy
// forwards must mean what the client sent.
func TestRoundTrip(t *testing.T) {
	for _, utf8 := range []bool{false, true} {
		for _, tc := range valueCases {
			checkRoundTrip(t, []Value{tc.v}, utf8)
		}
		for _, tc := range readCases {
			checkRoundTrip(t, tc.want.Args, utf8)
		}
	}
}

func checkRoundTrip(t *testing.T, args []Value, utf8 bool) {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out)
	w.UTF8 = utf8
	if err := w.Command("t1", "X", args...); err != nil {
		t.Fatalf("Command(%v): %v", args, err)
	}
	w.Flush()
	r := NewReader(&out, nil, Limits{})
	r.SetAuthenticated(true)
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("reading back %q: %v", out.String(), err)
	}
	if got, want := normal(cmd.Args), normal(args); got != want {
		t.Errorf("round trip (UTF8 %v):\n got %s\nwant %s", utf8, got, want)
	}
}

// normal describes values by meaning: a string is a string whether quoted or a literal.
func normal(vs []Value) string {
	var b strings.Builder
	for _, v := range vs {
		switch v.Kind {
		case KindQuoted:
			b.WriteString("s:" + v.Str)
		case KindLiteral:
			if v.Binary {
				b.WriteString("b:")
			} else {
				b.WriteString("s:")
			}
			b.Write(v.Lit)
		case KindNIL:
			b.WriteString("NIL")
		case KindList:
			b.WriteString("(" + normal(v.List) + ")")
		default:
			b.WriteString(v.Kind.String() + ":" + v.Str)
		}
		b.WriteByte(' ')
	}
	return b.String()
}

func TestWriterStreamedResponse(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Begin()
	w.Raw("1 FETCH (UID 7 BODY[] ")
	if err := w.LiteralFrom(strings.NewReader("Hi\r\n"), 4, false); err != nil {
		t.Fatal(err)
	}
	w.Raw(" X ")
	if err := w.Value(String("a\"b")); err != nil {
		t.Fatal(err)
	}
	w.Raw(")")
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got, want := buf.String(), "* 1 FETCH (UID 7 BODY[] {4}\r\nHi\r\n X \"a\\\"b\")\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := w.Value(Literal([]byte{0})); !errors.Is(err, ErrUnencodable) {
		t.Errorf("NUL in a literal: err = %v, want ErrUnencodable", err)
	}
}

func TestWriterShortLiteralBreaksTheWriter(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.LiteralFrom(strings.NewReader("abc"), 10, false); err == nil {
		t.Fatal("a literal shorter than announced was written without error")
	}
	if w.Err() == nil || w.Flush() == nil {
		t.Error("the writer goes on after a broken literal")
	}
}

func TestWriterTightList(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	addr := List(NIL(), NIL(), String("a"), String("b"))
	w.Untagged(TightList([]Value{addr, addr}), TightList([]Value{List(Atom("x")), List(Atom("y"))}, String("mixed")), TightList(nil, Atom("z")))
	w.Flush()
	want := "* ((NIL NIL \"a\" \"b\")(NIL NIL \"a\" \"b\")) ((x)(y) \"mixed\") (z)\r\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestAString(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "Sent": "Sent", "a]b": "a]b", "": `""`, "nil": `"nil"`,
		"a b": `"a b"`, "50%": `"50%"`, "a*": `"a*"`, `q"`: `"q\""`, "(x)": `"(x)"`,
	} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.Untagged(AString(in))
		w.Flush()
		if got := strings.TrimSuffix(strings.TrimPrefix(buf.String(), "* "), "\r\n"); got != want {
			t.Errorf("AString(%q) = %s, want %s", in, got, want)
		}
	}
}

// flushRecorder is a writer that buffers, as a compressor does: what it was given reaches out
// only when flushed.
type flushRecorder struct {
	pending, out bytes.Buffer
	flushes      int
}

func (f *flushRecorder) Write(p []byte) (int, error) { return f.pending.Write(p) }

func (f *flushRecorder) Flush() error {
	f.flushes++
	_, err := f.pending.WriteTo(&f.out)
	return err
}

func TestWriterFlushesTheWriterBelow(t *testing.T) {
	below := &flushRecorder{}
	w := NewWriter(below)
	w.Tagged("a1", OK, "", nil, "done")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := below.out.String(); got != "a1 OK done\r\n" || below.flushes != 1 {
		t.Errorf("after Flush the client got %q (%d flushes below), want the response", got, below.flushes)
	}
}
