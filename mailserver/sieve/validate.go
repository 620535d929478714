package sieve

import (
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Script is a parsed and validated Sieve script, ready to run against any number of messages.
type Script struct {
	cmds   []*cmdNode
	exts   map[string]bool
	limits Limits
	// Compiled regexes, shared by the runs of this script: compiling costs more than a
	// whole run. Keys built from variables are cached too, up to maxCachedRegexps.
	regexps     sync.Map
	regexpCount atomic.Int32
}

const maxCachedRegexps = 256

// Compile parses and validates a script with the default limits.
func Compile(src string) (*Script, error) { return CompileLimits(src, DefaultLimits) }

// CompileLimits parses and validates a script. The error, if any, is an *Error that names
// the line and column of the problem.
func CompileLimits(src string, lim Limits) (*Script, error) {
	cmds, err := parse(src, lim)
	if err != nil {
		return nil, err
	}
	v := &validator{exts: map[string]bool{}}
	if err := v.commands(cmds, true); err != nil {
		return nil, err
	}
	return &Script{cmds: cmds, exts: v.exts, limits: lim}, nil
}

// Requires reports whether the script required an extension.
func (s *Script) Requires(ext string) bool { return s.exts[ext] }

type validator struct {
	exts map[string]bool
}

func (v *validator) commands(cmds []*cmdNode, top bool) error {
	leading := top
	for i, c := range cmds {
		if c.Name == "require" {
			if !leading {
				return errorf(c.Pos, "require must come before any other command, at the top of the script")
			}
		} else {
			leading = false
		}
		if c.Name == "elsif" || c.Name == "else" {
			if i == 0 || (cmds[i-1].Name != "if" && cmds[i-1].Name != "elsif") {
				return errorf(c.Pos, "%s must follow an if or elsif block", c.Name)
			}
		}
		if err := v.command(c); err != nil {
			return err
		}
	}
	return nil
}

func (v *validator) command(c *cmdNode) error {
	sp, ok := commandSpecs[c.Name]
	if !ok {
		if _, isTest := testSpecs[c.Name]; isTest {
			return errorf(c.Pos, "%q is a test, not a command; use it inside if, like: if %s ... { keep; }", c.Name, c.Name)
		}
		return errorf(c.Pos, "unknown command %q", c.Name)
	}
	if err := v.needExt(c.Pos, "command", c.Name, sp.ext); err != nil {
		return err
	}
	if err := v.resolve(&c.resolved, sp, c.Name, c.Args); err != nil {
		return err
	}
	if err := v.shape(c.Pos, c.Name, sp, c.Tests, c.Listed, c.Block != nil); err != nil {
		return err
	}
	if c.Name == "require" {
		return v.require(c)
	}
	v.decodeStrings(&c.resolved)
	for _, t := range c.Tests {
		if err := v.test(t); err != nil {
			return err
		}
	}
	if err := v.checkCommand(c); err != nil {
		return err
	}
	return v.block(c)
}

// block validates a command's block. Under "if ihave [...]" (RFC 5463 section 4) the
// capabilities named count as required inside the block; when one is not supported the
// block can never run and is only parsed, so a script may use what a newer server offers.
func (v *validator) block(c *cmdNode) error {
	caps := ihaveCaps(c)
	if caps == nil {
		return v.commands(c.Block, false)
	}
	for _, ext := range caps {
		if !supported(ext) {
			return nil
		}
	}
	saved := v.exts
	v.exts = map[string]bool{}
	for k := range saved {
		v.exts[k] = true
	}
	for _, ext := range caps {
		v.exts[ext] = true
	}
	err := v.commands(c.Block, false)
	v.exts = saved
	return err
}

// ihaveCaps returns the capabilities of an if or elsif whose test is a bare ihave.
func ihaveCaps(c *cmdNode) []string {
	if (c.Name != "if" && c.Name != "elsif") || len(c.Tests) != 1 || c.Tests[0].Name != "ihave" {
		return nil
	}
	return c.Tests[0].pos[0].Strs
}

func (v *validator) test(t *testNode) error {
	sp, ok := testSpecs[t.Name]
	if !ok {
		if _, isCmd := commandSpecs[t.Name]; isCmd {
			return errorf(t.Pos, "%q is a command, not a test", t.Name)
		}
		return errorf(t.Pos, "unknown test %q", t.Name)
	}
	if err := v.needExt(t.Pos, "test", t.Name, sp.ext); err != nil {
		return err
	}
	if err := v.resolve(&t.resolved, sp, t.Name, t.Args); err != nil {
		return err
	}
	if err := v.shape(t.Pos, t.Name, sp, t.Tests, t.Listed, false); err != nil {
		return err
	}
	v.decodeStrings(&t.resolved)
	for _, sub := range t.Tests {
		if err := v.test(sub); err != nil {
			return err
		}
	}
	return v.checkTest(t)
}

func (v *validator) needExt(p Pos, kind, name, ext string) error {
	if ext != "" && !v.exts[ext] {
		return errorf(p, "%s %q needs require %q at the top of the script", kind, name, ext)
	}
	return nil
}

// shape checks the tests and block a command or test carries against its signature.
func (v *validator) shape(p Pos, name string, sp *spec, tests []*testNode, listed, block bool) error {
	switch {
	case sp.tests == 0 && len(tests) > 0:
		return errorf(tests[0].Pos, "%s takes no test, found %q", name, tests[0].Name)
	case sp.tests == 1 && (len(tests) != 1 || listed):
		return errorf(p, "%s needs exactly one test, not in parentheses", name)
	case sp.tests == -1 && !listed:
		return errorf(p, "%s needs a list of tests in parentheses, like %s (true, false)", name, name)
	case sp.block && !block:
		return errorf(p, "%s needs a block in { }", name)
	case !sp.block && block && !sp.test:
		return errorf(p, "%s takes no block; end it with \";\"", name)
	}
	return nil
}

// resolve sorts arguments into tags and positional arguments and checks their types.
func (v *validator) resolve(r *resolved, sp *spec, name string, args []argNode) error {
	r.spec, r.tags = sp, map[string]argNode{}
	groups := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a.Kind != argTag {
			r.pos = append(r.pos, a)
			continue
		}
		if len(r.pos) > 0 {
			return errorf(a.Pos, "tag :%s must come before the other arguments of %s", a.Tag, name)
		}
		def, err := v.tag(a, sp, name)
		if err != nil {
			return err
		}
		if _, dup := r.tags[a.Tag]; dup {
			return errorf(a.Pos, "%s takes :%s only once", name, a.Tag)
		}
		if other, dup := groups[def.group]; dup && def.group != "" {
			return errorf(a.Pos, "%s cannot take both :%s and :%s", name, other, a.Tag)
		}
		groups[def.group] = a.Tag
		val := a
		if def.arg != atNone {
			if i+1 >= len(args) || !fits(args[i+1], def.arg) {
				return errorf(a.Pos, ":%s of %s must be followed by %s", a.Tag, name, def.arg)
			}
			i++
			val = args[i]
		}
		r.tags[a.Tag] = val
	}
	return v.positional(r, sp, name)
}

