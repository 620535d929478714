package wire

import (
	"io"
	"strconv"
	"unicode/utf8"
)

// Character classes of RFC 9051 section 9. Arguments are read more loosely than ATOM-CHAR
// so that flags (\Seen), list wildcards (* %), sequence sets (1:*) and resp-specials (]) read
// as atoms; the caller checks each argument against what its command expects.
func isAtomChar(c byte) bool {
	return c > ' ' && c < 0x7f && !isAtomSpecial(c)
}

func isAtomSpecial(c byte) bool {
	switch c {
	case '(', ')', '{', '"', '%', '*', '\\', ']':
		return true
	}
	return false
}

// isArgChar admits 8-bit bytes too: Python's imaplib, once UTF-8 is enabled, sends a
// non-ASCII folder name as a bare atom, which servers accept; readAtom checks it is UTF-8.
func isArgChar(c byte) bool {
	return c > ' ' && c != 0x7f && c != '(' && c != ')' && c != '{' && c != '"'
}

func isTagChar(c byte) bool {
	return (isAtomChar(c) && c != '+') || c == ']'
}

// peek looks at the next byte of command text; it enforces MaxLine too, so that a byte it
// returned can always be consumed.
func (r *Reader) peek() (byte, error) {
	if r.text >= r.lim.MaxLine {
		return 0, r.errorf(ErrLineTooLong, "more than %d bytes", r.lim.MaxLine)
	}
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, unexpectedEOF(err)
	}
	return b[0], nil
}

// next consumes one byte of command text, counting it against MaxLine.
func (r *Reader) next() (byte, error) {
	if r.text >= r.lim.MaxLine {
		return 0, r.errorf(ErrLineTooLong, "more than %d bytes", r.lim.MaxLine)
	}
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, unexpectedEOF(err)
	}
	r.text++
	return c, nil
}

// run consumes the longest run of already buffered bytes that ok accepts, within MaxLine,
// appending them to buf: an atom or string costs one scan instead of two calls a byte.
func (r *Reader) run(buf []byte, ok func(byte) bool) []byte {
	avail := min(r.br.Buffered(), r.lim.MaxLine-r.text)
	if avail <= 0 {
		return buf
	}
	b, _ := r.br.Peek(avail)
	i := 0
	for i < len(b) && ok(b[i]) {
		i++
	}
	buf = append(buf, b[:i]...)
	r.br.Discard(i)
	r.text += i
	return buf
}

func isPlainAtomChar(c byte) bool { return isArgChar(c) && c != '[' }

func isPlainSectionChar(c byte) bool {
	return c >= ' ' && c < 0x7f && c != '"' && c != ']' && c != '{'
}

func isPlainQuotedChar(c byte) bool {
	return c != '"' && c != '\\' && c != '\r' && c != '\n' && c != 0
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) expect(want byte, what string) error {
	c, err := r.peek()
	if err != nil {
		return err
	}
	if c != want {
		return r.errorf(ErrSyntax, "expected %s, found %q", what, c)
	}
	_, err = r.next()
	return err
}

// readEOL consumes the end of a line; a bare LF is accepted as people type commands by hand.
// The line end is not counted against MaxLine: refusing it after a literal's announcement
// would leave the announcement unseen by skipCommand, and the literal read as commands.
func (r *Reader) readEOL() error {
	c, err := r.br.ReadByte()
	if err != nil {
		return unexpectedEOF(err)
	}
	switch c {
	case '\n':
		return nil
	case '\r':
		if c, err = r.br.ReadByte(); err != nil {
			return unexpectedEOF(err)
		}
		if c == '\n' {
			return nil
		}
		r.br.UnreadByte() // for skipCommand, which looks for the LF
		return r.errorf(ErrSyntax, "CR without LF")
	}
	return r.errorf(ErrSyntax, "expected the end of the line, found %q", c)
}

func (r *Reader) readValue(depth int) (Value, error) {
	if r.nvalues++; r.nvalues > r.lim.MaxArgs {
		return Value{}, r.errorf(ErrTooManyArgs, "more than %d values", r.lim.MaxArgs)
	}
	c, err := r.peek()
	if err != nil {
		return Value{}, err
	}
	switch {
	case c == '(':
		return r.readList(depth + 1)
	case c == '"':
		return r.readQuoted()
	case c == '{':
		return r.readLiteral(false)
	case c == '~':
		if b, err := r.br.Peek(2); err == nil && b[1] == '{' {
			r.next()
			return r.readLiteral(true)
		}
	}
	if !isArgChar(c) {
		return Value{}, r.errorf(ErrSyntax, "unexpected %q", c)
	}
	return r.readAtom()
}

