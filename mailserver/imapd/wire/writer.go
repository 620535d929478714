package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Status of a tagged or untagged status response.
const (
	OK      = "OK"
	NO      = "NO"
	BAD     = "BAD"
	BYE     = "BYE"
	PREAUTH = "PREAUTH"
)

// ErrUnencodable is returned, before anything is written, for a response that no IMAP syntax
// can carry: NUL outside a binary literal, or CR, LF or NUL in an atom.
var ErrUnencodable = errors.New("value cannot be encoded")

// Writer encodes responses into a buffer sent on Flush. It is not safe for concurrent use:
// the session serialises its responses and the Reader's continuation requests.
type Writer struct {
	// UTF8 lets quoted strings carry UTF-8: set it for IMAP4rev2 sessions and once a client
	// has enabled UTF8=ACCEPT (RFC 6855); otherwise such strings go as literals.
	UTF8 bool
	// MaxQuoted is the longest string sent quoted; longer ones go as literals, which clients
	// read without scanning for escapes. Zero means 1024.
	MaxQuoted int
	// NonSyncLiterals makes Command send literals as {n+} (LITERAL+), for a client of a server
	// that announced it; otherwise Command's literals are synchronising.
	NonSyncLiterals bool

	dst io.Writer
	// bw buffers responses between two flushes; it comes from a pool at the first write and
	// goes back at the flush, so an idle session holds no buffer.
	bw *bufio.Writer
	// below is the writer under bw when it buffers too, as COMPRESS=DEFLATE's compressor does:
	// a response must reach the client, not wait there.
	below interface{ Flush() error }
	err   error // first write error: the connection is gone
	num   [20]byte
}

// NewWriter buffers responses for w. When w has a Flush method, Flush calls it too.
func NewWriter(w io.Writer) *Writer {
	below, _ := w.(interface{ Flush() error })
	return &Writer{dst: w, below: below}
}

var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// buf is the buffer of the responses being written.
func (w *Writer) buf() *bufio.Writer {
	if w.bw == nil {
		w.bw = writeBuffers.Get().(*bufio.Writer)
		w.buf().Reset(w.dst)
	}
	return w.bw
}

// Flush sends what is buffered.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.bw != nil {
		if w.err = w.buf().Flush(); w.err != nil {
			return w.err
		}
		w.buf().Reset(nil)
		writeBuffers.Put(w.bw)
		w.bw = nil
	}
	if w.below != nil {
		w.err = w.below.Flush()
	}
	return w.err
}

// Tagged writes the completion of a command: tag OK/NO/BAD [code] text. The code's arguments
// follow its name: Tagged(tag, OK, "UIDVALIDITY", []Value{Number(5)}, "UIDs valid") writes
// "tag OK [UIDVALIDITY 5] UIDs valid"; code is "" for none.
func (w *Writer) Tagged(tag, status string, code string, codeArgs []Value, text string) error {
	return w.status(tag, status, code, codeArgs, text)
}

// UntaggedStatus writes "* OK/NO/BAD/BYE/PREAUTH [code] text".
func (w *Writer) UntaggedStatus(status string, code string, codeArgs []Value, text string) error {
	return w.status("*", status, code, codeArgs, text)
}

// Untagged writes "* " and the values separated by spaces, as in
// Untagged(Number(3), Atom("EXISTS")).
func (w *Writer) Untagged(vals ...Value) error {
	if err := w.check(vals); err != nil {
		return err
	}
	w.buf().WriteString("* ")
	w.values(vals)
	return w.end()
}

// Continue writes a continuation request "+ text".
func (w *Writer) Continue(text string) error {
	w.buf().WriteString("+ ")
	w.text(text)
	return w.end()
}

// Command writes a command, for a client such as a proxy or a test. It does not wait for the
// continuation request of a synchronising literal: a client talking to a live server sets
// NonSyncLiterals or sends the parts itself.
func (w *Writer) Command(tag, name string, args ...Value) error {
	if err := w.check(args); err != nil {
		return err
	}
	w.buf().WriteString(tag)
	w.buf().WriteByte(' ')
	w.buf().WriteString(name)
	if len(args) > 0 {
		w.buf().WriteByte(' ')
		w.values(args)
	}
	return w.end()
}

// Error answers a command the Reader rejected, and says BYE when the connection must close.
func (w *Writer) Error(e *Error) error {
	tag := e.Tag
	if tag == "" {
		tag = "*"
	}
	status := e.Status
	if status == "" {
		status = BAD
	}
	if err := w.status(tag, status, e.Code, nil, e.Text()); err != nil {
		return err
	}
	if e.Fatal {
		return w.status("*", BYE, "", nil, "cannot read past the rejected command")
	}
	return nil
}

