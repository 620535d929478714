package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Command is one command as read from the client.
type Command struct {
	Tag  string
	Name string // upper-cased; UID FETCH reads as name UID with FETCH as first argument
	Args []Value
}

// Reader reads commands from one connection. It is not safe for concurrent use.
type Reader struct {
	// AcceptLiteral, when set, is asked about every literal the limits allow, before the
	// continuation request of a synchronising literal is sent, so the server can refuse one
	// it will not store (over quota, for example) without reading it. name is the command's
	// (as in Command.Name). An *Error it returns sets the answer's status and code; any other
	// error is answered NO.
	AcceptLiteral func(name string, size int64, binary bool) error

	br   *bufio.Reader
	w    *Writer
	lim  Limits
	auth bool

	// State of the command being read.
	tag      string
	name     string
	text     int   // bytes of command text consumed, literals excluded
	literals int64 // bytes of literals admitted
	nvalues  int
	scratch  []byte
}

// NewReader reads commands from r and sends continuation requests for synchronising literals
// to w (nil when nobody waits for them, as in a replayed transcript).
func NewReader(r io.Reader, w *Writer, lim Limits) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 512)
	}
	return &Reader{br: br, w: w, lim: lim.withDefaults()}
}

// SetAuthenticated switches the literal limit from MaxLiteralPreAuth to MaxLiteral.
func (r *Reader) SetAuthenticated(auth bool) { r.auth = auth }

// TakeBuffered returns the bytes read from the connection but not yet parsed, and forgets
// them: what a client pipelined behind a command, for whoever serves the connection next.
func (r *Reader) TakeBuffered() []byte {
	b, _ := r.br.Peek(r.br.Buffered())
	out := append([]byte(nil), b...)
	r.br.Discard(len(out))
	return out
}

// Buffered reports bytes read from the connection but not yet parsed. STARTTLS and COMPRESS
// must see zero, or a client could smuggle plaintext commands past the switch.
func (r *Reader) Buffered() int { return r.br.Buffered() }

func (r *Reader) literalLimit() int64 {
	if r.auth {
		return r.lim.MaxLiteral
	}
	return r.lim.MaxLiteralPreAuth
}

// literalRoom is what the current command's literals may still add up to.
func (r *Reader) literalRoom() int64 {
	if r.auth {
		return r.lim.MaxCommandLiterals - r.literals
	}
	return 4*r.lim.MaxLiteralPreAuth - r.literals
}

// ReadCommand reads the next command. It returns io.EOF when the client closed the
// connection between commands, an *Error for a command it could not accept (see Error for
// what the server must do), and any other error when the connection failed.
func (r *Reader) ReadCommand() (*Command, error) {
	r.tag, r.name, r.text, r.literals, r.nvalues = "", "", 0, 0, 0
	if _, err := r.br.Peek(1); err != nil {
		return nil, err
	}
	cmd, err := r.readCommand()
	r.releaseScratch()
	if err == nil {
		return cmd, nil
	}
	return nil, r.recover(err)
}

// releaseScratch lets a buffer grown by one long command go, so that an idle connection
// costs little.
func (r *Reader) releaseScratch() {
	if cap(r.scratch) > 1024 {
		r.scratch = nil
	}
}

// recover skips what is left of a rejected command so the next read starts on a new one.
func (r *Reader) recover(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	if e.Fatal || e.resynced {
		return e
	}
	if serr := r.skipCommand(); serr != nil {
		if !errors.Is(serr, errUnskippable) {
			return serr
		}
		e.Fatal = true
	}
	return e
}

func (r *Reader) readCommand() (*Command, error) {
	tag, err := r.readTag()
	if err != nil {
		return nil, err
	}
	r.tag = tag
	if err := r.expect(' ', "a space after the tag"); err != nil {
		return nil, err
	}
	name, err := r.readName()
	if err != nil {
		return nil, err
	}
	r.name = name
	args, err := r.readArgs()
	if err != nil {
		return nil, err
	}
	return &Command{Tag: tag, Name: name, Args: args}, nil
}

func (r *Reader) readTag() (string, error) {
	buf := r.scratch[:0]
	for {
		c, err := r.peek()
		if err != nil {
			return "", err
		}
		if !isTagChar(c) {
			break
		}
		if _, err := r.next(); err != nil {
			return "", err
		}
		buf = append(buf, c)
	}
	r.scratch = buf
	if len(buf) == 0 {
		return "", r.errorf(ErrSyntax, "a command starts with a tag")
	}
	return string(buf), nil
}

func (r *Reader) readName() (string, error) {
	c, err := r.peek()
	if err != nil {
		return "", err
	}
	if !isAtomChar(c) {
		return "", r.errorf(ErrSyntax, "missing command name")
	}
	v, err := r.readAtom()
	if err != nil {
		return "", err
	}
	return strings.ToUpper(v.Str), nil
}

func (r *Reader) readArgs() ([]Value, error) {
	var args []Value
	for {
		c, err := r.peek()
		if err != nil {
			return nil, err
		}
		if c == '\r' || c == '\n' {
			return args, r.readEOL()
		}
		if err := r.expect(' ', "a space or the end of the line"); err != nil {
			return nil, err
		}
		v, err := r.readValue(0)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
}

// ReadLine reads a line that is not a command, without its line end: a SASL response during
// AUTHENTICATE, or the DONE that ends IDLE. A line over MaxLine is skipped and reported as an
// *Error wrapping ErrLineTooLong.
func (r *Reader) ReadLine() (string, error) {
	r.tag, r.text, r.nvalues = "", 0, 0
	buf := r.scratch[:0]
	for {
		c, err := r.next()
		if err != nil {
			return "", r.recover(err)
		}
		if c == '\n' {
			break
		}
		buf = append(buf, c)
	}
	r.scratch = buf
	defer r.releaseScratch()
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}