func (r *Reader) readList(depth int) (Value, error) {
	if depth > r.lim.MaxDepth {
		return Value{}, r.errorf(ErrTooDeep, "more than %d levels", r.lim.MaxDepth)
	}
	r.next() // the '(' seen by readValue
	list := []Value{}
	for {
		c, err := r.peek()
		if err != nil {
			return Value{}, err
		}
		if c == ')' {
			r.next()
			return Value{Kind: KindList, List: list}, nil
		}
		if len(list) > 0 {
			if err := r.expect(' ', "a space or ')'"); err != nil {
				return Value{}, err
			}
		}
		v, err := r.readValue(depth)
		if err != nil {
			return Value{}, err
		}
		list = append(list, v)
	}
}

// readAtom reads an atom, taking a bracketed section with its spaces and parentheses as part
// of it, as FETCH items need: BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.1024>.
func (r *Reader) readAtom() (Value, error) {
	buf := r.scratch[:0]
	for {
		buf = r.run(buf, isPlainAtomChar)
		c, err := r.peek()
		if err != nil {
			return Value{}, err
		}
		if c == '[' {
			if buf, err = r.readSection(buf); err != nil {
				return Value{}, err
			}
			continue
		}
		if !isArgChar(c) {
			break
		}
		if _, err := r.next(); err != nil {
			return Value{}, err
		}
		buf = append(buf, c)
	}
	r.scratch = buf
	if !utf8.Valid(buf) {
		return Value{}, r.errorf(ErrInvalidUTF8, "in the atom %q", clipBytes(buf))
	}
	return atomValue(string(buf)), nil
}

// clipBytes shortens what an error message quotes.
func clipBytes(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func atomValue(s string) Value {
	if len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l' {
		return Value{Kind: KindNIL, Str: s}
	}
	if isDigits(s) {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return Value{Kind: KindNumber, Str: s, Num: n}
		}
	}
	return Value{Kind: KindAtom, Str: s}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// readSection copies a bracketed section verbatim. Header names in it may be quoted; a
// literal there is refused, since no client is known to send one.
func (r *Reader) readSection(buf []byte) ([]byte, error) {
	inQuote, escaped := false, false
	for {
		if !inQuote {
			buf = r.run(buf, isPlainSectionChar)
		}
		c, err := r.peek()
		if err != nil {
			return nil, err
		}
		switch {
		case c == '\r' || c == '\n':
			return nil, r.errorf(ErrSyntax, "unterminated '['")
		case c < ' ' || c >= 0x7f:
			return nil, r.errorf(ErrSyntax, "unexpected %q in a section", c)
		case c == '{' && !inQuote:
			return nil, r.errorf(ErrSyntax, "literal inside a section")
		}
		r.next()
		buf = append(buf, c)
		switch {
		case escaped:
			escaped = false
		case c == '\\' && inQuote:
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case c == ']' && !inQuote:
			return buf, nil
		}
	}
}

// readQuoted reads a quoted string. UTF-8 is accepted whether or not the client enabled
// UTF8=ACCEPT, as IMAP4rev2 allows it and refusing it would help nobody; invalid UTF-8 is not.
func (r *Reader) readQuoted() (Value, error) {
	r.next() // the opening quote
	buf := r.scratch[:0]
	for {
		buf = r.run(buf, isPlainQuotedChar)
		c, err := r.peek()
		if err != nil {
			return Value{}, err
		}
		switch c {
		case '\r', '\n':
			return Value{}, r.errorf(ErrSyntax, "unterminated quoted string")
		case 0:
			return Value{}, r.errorf(ErrNUL, "in a quoted string")
		}
		r.next()
		if c == '"' {
			break
		}
		if c == '\\' {
			if c, err = r.next(); err != nil {
				return Value{}, err
			}
			if c != '"' && c != '\\' {
				return Value{}, r.errorf(ErrSyntax, "only \\\" and \\\\ may be escaped")
			}
		}
		buf = append(buf, c)
	}
	r.scratch = buf
	if !utf8.Valid(buf) {
		return Value{}, r.errorf(ErrInvalidUTF8, "")
	}
	return Value{Kind: KindQuoted, Str: string(buf)}, nil
}