func (v *validator) tag(a argNode, sp *spec, name string) (tagDef, error) {
	allowed := false
	for _, t := range sp.tags {
		allowed = allowed || t == a.Tag
	}
	def := tagDefs[a.Tag]
	if !allowed {
		return def, errorf(a.Pos, "%s does not take the tag :%s", name, a.Tag)
	}
	ext := def.ext
	if ext != "" && !v.exts[ext] {
		return def, errorf(a.Pos, "tag :%s needs require %q at the top of the script", a.Tag, ext)
	}
	return def, nil
}

func fits(a argNode, t argType) bool {
	switch t {
	case atNumber:
		return a.Kind == argNumber
	case atString:
		return a.Kind == argStrings && !a.IsList
	case atStrList:
		return a.Kind == argStrings
	}
	return false
}

func (v *validator) positional(r *resolved, sp *spec, name string) error {
	want := sp.pos
	if sp.optFirst && len(r.pos) == len(want)-1 {
		want = want[1:]
	}
	if len(r.pos) != len(want) {
		at := Pos{}
		if len(r.pos) > 0 {
			at = r.pos[0].Pos
		}
		return errorf(at, "%s takes %d argument(s) besides its tags, found %d", name, len(sp.pos), len(r.pos))
	}
	for i, a := range r.pos {
		if !fits(a, want[i]) {
			return errorf(a.Pos, "argument %d of %s must be %s", i+1, name, want[i])
		}
	}
	return nil
}

func (v *validator) require(c *cmdNode) error {
	for _, ext := range c.resolved.pos[0].Strs {
		if !supported(ext) {
			return errorf(c.resolved.pos[0].Pos, "extension %q is not supported; supported are: %s", ext, strings.Join(Extensions, ", "))
		}
		v.exts[ext] = true
	}
	return nil
}

// decodeStrings applies encoded-character (${hex:..}, ${unicode:..}) to every string once
// the script has required it; it happens when the script is loaded, as RFC 5228 asks.
func (v *validator) decodeStrings(r *resolved) {
	if !v.exts["encoded-character"] {
		return
	}
	for i := range r.pos {
		r.pos[i].Strs = decodeAll(r.pos[i].Strs)
	}
	for k, a := range r.tags {
		a.Strs = decodeAll(a.Strs)
		r.tags[k] = a
	}
}

func decodeAll(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = decodeEncoded(s)
	}
	return out
}

