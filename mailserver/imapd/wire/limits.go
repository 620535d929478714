package wire

// Limits bound what one command may cost the server, whatever a client sends. A zero field
// takes its default from DefaultLimits.
type Limits struct {
	// MaxLine bounds the text of a command outside its literals, summed over its lines: a
	// longer command is answered BAD and skipped, the connection goes on.
	MaxLine int
	// MaxLiteralPreAuth bounds each literal before authentication (LOGIN and ID need little),
	// so that an anonymous client cannot make the server hold a large buffer.
	MaxLiteralPreAuth int64
	// MaxLiteral bounds each literal once authenticated: the APPENDLIMIT the server announces.
	MaxLiteral int64
	// MaxCommandLiterals bounds the literals of one command together once authenticated
	// (MULTIAPPEND, CATENATE), since the reader holds a whole command; zero means twice
	// MaxLiteral. Before authentication the bound is four times MaxLiteralPreAuth.
	MaxCommandLiterals int64
	// MaxDepth bounds the nesting of parenthesised lists (SEARCH and FETCH need a few levels).
	MaxDepth int
	// MaxArgs bounds the number of values in a command, counting members of lists, so that
	// the parsed tree stays small even when every byte of a line opens a new value.
	MaxArgs int
	// NonSyncMax, when set, bounds non-synchronising literals {n+}: 4096 (LiteralMinusMax) for
	// a server that announces LITERAL- (RFC 7888); zero lets them grow to the literal limit
	// (LITERAL+).
	NonSyncMax int64
}

// LiteralMinusMax is the largest non-synchronising literal LITERAL- allows (RFC 7888).
const LiteralMinusMax = 4096

// DefaultLimits are safe for a server on the Internet.
func DefaultLimits() Limits {
	return Limits{
		MaxLine:           64 << 10,
		MaxLiteralPreAuth: 8 << 10,
		MaxLiteral:        64 << 20,
		MaxDepth:          32,
		MaxArgs:           4096,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxLiteralPreAuth <= 0 {
		l.MaxLiteralPreAuth = d.MaxLiteralPreAuth
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = d.MaxLiteral
	}
	if l.MaxCommandLiterals <= 0 {
		l.MaxCommandLiterals = 2 * l.MaxLiteral
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = d.MaxArgs
	}
	return l
}
