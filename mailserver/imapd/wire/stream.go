package wire

import (
	"fmt"
	"io"
	"strconv"
)

// A response too large to build as Values (a FETCH that sends a whole message) is written in
// pieces: Begin, then Atom, Space, Open/Close, Value and LiteralFrom in the response's order,
// then End. Nothing is checked across pieces: the caller owns the response's syntax, the
// Writer only the encoding of each piece.

// Begin starts an untagged response: "* ".
func (w *Writer) Begin() { w.buf().WriteString("* ") }

// Raw writes text that is already valid IMAP syntax: atoms, numbers, spaces, parentheses.
func (w *Writer) Raw(s string) { w.buf().WriteString(s) }

// Value writes one value. A value no IMAP syntax can carry is an error and writes nothing.
func (w *Writer) Value(v Value) error {
	if err := checkValue(v); err != nil {
		return err
	}
	w.value(v)
	return nil
}

// LiteralFrom writes a literal of n bytes read from r: "{n}" CRLF and the data, binary as a
// literal8 "~{n}". The data is copied as it comes, so its size costs no memory; r must hold
// n bytes, or the response is broken beyond repair and the connection must close (the error
// says so).
func (w *Writer) LiteralFrom(r io.Reader, n int64, binary bool) error {
	if w.err != nil {
		return w.err
	}
	if binary {
		w.buf().WriteByte('~')
	}
	w.buf().WriteByte('{')
	w.buf().Write(strconv.AppendInt(w.numBuf(), n, 10))
	w.buf().WriteString("}\r\n")
	copied, err := io.CopyN(w.buf(), r, n)
	if err == nil && copied != n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		w.err = fmt.Errorf("literal of %d bytes ended after %d: %w", n, copied, err)
	}
	return w.err
}

// End ends the response with CRLF.
func (w *Writer) End() error { return w.end() }

// Err is the first write error: once set, the connection is gone.
func (w *Writer) Err() error { return w.err }