func (v *validator) checkCommand(c *cmdNode) error {
	r := &c.resolved
	switch c.Name {
	case "redirect":
		if s := r.pos[0].Strs[0]; !strings.Contains(s, "${") {
			if _, ok := redirectAddress(s); !ok {
				return errorf(r.pos[0].Pos, "redirect: %q is not a valid mail address", s)
			}
		}
	case "set":
		if n := r.pos[0].Strs[0]; !validVarName(n) || strings.Contains(n, ".") {
			return errorf(r.pos[0].Pos, "%q is not a valid variable name (letters, digits and _ only)", n)
		}
	case "addflag", "setflag", "removeflag":
		if len(r.pos) == 2 && !validVarName(r.pos[0].Strs[0]) {
			return errorf(r.pos[0].Pos, "%q is not a valid variable name", r.pos[0].Strs[0])
		}
	case "vacation":
		if from, ok := r.tags["from"]; ok {
			return checkAddress(from, "vacation :from")
		}
	}
	return nil
}

func checkAddress(a argNode, what string) error {
	s := a.Strs[0]
	if strings.Contains(s, "${") {
		return nil
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return errorf(a.Pos, "%s: %q is not a valid mail address", what, s)
	}
	return nil
}

func (v *validator) checkTest(t *testNode) error {
	if err := v.checkMatch(t); err != nil {
		return err
	}
	r := &t.resolved
	switch t.Name {
	case "address":
		return checkAddressHeaders(r.pos[0])
	case "hasflag":
		if len(r.pos) == 2 && !v.exts["variables"] {
			return errorf(r.pos[0].Pos, "hasflag can name variables only when the script requires \"variables\"")
		}
	case "size":
		if len(r.tags) != 1 {
			return errorf(t.Pos, "size needs exactly one of :over or :under")
		}
	case "envelope":
		for _, part := range r.pos[0].Strs {
			if p := strings.ToLower(part); p != "from" && p != "to" && p != "auth" && !strings.Contains(p, "${") {
				return errorf(r.pos[0].Pos, "envelope part %q is unknown; use \"from\" or \"to\"", part)
			}
		}
	case "date", "currentdate":
		return checkDateTest(t)
	}
	return nil
}

// checkMatch validates comparator, match type and relation, and compiles constant regexes
// so that a bad one is reported at upload rather than at delivery.
func (v *validator) checkMatch(t *testNode) error {
	r := &t.resolved
	cmp := "i;ascii-casemap"
	if c, ok := r.tags["comparator"]; ok {
		cmp = c.Strs[0]
		switch cmp {
		case "i;octet", "i;ascii-casemap":
		case "i;ascii-numeric":
			if !v.exts["comparator-i;ascii-numeric"] {
				return errorf(c.Pos, "comparator %q needs require \"comparator-i;ascii-numeric\"", cmp)
			}
		default:
			return errorf(c.Pos, "unknown comparator %q; use i;octet, i;ascii-casemap or i;ascii-numeric", cmp)
		}
	}
	for _, rel := range []string{"value", "count"} {
		if a, ok := r.tags[rel]; ok && relation(a.Strs[0]) == nil {
			return errorf(a.Pos, "relation %q of :%s is unknown; use gt, ge, lt, le, eq or ne", a.Strs[0], rel)
		}
	}
	if cmp == "i;ascii-numeric" {
		for _, mt := range []string{"contains", "matches", "regex"} {
			if a, ok := r.tags[mt]; ok {
				return errorf(a.Pos, "comparator i;ascii-numeric cannot be used with :%s", mt)
			}
		}
	}
	if _, ok := r.tags["regex"]; ok && len(r.pos) > 0 {
		keys := r.pos[len(r.pos)-1]
		for _, k := range keys.Strs {
			if strings.Contains(k, "${") && v.exts["variables"] {
				continue
			}
			if _, err := regexp.Compile(k); err != nil {
				return errorf(keys.Pos, "bad regular expression %q: %v", k, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			}
		}
	}
	return nil
}

func validVarName(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIdentChar(s[i]) && s[i] != '.' {
			return false
		}
	}
	return true
}

// addressHeaders are the fields the address test may read: those that hold addresses.
// The list is Pigeonhole's, so that a script moves between the two unchanged.
var addressHeaders = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true, "reply-to": true,
	"resent-from": true, "resent-sender": true, "resent-to": true, "resent-cc": true,
	"resent-bcc": true, "resent-reply-to": true, "delivered-to": true, "x-original-to": true,
	"errors-to": true, "mail-followup-to": true, "mail-reply-to": true, "return-receipt-to": true,
}

func checkAddressHeaders(a argNode) error {
	for _, h := range a.Strs {
		if !addressHeaders[strings.ToLower(h)] && !strings.Contains(h, "${") {
			return errorf(a.Pos, "the address test cannot read %q, which holds no addresses; use header instead", h)
		}
	}
	return nil
}
