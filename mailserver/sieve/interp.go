package sieve

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Message is what a script may look at in a message. The store and SMTP each adapt their
// own message type to it; ParseMessage adapts raw RFC 5322 text.
type Message interface {
	// Header returns the values of every field with this name (case-insensitive), in
	// order of appearance, unfolded and without the space after the colon, not decoded.
	Header(name string) []string
	// Size is the message size in octets.
	Size() int64
	// Body is the raw body, after the blank line that ends the header.
	Body() []byte
}

// Envelope is the SMTP envelope of one delivery. From is empty for the null sender.
type Envelope struct {
	From string
	To   string
	Auth string
}

// ActionKind names what to do with a message.
type ActionKind int

// The actions a run may produce.
const (
	Keep ActionKind = iota
	FileInto
	Redirect
	Reject
	Discard
	VacationReply
)

func (k ActionKind) String() string {
	return [...]string{"keep", "fileinto", "redirect", "reject", "discard", "vacation"}[k]
}

// Action is one thing to do with the message. Keep and FileInto store it (Keep in INBOX).
type Action struct {
	Kind     ActionKind
	Mailbox  string   // FileInto
	Address  string   // Redirect
	Copy     bool     // FileInto, Redirect: the implicit keep was not cancelled
	Create   bool     // FileInto: create the mailbox if it does not exist
	Flags    []string // Keep, FileInto
	Reason   string   // Reject
	Extended bool     // Reject: ereject, refuse in the SMTP dialogue when possible
	Implicit bool     // Keep: the implicit keep, taken because nothing cancelled it
	Vacation *Vacation
}

// Vacation carries the parameters of a vacation action; VacationPolicy decides whether
// a reply goes out.
type Vacation struct {
	Days      int
	Subject   string
	From      string
	Addresses []string
	MIME      bool
	Handle    string
	Reason    string
}

// Result is the outcome of one run. Err is a runtime error; then Actions holds only the
// implicit keep, so that a broken script never loses mail.
type Result struct {
	Actions []Action
	Err     error
}

var errStop = errors.New("stop")

type run struct {
	s        *Script
	msg      Message
	env      Envelope
	now      time.Time
	vars     map[string]string
	match    []string
	flags    []string
	actions  []Action
	cancel   bool // implicit keep cancelled
	steps    int
	redirect int
	cache    map[string]any
}

// Evaluate runs the script against one message. now is the delivery time; its location is
// the default zone of date tests.
func (s *Script) Evaluate(msg Message, env Envelope, now time.Time) Result {
	r := &run{s: s, msg: msg, env: env, now: now, vars: map[string]string{}, cache: map[string]any{}}
	err := r.block(s.cmds)
	if err != nil && err != errStop {
		return Result{Actions: []Action{{Kind: Keep, Implicit: true}}, Err: err}
	}
	if !r.cancel {
		r.implicitKeep()
	}
	return Result{Actions: r.actions}
}

// implicitKeep adds the keep nothing cancelled. When the script already stores into INBOX
// (fileinto :copy "INBOX"), that store takes the keep's flags instead, so that the message
// is stored there once.
func (r *run) implicitKeep() {
	flags := r.flagsNow(nil)
	for i, a := range r.actions {
		if isInbox(a) {
			r.actions[i].Flags = mergeFlags(a.Flags, flags)
			return
		}
	}
	r.actions = append(r.actions, Action{Kind: Keep, Implicit: true, Flags: flags})
}

func (r *run) step(p Pos, n int) error {
	r.steps += n
	if r.steps > r.s.limits.MaxSteps {
		return errorf(p, "script took more than %d steps", r.s.limits.MaxSteps)
	}
	return nil
}

