package wire

import (
	"strconv"
	"strings"
)

// Kind says which syntactic form a Value took on the wire.
type Kind uint8

const (
	KindAtom    Kind = iota + 1 // atom, also flags (\Seen), sequence sets and FETCH items (BODY[1]<0.5>)
	KindNumber                  // atom made only of digits that fits in 64 bits
	KindQuoted                  // quoted string
	KindLiteral                 // literal {n} or binary literal ~{n}
	KindNIL                     // the atom NIL, in any case
	KindList                    // parenthesised list
)

var kindNames = [...]string{"invalid", "atom", "number", "quoted", "literal", "NIL", "list"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one argument of a command, or one piece of a response. The reader produces the
// Kind it saw; the writer chooses the encoding of a string itself (see String).
type Value struct {
	Kind   Kind
	Str    string  // text of an atom, number, NIL or quoted string
	Num    uint64  // value of a number
	Lit    []byte  // data of a literal
	Binary bool    // the literal is a literal8 ~{n} (RFC 3516) and may hold NUL
	List   []Value // members of a list
	// Tight is how many of a list's first members are written with nothing between them, as
	// RFC 3501's grammar writes the addresses of an address list and the bodies of a
	// multipart ("(" 1*body SP media-subtype ...")"); the rest are separated by spaces.
	Tight int
}

// Atom is an atom written as is: the caller vouches for its syntax (it may be a FETCH item
// with a section such as BODY[HEADER.FIELDS (FROM)]); CR, LF and NUL are refused on writing.
func Atom(s string) Value { return Value{Kind: KindAtom, Str: s} }

// Number is a non-negative number.
func Number(n uint64) Value { return Value{Kind: KindNumber, Num: n, Str: strconv.FormatUint(n, 10)} }

// String is a string the writer sends quoted or as a literal, whichever the content allows.
func String(s string) Value { return Value{Kind: KindQuoted, Str: s} }

// AString is a string sent as an atom when it can be one, as mailbox names usually go
// ("INBOX", "Sent"), else like String. NIL is quoted, so that no reader takes it for NIL.
func AString(s string) Value {
	if s == "" || strings.EqualFold(s, "NIL") || len(s) > 1024 {
		return String(s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\`, c) >= 0 {
			return String(s)
		}
	}
	return Atom(s)
}

// Literal is data the writer always sends as a literal {n}; it must not hold NUL.
func Literal(b []byte) Value { return Value{Kind: KindLiteral, Lit: b} }

// Binary is data sent as a literal8 ~{n}, allowed only where the client asked for BINARY.
func Binary(b []byte) Value { return Value{Kind: KindLiteral, Lit: b, Binary: true} }

// NIL is the absent value of an nstring.
func NIL() Value { return Value{Kind: KindNIL, Str: "NIL"} }

// List is a parenthesised list.
func List(vs ...Value) Value {
	if vs == nil {
		vs = []Value{}
	}
	return Value{Kind: KindList, List: vs}
}

// TightList is a list whose first members go with nothing between them, then the rest
// separated by spaces: TightList([a, b], c) is "(ab c)".
func TightList(tight []Value, rest ...Value) Value {
	vs := make([]Value, 0, len(tight)+len(rest))
	vs = append(append(vs, tight...), rest...)
	return Value{Kind: KindList, List: vs, Tight: len(tight)}
}

// AString returns the text of an astring argument (atom, number, NIL spelt as an atom,
// quoted string or literal), and false for a list.
func (v Value) AString() (string, bool) {
	switch v.Kind {
	case KindAtom, KindNumber, KindNIL, KindQuoted:
		return v.Str, true
	case KindLiteral:
		return string(v.Lit), true
	}
	return "", false
}

// NString returns the text of an nstring argument; isNil is set for NIL.
func (v Value) NString() (s string, isNil, ok bool) {
	switch v.Kind {
	case KindNIL:
		return "", true, true
	case KindQuoted:
		return v.Str, false, true
	case KindLiteral:
		return string(v.Lit), false, true
	}
	return "", false, false
}

// Uint32 returns a number argument that fits in 32 bits, as message numbers and UIDs do.
func (v Value) Uint32() (uint32, bool) {
	if v.Kind != KindNumber || v.Num > 1<<32-1 {
		return 0, false
	}
	return uint32(v.Num), true
}
