package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// errUnskippable: the rest of a rejected command holds a literal too large to read and discard.
var errUnskippable = errors.New("literal too large to skip")

// literalChunk bounds how far a literal's buffer runs ahead of the bytes actually received.
const literalChunk = 64 << 10

// readLiteral reads {n}, {n+} or, after '~', a literal8, once the limits and AcceptLiteral
// agree: nothing of the literal is read before, so a 4 GiB announcement costs nothing.
func (r *Reader) readLiteral(binary bool) (Value, error) {
	n, nonSync, err := r.readAnnouncement()
	if err != nil {
		return Value{}, err
	}
	if err := r.admit(n, nonSync, binary); err != nil {
		return Value{}, err
	}
	if !nonSync && r.w != nil {
		if err := r.w.Continue("Ready for literal data"); err != nil {
			return Value{}, err
		}
		if err := r.w.Flush(); err != nil {
			return Value{}, err
		}
	}
	data, err := r.readN(n)
	if err != nil {
		return Value{}, err
	}
	if !binary && bytes.IndexByte(data, 0) >= 0 {
		return Value{}, r.errorf(ErrNUL, "in a literal; send it as a binary literal ~{n}")
	}
	return Value{Kind: KindLiteral, Lit: data, Binary: binary}, nil
}

// readAnnouncement reads "{" number ["+"] "}" CRLF. A number too large for 63 bits is kept as
// the largest one, which every limit refuses.
func (r *Reader) readAnnouncement() (n int64, nonSync bool, err error) {
	r.next() // the '{' seen by readValue
	digits := 0
	for {
		c, err := r.peek()
		if err != nil {
			return 0, false, err
		}
		if c < '0' || c > '9' {
			break
		}
		r.next()
		digits++
		n = saturatedDigit(n, c)
	}
	if c, _ := r.peek(); c == '+' {
		r.next()
		nonSync = true
	}
	if digits == 0 {
		return 0, false, r.errorf(ErrSyntax, "literal without a size")
	}
	if err := r.expect('}', "'}' closing the literal's size"); err != nil {
		return 0, false, err
	}
	return n, nonSync, r.readEOL()
}

func saturatedDigit(n int64, c byte) int64 {
	d := int64(c - '0')
	if n > (math.MaxInt64-d)/10 {
		return math.MaxInt64
	}
	return n*10 + d
}

// admit decides on a literal whose announcement has been read. Refusing a synchronising
// literal ends the command (the client waits for a continuation that will not come); a
// non-synchronising one is on its way and must be read and dropped, or the connection closed.
func (r *Reader) admit(n int64, nonSync, binary bool) error {
	limit := r.literalLimit()
	if nonSync && r.lim.NonSyncMax > 0 && n > r.lim.NonSyncMax {
		e := r.errorf(ErrLiteralTooLarge, "non-synchronising literal of %d bytes, LITERAL- allows %d", n, r.lim.NonSyncMax)
		e.Status = "BAD" // RFC 7888 section 4
		return r.drop(e, n, limit)
	}
	if room := min(limit, r.literalRoom()); n > room {
		e := r.errorf(ErrLiteralTooLarge, "literal of %d bytes, at most %d allowed", n, room)
		if nonSync {
			e.Status = "BAD"
			return r.drop(e, n, limit)
		}
		e.resynced = true
		return e
	}
	if r.AcceptLiteral != nil {
		if err := r.AcceptLiteral(r.name, n, binary); err != nil {
			e := r.refused(err)
			if nonSync {
				return r.drop(e, n, limit)
			}
			e.resynced = true
			return e
		}
	}
	r.literals += n
	return nil
}

func (r *Reader) refused(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		e := *ce
		e.Tag, e.Fatal, e.resynced = r.tag, false, false
		if e.Err == nil {
			e.Err = ErrLiteralRefused
		}
		if e.Status == "" {
			e.Status = NO
		}
		return &e
	}
	return &Error{Tag: r.tag, Status: "NO", Err: fmt.Errorf("%w: %w", ErrLiteralRefused, err)}
}

// drop reads and discards a refused non-synchronising literal when it is small enough.
func (r *Reader) drop(e *Error, n, limit int64) error {
	if n > limit {
		e.Fatal = true
		return e
	}
	if _, err := r.br.Discard(int(n)); err != nil {
		return unexpectedEOF(err)
	}
	return e
}

// readN reads a literal's data, growing the buffer as the bytes arrive rather than trusting
// the announced size.
func (r *Reader) readN(n int64) ([]byte, error) {
	buf := make([]byte, 0, min(n, literalChunk))
	for int64(len(buf)) < n {
		want := int(min(n-int64(len(buf)), literalChunk))
		buf = slices.Grow(buf, want)
		got, err := io.ReadFull(r.br, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+got]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return buf, nil
}

// skipCommand discards the rest of a rejected command: to the end of its line and through any
// non-synchronising literal that line announces, with the lines that follow it.
func (r *Reader) skipCommand() error {
	for {
		tail, err := r.skipLine()
		if err != nil {
			return err
		}
		n, nonSync, ok := trailingLiteral(tail)
		if !ok || !nonSync {
			return nil // a synchronising literal waits for a continuation it will not get
		}
		if n > r.literalLimit() {
			return errUnskippable
		}
		if _, err := r.br.Discard(int(n)); err != nil {
			return unexpectedEOF(err)
		}
	}
}

// skipLine discards through the next LF and returns the last bytes before it.
func (r *Reader) skipLine() ([]byte, error) {
	var tail []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(chunk) >= 32 {
			chunk = chunk[len(chunk)-32:]
			tail = tail[:0]
		}
		tail = append(tail, chunk...)
		if len(tail) > 32 {
			tail = append(tail[:0], tail[len(tail)-32:]...)
		}
		if err == nil {
			return bytes.TrimSuffix(bytes.TrimSuffix(tail, []byte("\n")), []byte("\r")), nil
		}
		if err != bufio.ErrBufferFull {
			return nil, unexpectedEOF(err)
		}
	}
}

// trailingLiteral recognises a literal announcement {n} or {n+} at the end of a line.
func trailingLiteral(line []byte) (n int64, nonSync, ok bool) {
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false, false
	}
	line = line[:len(line)-1]
	if nonSync = bytes.HasSuffix(line, []byte("+")); nonSync {
		line = line[:len(line)-1]
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 || i == len(line)-1 || !isDigits(string(line[i+1:])) {
		return 0, false, false
	}
	for _, c := range line[i+1:] {
		n = saturatedDigit(n, c)
	}
	return n, nonSync, true
}
