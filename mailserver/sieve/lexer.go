package sieve

import (
	"fmt"
	"strings"
)

// Pos is a place in a script, counted from 1 as editors count it.
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Col) }

// Error is a problem in a script, placed so that a person can find and fix it.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokTag
	tokNumber
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	pos  Pos
	text string // identifier/tag name (lowercased), string value or punctuation
	num  uint64
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of script"
	case tokIdent:
		return fmt.Sprintf("identifier %q", t.text)
	case tokTag:
		return fmt.Sprintf("tag \":%s\"", t.text)
	case tokNumber:
		return fmt.Sprintf("number %d", t.num)
	case tokString:
		return "string"
	}
	return fmt.Sprintf("%q", t.text)
}

// lexer turns script text into tokens. It works on bytes: Sieve's syntax is ASCII and
// strings are copied through untouched, so UTF-8 needs no special care.
type lexer struct {
	src       string
	off       int
	line, col int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func (l *lexer) peekByte(k int) byte {
	if l.off+k < len(l.src) {
		return l.src[l.off+k]
	}
	return 0
}

func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

// skipSpace skips white space and both kinds of comments.
func (l *lexer) skipSpace() *Error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance(1)
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance(1)
			}
		case c == '/' && l.peekByte(1) == '*':
			start := l.pos()
			end := strings.Index(l.src[l.off+2:], "*/")
			if end < 0 {
				return errorf(start, "comment started with /* is never closed with */")
			}
			l.advance(end + 4)
		default:
			return nil
		}
	}
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (l *lexer) next() (token, *Error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tokEOF, pos: p}, nil
	}
	c := l.src[l.off]
	switch {
	case c == '"':
		s, err := l.quoted()
		return token{kind: tokString, pos: p, text: s}, err
	case c == ':':
		l.advance(1)
		if !isIdentStart(l.peekByte(0)) {
			return token{}, errorf(p, "a tag needs a name after the colon, like :is or :contains")
		}
		return token{kind: tokTag, pos: p, text: strings.ToLower(l.ident())}, nil
	case c >= '0' && c <= '9':
		return l.number(p)
	case isIdentStart(c):
		id := l.ident()
		if strings.EqualFold(id, "text") && l.peekByte(0) == ':' {
			l.advance(1)
			s, err := l.multiline(p)
			return token{kind: tokString, pos: p, text: s}, err
		}
		return token{kind: tokIdent, pos: p, text: strings.ToLower(id)}, nil
	case strings.IndexByte("[](){},;", c) >= 0:
		l.advance(1)
		return token{kind: tokPunct, pos: p, text: string(c)}, nil
	}
	return token{}, errorf(p, "unexpected character %q", c)
}

func (l *lexer) ident() string {
	start := l.off
	for l.off < len(l.src) && isIdentChar(l.src[l.off]) {
		l.advance(1)
	}
	return l.src[start:l.off]
}

func (l *lexer) number(p Pos) (token, *Error) {
	var n uint64
	for l.off < len(l.src) && l.src[l.off] >= '0' && l.src[l.off] <= '9' {
		d := uint64(l.src[l.off] - '0')
		if n > (1<<63-1-d)/10 {
			return token{}, errorf(p, "number is too large")
		}
		n = n*10 + d
		l.advance(1)
	}
	var mult uint64 = 1
	switch l.peekByte(0) {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult > 1 {
		l.advance(1)
		if n > (1<<63-1)/mult {
			return token{}, errorf(p, "number is too large")
		}
		n *= mult
	}
	if isIdentChar(l.peekByte(0)) {
		return token{}, errorf(l.pos(), "a number may only end in K, M or G, not %q", l.peekByte(0))
	}
	return token{kind: tokNumber, pos: p, num: n}, nil
}

// quoted reads a "..." string. RFC 5228 defines \" and \\; any other backslash is dropped
// and the next character taken literally, as the RFC asks of implementations.
func (l *lexer) quoted() (string, *Error) {
	start := l.pos()
	l.advance(1)
	var b strings.Builder
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch c {
		case '"':
			l.advance(1)
			return b.String(), nil
		case '\\':
			if l.off+1 >= len(l.src) {
				break
			}
			b.WriteByte(l.src[l.off+1])
			l.advance(2)
			continue
		}
		b.WriteByte(c)
		l.advance(1)
	}
	return "", errorf(start, "string is never closed with a double quote")
}

// multiline reads a text: string. Lines end in CRLF or LF; the string ends at a line holding
// only "."; a leading ".." is unstuffed to ".".
func (l *lexer) multiline(p Pos) (string, *Error) {
	for l.off < len(l.src) && (l.src[l.off] == ' ' || l.src[l.off] == '\t') {
		l.advance(1)
	}
	if l.peekByte(0) == '#' {
		for l.off < len(l.src) && l.src[l.off] != '\n' {
			l.advance(1)
		}
	}
	if l.peekByte(0) == '\r' {
		l.advance(1)
	}
	if l.peekByte(0) != '\n' {
		return "", errorf(l.pos(), "text: must be followed by the end of the line")
	}
	l.advance(1)
	var b strings.Builder
	for l.off < len(l.src) {
		end := strings.IndexByte(l.src[l.off:], '\n')
		if end < 0 {
			break
		}
		line := l.src[l.off : l.off+end+1]
		l.advance(len(line))
		body := strings.TrimRight(line, "\r\n")
		if body == "." {
			return b.String(), nil
		}
		if strings.HasPrefix(body, "..") {
			line = line[1:]
		}
		b.WriteString(strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
		b.WriteString("\r\n")
	}
	return "", errorf(p, "text: string is never closed with a line holding only \".\"")
}
