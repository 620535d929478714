package sieve

import "fmt"

// Limits bound what a script may cost, both when it is uploaded and when it runs.
type Limits struct {
	MaxScriptSize int // bytes of script text
	MaxNesting    int // depth of blocks and nested tests
	MaxCommands   int // commands and tests in the whole script
	MaxActions    int // actions one run may take
	MaxRedirects  int // redirects one run may take
	MaxSteps      int // commands and tests executed, plus one per KiB compared while matching
}

// DefaultLimits are generous for hand-written and client-generated scripts alike.
var DefaultLimits = Limits{
	MaxScriptSize: 1 << 20,
	MaxNesting:    32,
	MaxCommands:   5000,
	MaxActions:    32,
	MaxRedirects:  4,
	MaxSteps:      100000,
}

type argKind int

const (
	argTag argKind = iota
	argNumber
	argStrings
)

// argNode is one argument of a command or test as written.
type argNode struct {
	Pos    Pos
	Kind   argKind
	Tag    string   // argTag: the name without the colon, lowercased
	Num    uint64   // argNumber
	Strs   []string // argStrings
	IsList bool     // written as [ ... ] rather than a single string
}

// testNode is a test with its arguments and nested tests (allof, anyof, not).
type testNode struct {
	Pos    Pos
	Name   string
	Args   []argNode
	Tests  []*testNode
	Listed bool // the tests were written as a list in parentheses
	resolved
}

// cmdNode is a command with its arguments, its test (if, elsif) and its block.
type cmdNode struct {
	Pos    Pos
	Name   string
	Args   []argNode
	Tests  []*testNode
	Listed bool // the tests were written as a list in parentheses
	Block  []*cmdNode
	resolved
}

// resolved holds the arguments sorted out by the validator against the signature.
type resolved struct {
	spec *spec
	tags map[string]argNode // tag name to its argument (a bare tag maps to itself)
	pos  []argNode          // positional arguments; a left-out optional first one is absent
}

type parser struct {
	lx     *lexer
	tok    token
	limits Limits
	ncmds  int
}

func parse(src string, lim Limits) ([]*cmdNode, error) {
	if len(src) > lim.MaxScriptSize {
		return nil, &Error{Msg: fmt.Sprintf("script is %d bytes, more than the limit of %d", len(src), lim.MaxScriptSize)}
	}
	p := &parser{lx: newLexer(src), limits: lim}
	if err := p.next(); err != nil {
		return nil, err
	}
	cmds, err := p.commands(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, errorf(p.tok.pos, "unexpected %s; a \"}\" without a matching \"{\"?", p.tok.describe())
	}
	return cmds, nil
}

func (p *parser) next() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) isPunct(s string) bool { return p.tok.kind == tokPunct && p.tok.text == s }

func (p *parser) count(pos Pos, depth int) error {
	p.ncmds++
	if p.ncmds > p.limits.MaxCommands {
		return errorf(pos, "script has more than %d commands and tests", p.limits.MaxCommands)
	}
	if depth > p.limits.MaxNesting {
		return errorf(pos, "blocks and tests are nested more than %d deep", p.limits.MaxNesting)
	}
	return nil
}

func (p *parser) commands(depth int) ([]*cmdNode, error) {
	var cmds []*cmdNode
	for p.tok.kind == tokIdent {
		c, err := p.command(depth)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	if p.tok.kind != tokEOF && !p.isPunct("}") {
		return nil, errorf(p.tok.pos, "expected a command such as keep or if, found %s", p.tok.describe())
	}
	return cmds, nil
}

func (p *parser) command(depth int) (*cmdNode, error) {
	c := &cmdNode{Pos: p.tok.pos, Name: p.tok.text}
	if err := p.count(c.Pos, depth); err != nil {
		return nil, err
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	args, tests, listed, err := p.arguments(depth)
	if err != nil {
		return nil, err
	}
	c.Args, c.Tests, c.Listed = args, tests, listed
	switch {
	case p.isPunct(";"):
		return c, p.next()
	case p.isPunct("{"):
		if err := p.next(); err != nil {
			return nil, err
		}
		if c.Block, err = p.commands(depth + 1); err != nil {
			return nil, err
		}
		if !p.isPunct("}") {
			return nil, errorf(p.tok.pos, "block of %q is never closed with \"}\"", c.Name)
		}
		c.Block = nonNil(c.Block)
		return c, p.next()
	}
	return nil, errorf(p.tok.pos, "expected \";\" after %q, found %s", c.Name, p.tok.describe())
}

func nonNil(b []*cmdNode) []*cmdNode {
	if b == nil {
		return []*cmdNode{}
	}
	return b
}

// arguments reads tags, numbers and strings, then an optional test or test list.
func (p *parser) arguments(depth int) ([]argNode, []*testNode, bool, error) {
	var args []argNode
	for {
		a, ok, err := p.argument()
		if err != nil {
			return nil, nil, false, err
		}
		if !ok {
			break
		}
		args = append(args, a)
	}
	switch {
	case p.tok.kind == tokIdent:
		t, err := p.test(depth + 1)
		if err != nil {
			return nil, nil, false, err
		}
		return args, []*testNode{t}, false, nil
	case p.isPunct("("):
		tests, err := p.testList(depth + 1)
		return args, tests, true, err
	}
	return args, nil, false, nil
}

func (p *parser) argument() (argNode, bool, error) {
	a := argNode{Pos: p.tok.pos}
	switch {
	case p.tok.kind == tokTag:
		a.Kind, a.Tag = argTag, p.tok.text
	case p.tok.kind == tokNumber:
		a.Kind, a.Num = argNumber, p.tok.num
	case p.tok.kind == tokString:
		a.Kind, a.Strs = argStrings, []string{p.tok.text}
	case p.isPunct("["):
		strs, err := p.stringList()
		a.Kind, a.Strs, a.IsList = argStrings, strs, true
		return a, err == nil, err
	default:
		return a, false, nil
	}
	return a, true, p.next()
}

func (p *parser) stringList() ([]string, error) {
	start := p.tok.pos
	strs := []string{}
	for {
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokString {
			return nil, errorf(p.tok.pos, "expected a string in the list started at %s, found %s", start, p.tok.describe())
		}
		strs = append(strs, p.tok.text)
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.isPunct("]") {
			return strs, p.next()
		}
		if !p.isPunct(",") {
			return nil, errorf(p.tok.pos, "expected \",\" or \"]\" in the string list started at %s, found %s", start, p.tok.describe())
		}
	}
}

func (p *parser) test(depth int) (*testNode, error) {
	if p.tok.kind != tokIdent {
		return nil, errorf(p.tok.pos, "expected a test such as header or true, found %s", p.tok.describe())
	}
	t := &testNode{Pos: p.tok.pos, Name: p.tok.text}
	if err := p.count(t.Pos, depth); err != nil {
		return nil, err
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	args, tests, listed, err := p.arguments(depth)
	t.Args, t.Tests, t.Listed = args, tests, listed
	return t, err
}

func (p *parser) testList(depth int) ([]*testNode, error) {
	start := p.tok.pos
	var tests []*testNode
	for {
		if err := p.next(); err != nil {
			return nil, err
		}
		t, err := p.test(depth)
		if err != nil {
			return nil, err
		}
		tests = append(tests, t)
		if p.isPunct(")") {
			return tests, p.next()
		}
		if !p.isPunct(",") {
			return nil, errorf(p.tok.pos, "expected \",\" or \")\" in the test list started at %s, found %s", start, p.tok.describe())
		}
	}
}