func (w *Writer) status(tag, status, code string, codeArgs []Value, text string) error {
	if err := w.check(codeArgs); err != nil {
		return err
	}
	if containsAny(code, "\r\n\x00]") {
		return errors.Join(ErrUnencodable, errors.New("response code "+strconv.Quote(code)))
	}
	w.buf().WriteString(tag)
	w.buf().WriteByte(' ')
	w.buf().WriteString(status)
	w.buf().WriteByte(' ')
	if code != "" {
		w.buf().WriteByte('[')
		w.buf().WriteString(code)
		if len(codeArgs) > 0 {
			w.buf().WriteByte(' ')
			w.values(codeArgs)
		}
		w.buf().WriteString("] ")
	} else if len(text) > 0 && text[0] == '[' {
		text = " " + text // text starting with '[' would read as a response code
	}
	if text == "" {
		text = status
	}
	w.text(text)
	return w.end()
}

// text writes human-readable text; line breaks and control bytes, which would end or corrupt
// the response, become spaces, and 8-bit bytes become '?' unless the session speaks UTF-8.
func (w *Writer) text(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f {
			c = ' '
		}
		if c >= 0x80 && !w.UTF8 {
			c = '?'
		}
		w.buf().WriteByte(c)
	}
}

func (w *Writer) end() error {
	if w.err != nil {
		return w.err
	}
	_, w.err = w.buf().WriteString("\r\n")
	return w.err
}

func (w *Writer) values(vals []Value) {
	for i, v := range vals {
		if i > 0 {
			w.buf().WriteByte(' ')
		}
		w.value(v)
	}
}

func (w *Writer) value(v Value) {
	switch v.Kind {
	case KindAtom:
		w.buf().WriteString(v.Str)
	case KindNumber:
		if isDigits(v.Str) {
			w.buf().WriteString(v.Str) // as read: a mailbox may be called 007
		} else {
			w.buf().Write(strconv.AppendUint(w.numBuf(), v.Num, 10))
		}
	case KindNIL:
		w.buf().WriteString("NIL")
	case KindQuoted:
		w.str(v.Str)
	case KindLiteral:
		w.literal(v.Lit, v.Binary)
	case KindList:
		w.buf().WriteByte('(')
		for i, m := range v.List {
			if i > 0 && i >= v.Tight {
				w.buf().WriteByte(' ')
			}
			w.value(m)
		}
		w.buf().WriteByte(')')
	}
}

func (w *Writer) numBuf() []byte { return w.num[:0] }

// str sends a string quoted when it can be and is short, else as a literal.
func (w *Writer) str(s string) {
	if !w.quotable(s) {
		w.literal([]byte(s), false)
		return
	}
	w.buf().WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.buf().WriteByte('\\')
		}
		w.buf().WriteByte(s[i])
	}
	w.buf().WriteByte('"')
}

func (w *Writer) quotable(s string) bool {
	max := w.MaxQuoted
	if max <= 0 {
		max = 1024
	}
	if len(s) > max {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f {
			return false
		}
		ascii = ascii && c < 0x80
	}
	return ascii || (w.UTF8 && utf8.ValidString(s))
}

func (w *Writer) literal(b []byte, binary bool) {
	if binary {
		w.buf().WriteByte('~')
	}
	w.buf().WriteByte('{')
	w.buf().Write(strconv.AppendInt(w.numBuf(), int64(len(b)), 10))
	if w.NonSyncLiterals {
		w.buf().WriteByte('+')
	}
	w.buf().WriteString("}\r\n")
	w.buf().Write(b)
}

// check refuses, before anything is buffered, a response that would be ambiguous on the wire.
func (w *Writer) check(vals []Value) error {
	for _, v := range vals {
		if err := checkValue(v); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v Value) error {
	switch v.Kind {
	case KindAtom:
		if v.Str == "" || containsAny(v.Str, "\r\n\x00") {
			return errors.Join(ErrUnencodable, errors.New("atom "+strconv.Quote(v.Str)))
		}
	case KindQuoted:
		if containsAny(v.Str, "\x00") {
			return errors.Join(ErrUnencodable, errors.New("NUL in a string"))
		}
	case KindLiteral:
		if !v.Binary && bytesContainNUL(v.Lit) {
			return errors.Join(ErrUnencodable, errors.New("NUL in a literal; send it as Binary"))
		}
	case KindList:
		for _, m := range v.List {
			if err := checkValue(m); err != nil {
				return err
			}
		}
	case KindNumber, KindNIL:
	default:
		return errors.Join(ErrUnencodable, errors.New("value of kind "+v.Kind.String()))
	}
	return nil
}

func containsAny(s, chars string) bool { return strings.ContainsAny(s, chars) }

func bytesContainNUL(b []byte) bool { return bytes.IndexByte(b, 0) >= 0 }
