package wire

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// strictReader serves its data and fails the test if the reader asks for more: a refused
// literal must be refused before any byte of it is read.
type strictReader struct {
	t    *testing.T
	data string
}

func (s *strictReader) Read(p []byte) (int, error) {
	if s.data == "" {
		s.t.Errorf("read past the %q the client had sent", "announcement")
		return 0, errors.New("read past the announcement")
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestLineTooLong(t *testing.T) {
	in := "a1 X " + strings.Repeat("a", 200) + "\r\n" + next
	r := NewReader(strings.NewReader(in), nil, Limits{MaxLine: 100})
	_, err := r.ReadCommand()
	checkError(t, err, ErrLineTooLong, "a1", false)
	checkNext(t, r)
}

func TestLineLimitCountsLinesButNotLiterals(t *testing.T) {
	in := "a1 X {60}\r\n" + strings.Repeat("b", 60) + " " + strings.Repeat("c", 95) + "\r\n" + next
	r := NewReader(strings.NewReader(in), nil, Limits{MaxLine: 100})
	_, err := r.ReadCommand()
	checkError(t, err, ErrLineTooLong, "a1", false)
	checkNext(t, r)

	in = "a1 X {200}\r\n" + strings.Repeat("b", 200) + "\r\n"
	r = NewReader(strings.NewReader(in), nil, Limits{MaxLine: 100})
	if _, err := r.ReadCommand(); err != nil {
		t.Fatalf("a literal longer than MaxLine: %v", err)
	}
}

func TestSyncLiteralTooLargeBeforeLogin(t *testing.T) {
	for _, size := range []string{"9000", "4294967296", "99999999999999999999999"} {
		t.Run(size, func(t *testing.T) {
			announce := "a1 LOGIN {" + size + "}\r\n"
			cmd, err, out := readOne(t, announce, Limits{}, false)
			if cmd != nil || out != "" {
				t.Fatalf("read %+v and sent %q, want a refusal without a continuation", cmd, out)
			}
			e := checkError(t, err, ErrLiteralTooLarge, "a1", false)
			if e.Status != NO || e.Code != "TOOBIG" {
				t.Errorf("answer %s [%s], want NO [TOOBIG]", e.Status, e.Code)
			}
			// Nothing past the announcement is read: the client waits for a continuation.
			r := NewReader(&strictReader{t: t, data: announce}, nil, Limits{})
			_, err = r.ReadCommand()
			checkError(t, err, ErrLiteralTooLarge, "a1", false)
		})
	}
}

func TestLiteralLimitAfterLogin(t *testing.T) {
	in := fmt.Sprintf("a1 APPEND x {9000}\r\n%s\r\n", strings.Repeat("m", 9000))
	cmd, err, out := readOne(t, in, Limits{}, true)
	if err != nil || len(cmd.Args[1].Lit) != 9000 || out != ready {
		t.Fatalf("9000-byte literal after login: %v, sent %q", err, out)
	}
	_, err, _ = readOne(t, "a1 APPEND x {2001}\r\n", Limits{MaxLiteral: 2000}, true)
	checkError(t, err, ErrLiteralTooLarge, "a1", false)
}

func TestNonSyncLiteralTooLargeCloses(t *testing.T) {
	for _, size := range []string{"9000", "4294967296"} {
		announce := "a1 LOGIN {" + size + "+}\r\n"
		r := NewReader(&strictReader{t: t, data: announce}, nil, Limits{})
		_, err := r.ReadCommand()
		e := checkError(t, err, ErrLiteralTooLarge, "a1", true)
		if e.Status != BAD || e.Code != "TOOBIG" {
			t.Errorf("answer %s [%s], want BAD [TOOBIG]", e.Status, e.Code)
		}
	}
}

func TestLiteralMinus(t *testing.T) {
	lim := Limits{NonSyncMax: LiteralMinusMax}
	ok := "a1 APPEND x {4096+}\r\n" + strings.Repeat("m", 4096) + "\r\n"
	if _, err, _ := readOne(t, ok, lim, true); err != nil {
		t.Fatalf("4096 bytes under LITERAL-: %v", err)
	}
	// Over 4096 but within the literal limit: BAD [TOOBIG], the literal is read and dropped.
	in := "a1 APPEND x {5000+}\r\n" + strings.Repeat("m", 5000) + " more\r\n" + next
	r := NewReader(strings.NewReader(in), nil, lim)
	r.SetAuthenticated(true)
	_, err := r.ReadCommand()
	e := checkError(t, err, ErrLiteralTooLarge, "a1", false)
	if e.Status != BAD || e.Code != "TOOBIG" {
		t.Errorf("answer %s [%s], want BAD [TOOBIG]", e.Status, e.Code)
	}
	checkNext(t, r)
	// Over the literal limit as well: the connection closes.
	r = NewReader(&strictReader{t: t, data: "a1 LOGIN {9000+}\r\n"}, nil, lim)
	_, err = r.ReadCommand()
	checkError(t, err, ErrLiteralTooLarge, "a1", true)
}

func TestNesting(t *testing.T) {
	ok := "a1 X " + strings.Repeat("(", 32) + strings.Repeat(")", 32) + "\r\n"
	if _, err, _ := readOne(t, ok, Limits{}, false); err != nil {
		t.Fatalf("32 levels: %v", err)
	}
	deep := "a1 X " + strings.Repeat("(", 33) + strings.Repeat(")", 33) + "\r\n" + next
	r := NewReader(strings.NewReader(deep), nil, Limits{})
	_, err := r.ReadCommand()
	checkError(t, err, ErrTooDeep, "a1", false)
	checkNext(t, r)
}

func TestTooManyArgs(t *testing.T) {
	lim := Limits{MaxArgs: 10}
	if _, err, _ := readOne(t, "a1 X 1 2 3 4 5 (6 7 8 9)\r\n", lim, false); err != nil {
		t.Fatalf("10 values: %v", err)
	}
	r := NewReader(strings.NewReader("a1 X 1 2 3 4 5 (6 7 8 9 10)\r\n"+next), nil, lim)
	_, err := r.ReadCommand()
	checkError(t, err, ErrTooManyArgs, "a1", false)
	checkNext(t, r)
}

func TestAcceptLiteral(t *testing.T) {
	overQuota := &Error{Status: NO, Code: "OVERQUOTA", Err: errors.New("mailbox full")}
	var asked []int64
	accept := func(name string, size int64, binary bool) error {
		if name != "APPEND" {
			t.Errorf("asked about a literal of command %q, want APPEND", name)
		}
		asked = append(asked, size)
		if size > 3 {
			return overQuota
		}
		return nil
	}
	in := "a1 APPEND x {3}\r\nabc\r\na2 APPEND x {4}\r\na3 APPEND x {4+}\r\nabcd\r\n" + next
	var out strings.Builder
	w := NewWriter(&out)
	r := NewReader(strings.NewReader(in), w, Limits{})
	r.AcceptLiteral = accept
	if _, err := r.ReadCommand(); err != nil {
		t.Fatalf("accepted literal: %v", err)
	}
	_, err := r.ReadCommand()
	if e := checkError(t, err, overQuota.Err, "a2", false); e.Code != "OVERQUOTA" {
		t.Errorf("code %q, want the OVERQUOTA AcceptLiteral gave", e.Code)
	}
	_, err = r.ReadCommand() // non-synchronising: read and dropped
	checkError(t, err, overQuota.Err, "a3", false)
	checkNext(t, r)
	w.Flush()
	if out.String() != ready || fmt.Sprint(asked) != "[3 4 4]" {
		t.Errorf("sent %q and asked about %v, want one continuation and [3 4 4]", out.String(), asked)
	}
}

func TestAcceptLiteralBareError(t *testing.T) {
	r := NewReader(strings.NewReader("a1 APPEND x {4}\r\n"+next), nil, Limits{})
	r.AcceptLiteral = func(string, int64, bool) error { return &Error{Code: "OVERQUOTA"} }
	_, err := r.ReadCommand()
	e := checkError(t, err, ErrLiteralRefused, "a1", false)
	if e.Status != NO || e.Code != "OVERQUOTA" || e.Text() == "" {
		t.Errorf("got %s [%s] %q, want NO [OVERQUOTA] and a text", e.Status, e.Code, e.Text())
	}
	checkNext(t, r)
}

func TestAcceptLiteralPlainError(t *testing.T) {
	r := NewReader(strings.NewReader("a1 APPEND x {4}\r\n"+next), nil, Limits{})
	r.AcceptLiteral = func(string, int64, bool) error { return io.ErrShortBuffer }
	_, err := r.ReadCommand()
	e := checkError(t, err, ErrLiteralRefused, "a1", false)
	if !errors.Is(err, io.ErrShortBuffer) || e.Status != NO {
		t.Errorf("got %v (%s), want NO wrapping the callback's error", err, e.Status)
	}
	checkNext(t, r)
}

func TestSkipThroughNonSyncLiteralOfBadCommand(t *testing.T) {
	in := "a1 X ( {5+}\r\n)))))\r\n" + next // the literal's bytes must not be read as a command
	r := NewReader(strings.NewReader(in), nil, Limits{MaxDepth: 1})
	_, err := r.ReadCommand()
	checkError(t, err, ErrSyntax, "a1", false)
	checkNext(t, r)

	r = NewReader(&strictReader{t: t, data: "a1 X \x00 {9000+}\r\n"}, nil, Limits{})
	_, err = r.ReadCommand()
	checkError(t, err, ErrSyntax, "a1", true)
}

// TestHostileInput sends what an attacker would, with the default limits: each command is
// refused with a clear answer, memory stays far below the input size, and the reader goes
// on to the next command.
func TestHostileInput(t *testing.T) {
	cases := []struct {
		name, in string
		kind     error
		fatal    bool
		budget   uint64 // bytes it may allocate; 512 KiB when zero
	}{
		{"1 MiB line", "a1 X " + strings.Repeat("x", 1<<20) + "\r\n", ErrLineTooLong, false, 0},
		{"half a million values", "a1 X" + strings.Repeat(" x", 1<<19) + "\r\n", ErrTooManyArgs, false,
			// MaxArgs values, their slice grown by append (1.25x a step: 5x in all).
			6 * 4096 * uint64(unsafe.Sizeof(Value{}))},
		{"10000 parentheses", "a1 X " + strings.Repeat("(", 10000) + "\r\n", ErrTooDeep, false, 0},
		{"4 GiB literal", "a1 LOGIN {4294967296}\r\n", ErrLiteralTooLarge, false, 0},
		{"4 GiB non-sync literal", "a1 LOGIN {4294967296+}\r\n", ErrLiteralTooLarge, true, 0},
		{"NULs", "a1 LOGIN \"\x00\x00\x00\" \x00\r\n", ErrNUL, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in + next
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := NewReader(strings.NewReader(in), nil, Limits{})
			_, err := r.ReadCommand()
			runtime.ReadMemStats(&after)
			checkError(t, err, tc.kind, "a1", tc.fatal)
			if !tc.fatal {
				checkNext(t, r)
			}
			if tc.budget == 0 {
				tc.budget = 512 << 10
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > tc.budget {
				t.Errorf("allocated %d bytes reading a %d-byte command", grew, len(tc.in))
			}
		})
	}
}

// TestManyValuesCostTheSame: memory is bounded by MaxArgs, not by how much the client sends.
func TestManyValuesCostTheSame(t *testing.T) {
	alloc := func(values int) uint64 {
		in := "a1 X" + strings.Repeat(" x", values) + "\r\n"
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewReader(strings.NewReader(in), nil, Limits{MaxLine: 16 << 20})
		_, err := r.ReadCommand()
		runtime.ReadMemStats(&after)
		checkError(t, err, ErrTooManyArgs, "a1", false)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(5000), alloc(4<<20)
	if large > small+64<<10 {
		t.Errorf("5000 values cost %d bytes, 4 million cost %d", small, large)
	}
}

// TestLiteralBufferFollowsData: an announced literal that never arrives costs what arrived.
func TestLiteralBufferFollowsData(t *testing.T) {
	in := "a1 APPEND x {60000000+}\r\n" + strings.Repeat("m", 1000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(strings.NewReader(in), nil, Limits{})
	r.SetAuthenticated(true)
	_, err := r.ReadCommand()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("allocated %d bytes for 1000 bytes of a 60 MB literal", grew)
	}
}

// TestCommandLiteralsTogether: many literals each under the limit cannot add up to more
// than the command's bound, since the reader holds the whole command.
func TestCommandLiteralsTogether(t *testing.T) {
	part := "{8000}\r\n" + strings.Repeat("p", 8000) + " "
	in := "a1 ID (" + strings.Repeat(part, 4) + "{8000}\r\n"
	_, err, out := readOne(t, in, Limits{}, false)
	if e := checkError(t, err, ErrLiteralTooLarge, "a1", false); e.Code != "TOOBIG" {
		t.Errorf("code %q, want TOOBIG", e.Code)
	}
	if want := strings.Repeat(ready, 4); out != want {
		t.Errorf("sent %q, want four continuations and no fifth", out)
	}

	lim := Limits{MaxLiteral: 100, MaxCommandLiterals: 250}
	msg := "{100+}\r\n" + strings.Repeat("m", 100)
	r := NewReader(strings.NewReader("a1 APPEND x "+msg+" "+msg+" "+msg+" y\r\n"+next), nil, lim)
	r.SetAuthenticated(true)
	_, err = r.ReadCommand()
	checkError(t, err, ErrLiteralTooLarge, "a1", false)
	checkNext(t, r)
}

// TestLineEndPastMaxLine: a literal's announcement that ends exactly at MaxLine is still
// seen, so its data is never read as commands.
func TestLineEndPastMaxLine(t *testing.T) {
	head := "a1 X {5+}"
	in := head + "\r\nhello)))\r\n" + next
	r := NewReader(strings.NewReader(in), nil, Limits{MaxLine: len(head)})
	_, err := r.ReadCommand()
	checkError(t, err, ErrLineTooLong, "a1", false)
	checkNext(t, r)
}

// TestIdleReaderIsSmall: one long command does not leave a large buffer behind on a
// connection that then sits in IDLE.
func TestIdleReaderIsSmall(t *testing.T) {
	in := "a1 SEARCH UID " + strings.Repeat("1,", 30000) + "1\r\nDONE\r\n"
	r := NewReader(strings.NewReader(in), nil, Limits{})
	if _, err := r.ReadCommand(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if c := cap(r.scratch); c > 1024 {
		t.Errorf("the reader keeps a %d-byte buffer after a long command", c)
	}
}