func (r *run) block(cmds []*cmdNode) error {
	done := false // an earlier branch of the current if/elsif/else chain ran
	for _, c := range cmds {
		if err := r.step(c.Pos, 1); err != nil {
			return err
		}
		switch c.Name {
		case "if", "elsif":
			if c.Name == "if" {
				done = false
			}
			if done {
				continue
			}
			ok, err := r.test(c.Tests[0])
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			done = true
		case "else":
			if done {
				continue
			}
		default:
			if err := r.command(c); err != nil {
				return err
			}
			continue
		}
		if err := r.block(c.Block); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) command(c *cmdNode) error {
	a := &c.resolved
	switch c.Name {
	case "require":
		return nil
	case "stop":
		return errStop
	case "keep":
		return r.store(c, Action{Kind: Keep, Flags: r.actionFlags(a)})
	case "fileinto":
		_, cp := a.tags["copy"]
		_, create := a.tags["create"]
		box := r.expand(a.pos[0].Strs[0])
		return r.store(c, Action{Kind: FileInto, Mailbox: box, Copy: cp, Create: create, Flags: r.actionFlags(a)})
	case "redirect":
		return r.doRedirect(c)
	case "reject", "ereject":
		return r.doReject(c)
	case "discard":
		r.cancel = true
		for _, prev := range r.actions {
			if prev.Kind == Discard {
				return nil
			}
		}
		return r.add(c.Pos, Action{Kind: Discard})
	case "set":
		return r.set(a)
	case "addflag", "setflag", "removeflag":
		r.flagCommand(c.Name, a)
		return nil
	case "vacation":
		return r.doVacation(c)
	case "error":
		return errorf(c.Pos, "the script stopped with an error: %s", r.expand(a.pos[0].Strs[0]))
	}
	return errorf(c.Pos, "command %q cannot run", c.Name)
}

func (r *run) add(p Pos, act Action) error {
	if len(r.actions) >= r.s.limits.MaxActions {
		return errorf(p, "script took more than %d actions", r.s.limits.MaxActions)
	}
	r.actions = append(r.actions, act)
	return nil
}

func isInbox(act Action) bool {
	return act.Kind == Keep || (act.Kind == FileInto && strings.EqualFold(act.Mailbox, "INBOX"))
}

// store adds a keep or fileinto. Storing twice into one mailbox stores once, with the
// flags of both, as RFC 5228 section 2.10.3 and RFC 5232 ask.
func (r *run) store(c *cmdNode, act Action) error {
	if act.Kind == FileInto && act.Mailbox == "" {
		return errorf(c.Pos, "fileinto: the mailbox name is empty")
	}
	if err := r.conflictsWithReject(c.Pos, c.Name); err != nil {
		return err
	}
	if !act.Copy {
		r.cancel = true
	}
	for i, prev := range r.actions {
		same := (isInbox(prev) && isInbox(act)) || (prev.Kind == FileInto && act.Kind == FileInto && prev.Mailbox == act.Mailbox)
		if same {
			r.actions[i].Flags = mergeFlags(prev.Flags, act.Flags)
			r.actions[i].Copy = prev.Copy && act.Copy
			r.actions[i].Create = prev.Create || act.Create
			return nil
		}
	}
	return r.add(c.Pos, act)
}

func (r *run) conflictsWithReject(p Pos, what string) error {
	for _, prev := range r.actions {
		if prev.Kind == Reject {
			return errorf(p, "%s conflicts with the earlier reject: a rejected message cannot also be delivered", what)
		}
	}
	return nil
}

func (r *run) doRedirect(c *cmdNode) error {
	a := &c.resolved
	addr, ok := redirectAddress(r.expand(a.pos[0].Strs[0]))
	if !ok {
		return errorf(a.pos[0].Pos, "redirect: %q is not a valid mail address", r.expand(a.pos[0].Strs[0]))
	}
	if err := r.conflictsWithReject(c.Pos, "redirect"); err != nil {
		return err
	}
	_, cp := a.tags["copy"]
	if !cp {
		r.cancel = true
	}
	for i, prev := range r.actions {
		if prev.Kind == Redirect && sameAddress(prev.Address, addr) {
			r.actions[i].Copy = prev.Copy && cp
			return nil
		}
	}
	r.redirect++
	if r.redirect > r.s.limits.MaxRedirects {
		return errorf(c.Pos, "script redirects to more than %d addresses", r.s.limits.MaxRedirects)
	}
	return r.add(c.Pos, Action{Kind: Redirect, Address: addr, Copy: cp})
}

func (r *run) doReject(c *cmdNode) error {
	for _, prev := range r.actions {
		switch prev.Kind {
		case Keep, FileInto, Redirect, VacationReply, Reject:
			return errorf(c.Pos, "%s conflicts with the earlier %s", c.Name, prev.Kind)
		}
	}
	r.cancel = true
	reason := r.expand(c.resolved.pos[0].Strs[0])
	return r.add(c.Pos, Action{Kind: Reject, Reason: reason, Extended: c.Name == "ereject"})
}

func (r *run) doVacation(c *cmdNode) error {
	for _, prev := range r.actions {
		if prev.Kind == VacationReply || prev.Kind == Reject {
			return errorf(c.Pos, "vacation conflicts with the earlier %s", prev.Kind)
		}
	}
	a := &c.resolved
	v := &Vacation{Days: 7, Reason: r.expand(a.pos[0].Strs[0])}
	if d, ok := a.tags["days"]; ok {
		v.Days = int(min(max(d.Num, 1), 365))
	}
	v.Subject = r.expandTag(a, "subject")
	v.From = r.expandTag(a, "from")
	v.Handle = r.expandTag(a, "handle")
	if ad, ok := a.tags["addresses"]; ok {
		v.Addresses = r.expandList(ad.Strs)
	}
	_, v.MIME = a.tags["mime"]
	if _, ok := a.tags["handle"]; !ok {
		// RFC 5230 section 4.2: without :handle, replies that differ in these are distinct.
		v.Handle = fmt.Sprintf("%s\x00%s\x00%s\x00%t", v.Reason, v.Subject, v.From, v.MIME)
	}
	return r.add(c.Pos, Action{Kind: VacationReply, Vacation: v})
}

func (r *run) expandTag(a *resolved, tag string) string {
	if t, ok := a.tags[tag]; ok {
		return r.expand(t.Strs[0])
	}
	return ""
}

func (r *run) test(t *testNode) (bool, error) {
	if err := r.step(t.Pos, 1); err != nil {
		return false, err
	}
	switch t.Name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "not":
		ok, err := r.test(t.Tests[0])
		return !ok, err
	case "allof", "anyof":
		want := t.Name == "anyof"
		for _, sub := range t.Tests {
			ok, err := r.test(sub)
			if err != nil || ok == want {
				return ok, err
			}
		}
		return !want, nil
	case "ihave":
		for _, ext := range t.pos[0].Strs {
			if !supported(ext) {
				return false, nil
			}
		}
		return true, nil
	case "exists":
		for _, h := range r.expandList(t.pos[0].Strs) {
			if len(r.msg.Header(h)) == 0 {
				return false, nil
			}
		}
		return true, nil
	case "size":
		if _, over := t.tags["over"]; over {
			return r.msg.Size() > int64(t.pos[0].Num), nil
		}
		return r.msg.Size() < int64(t.pos[0].Num), nil
	}
	values, err := r.testValues(t)
	if err != nil {
		return false, err
	}
	keys := r.expandList(t.pos[len(t.pos)-1].Strs)
	return r.matchValues(t, values, keys)
}

// testValues collects the strings a matching test compares with its keys.
func (r *run) testValues(t *testNode) ([]string, error) {
	switch t.Name {
	case "header":
		return r.headerValues(t), nil
	case "address":
		return r.addressValues(t), nil
	case "envelope":
		return r.envelopeValues(t), nil
	case "string":
		return r.expandList(t.pos[0].Strs), nil
	case "hasflag":
		return r.hasflagValues(t), nil
	case "body":
		return r.bodyValues(t), nil
	case "date", "currentdate":
		return r.dateValues(t), nil
	}
	return nil, errorf(t.Pos, "test %q cannot run", t.Name)
}

// sameAddress compares as mail does: the domain without case, the local part exactly.
func sameAddress(a, b string) bool {
	pa, pb := splitAddr(a), splitAddr(b)
	return pa.local == pb.local && strings.EqualFold(pa.domain, pb.domain)
}
