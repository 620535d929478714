package wire

import (
	"errors"
	"fmt"
)

// Kinds of command errors, for errors.Is. Each is wrapped in an *Error that says which tag it
// answers and whether the connection can go on.
var (
	ErrSyntax          = errors.New("syntax error")
	ErrLineTooLong     = errors.New("command line too long")
	ErrLiteralTooLarge = errors.New("literal too large")
	ErrTooDeep         = errors.New("lists nested too deeply")
	ErrTooManyArgs     = errors.New("too many arguments")
	ErrInvalidUTF8     = errors.New("invalid UTF-8 in quoted string")
	ErrNUL             = errors.New("NUL byte outside a binary literal")
	ErrLiteralRefused  = errors.New("literal refused")
)

// Error is a command the reader could not accept. The server answers it with Status (and Code)
// on Tag, or untagged when no tag was read; when Fatal is set it must close the connection
// after answering, because the rest of the input cannot be found (RFC 7888 allows this for an
// oversized non-synchronising literal). Otherwise the reader has already skipped the offending
// command and the next ReadCommand starts on the following one.
type Error struct {
	Tag    string // tag of the command, "" when none could be read
	Status string // "BAD" or "NO"
	Code   string // response code for the answer, such as "TOOBIG"; "" for none
	Fatal  bool   // the connection cannot continue
	Err    error  // one of the Err* kinds above, or the error from Reader.AcceptLiteral
	Detail string // what was wrong, for the human-readable text of the answer

	resynced bool // the end of the command was consumed: nothing to skip
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "command rejected: " + e.Detail
	}
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Text is the human-readable text of the answer.
func (e *Error) Text() string {
	s := e.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (r *Reader) errorf(kind error, format string, args ...any) *Error {
	status, code := "BAD", ""
	if kind == ErrLiteralTooLarge {
		status, code = "NO", "TOOBIG"
	}
	return &Error{Tag: r.tag, Status: status, Code: code, Err: kind, Detail: fmt.Sprintf(format, args...)}
}
