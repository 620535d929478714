package imapd

import (
	"bytes"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// CONTEXT=SEARCH (RFC 5267): SEARCH RETURN (UPDATE) leaves a search running. Whenever the
// selected folder changes, the session searches again and tells the client which messages
// joined the result (ADDTO) and which left it (REMOVEFROM), until CANCELUPDATE or the folder
// is closed. PARTIAL and CONTEXT, the extension's other return options, are read with the
// rest in args_search.go.

func init() {
	commands["CANCELUPDATE"] = handler{states: loggedIn, run: (*session).cmdCancelUpdate}
	extensionCaps = append(extensionCaps, "CONTEXT=SEARCH")
}

// maxContexts bounds the searches a session keeps up to date: each is run again whenever the
// folder changes. More are refused with NOUPDATE (RFC 5267 4.3.1) and answered once.
const maxContexts = 16

// searchContext is a search kept up to date.
type searchContext struct {
	tag string
	uid bool // UID SEARCH: the updates carry UIDs, else sequence numbers
	// args are the command's arguments, kept to search again as if the command were sent
	// anew ("*" and "$" are resolved each time).
	args []wire.Value
	uids []uint32 // the result as the client knows it, ascending
	// modSeq is the folder's highest mod-sequence when the result was last computed; a search
	// runs again only once the folder changed.
	modSeq uint64
}

// keepContext starts the updates of a SEARCH RETURN (UPDATE) whose result was found; modSeq
// is the folder's highest mod-sequence read before it searched.
func (s *session) keepContext(tag string, uid bool, args []wire.Value, found imap.UIDSet, modSeq uint64) {
	sel := s.sel
	sel.contexts = slices.DeleteFunc(sel.contexts, func(c *searchContext) bool { return c.tag == tag })
	if len(sel.contexts) >= maxContexts {
		s.w.UntaggedStatus(wire.NO, "NOUPDATE", []wire.Value{wire.String(tag)},
			"Too many searches kept up to date: CANCELUPDATE one first")
		return
	}
	nums, _ := found.Nums()
	uids := make([]uint32, len(nums))
	for i, n := range nums {
		uids[i] = uint32(n)
	}
	sel.contexts = append(sel.contexts, &searchContext{tag: tag, uid: uid, args: cloneValues(args), uids: uids, modSeq: modSeq})
}

// cloneValues copies command arguments out of the reader's buffers.
func cloneValues(vs []wire.Value) []wire.Value {
	out := make([]wire.Value, len(vs))
	for i, v := range vs {
		out[i] = v
		if v.Lit != nil {
			out[i].Lit = bytes.Clone(v.Lit)
		}
		if v.List != nil {
			out[i].List = cloneValues(v.List)
		}
	}
	return out
}

// cmdCancelUpdate ends the updates of the searches tagged as named (RFC 5267 4.3.5). An
// unknown tag fails the command, and then none is cancelled.
func (s *session) cmdCancelUpdate(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) == 0 {
		return reply{}, badArg("CANCELUPDATE takes the quoted tags of searches run with RETURN (UPDATE)")
	}
	var known []*searchContext
	if s.sel != nil {
		known = s.sel.contexts
	}
	tags := map[string]bool{}
	for _, a := range args {
		if a.Kind != wire.KindQuoted && a.Kind != wire.KindLiteral {
			return reply{}, badArg("CANCELUPDATE: expected a quoted tag, found %s", describeValue(a))
		}
		tag := a.Str
		if a.Kind == wire.KindLiteral {
			tag = string(a.Lit)
		}
		if !slices.ContainsFunc(known, func(c *searchContext) bool { return c.tag == tag }) {
			return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo,
				Text: "No search tagged " + truncateQuote(tag) + " is kept up to date"}
		}
		tags[tag] = true
	}
	s.sel.contexts = slices.DeleteFunc(s.sel.contexts, func(c *searchContext) bool { return tags[c.tag] })
	return reply{text: "Updates cancelled"}, nil
}

// removeExpunged writes, before the EXPUNGE or VANISHED responses of ups go out, a REMOVEFROM
// for the expunged messages in each kept result: with sequence numbers, the client could not
// tell which message left afterwards (RFC 5267 4.3.4).
func (s *session) removeExpunged(ups []update) {
	var gone []expungedMsg
	for _, u := range ups {
		switch {
		case u.vanished != nil:
			gone = append(gone, u.vanishedMsgs...)
		case u.expunged != 0:
			gone = append(gone, expungedMsg{seq: u.expunged, uid: u.uid})
		}
	}
	if len(gone) == 0 {
		return
	}
	for _, c := range s.sel.contexts {
		var removed imap.SeqSet
		for _, g := range gone {
			i, found := slices.BinarySearch(c.uids, g.uid)
			if !found {
				continue
			}
			c.uids = slices.Delete(c.uids, i, i+1)
			if c.uid {
				removed.AddNum(g.uid)
			} else {
				removed.AddNum(g.seq)
			}
		}
		s.writeContextUpdate(c, "REMOVEFROM", removed)
	}
}

// refreshContexts searches again for each kept result the folder changed under since it was
// computed, and writes what left it and what joined it. since is the folder's highest
// mod-sequence read before the changes were reported, so that a change racing with this
// poll is seen by the next one.
func (s *session) refreshContexts(since uint64) {
	for _, c := range s.sel.contexts {
		if c.modSeq == since {
			continue
		}
		sa, err := parseSearchArgs(c.args, c.uid)
		if err != nil {
			continue // it was read once already
		}
		var now []uint32
		var added imap.SeqSet
		for _, m := range s.matches(sa.Criteria, sa.saveDateFilter()) {
			now = append(now, m.msg.UID)
			if _, found := slices.BinarySearch(c.uids, m.msg.UID); !found {
				added.AddNum(contextNumber(c, m.seq, m.msg.UID))
			}
		}
		var left []uint32
		for _, uid := range c.uids {
			if _, found := slices.BinarySearch(now, uid); !found {
				left = append(left, uid)
			}
		}
		var removed imap.SeqSet
		if c.uid {
			for _, uid := range left {
				removed.AddNum(uid)
			}
		} else {
			for _, seq := range s.sel.clientSeqs(left) {
				removed.AddNum(seq)
			}
		}
		c.uids, c.modSeq = now, since
		s.writeContextUpdate(c, "REMOVEFROM", removed)
		s.writeContextUpdate(c, "ADDTO", added)
	}
}

func contextNumber(c *searchContext, seq, uid uint32) uint32 {
	if c.uid {
		return uid
	}
	return seq
}

// writeContextUpdate writes one ADDTO or REMOVEFROM. The position is 0: a SEARCH's result
// has no order of its own (RFC 5267 4.3.2). The numbers are written as a set in either case.
func (s *session) writeContextUpdate(c *searchContext, what string, nums imap.SeqSet) {
	if len(nums) == 0 {
		return
	}
	vals := []wire.Value{wire.Atom("ESEARCH"), wire.List(wire.Atom("TAG"), wire.String(c.tag))}
	if c.uid {
		vals = append(vals, wire.Atom("UID"))
	}
	vals = append(vals, wire.Atom(what), wire.List(wire.Number(0), wire.Atom(nums.String())))
	s.w.Untagged(vals...)
}

// clientSeqs are the sequence numbers the client knows uids by, 0 for one it does not know:
// a message still in the folder, or one expunged but not yet reported.
func (sel *selection) clientSeqs(uids []uint32) []uint32 {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	out := make([]uint32, 0, len(uids))
	for _, uid := range uids {
		i, found := slices.BinarySearch(sel.uids, uid)
		below, gone := slices.BinarySearch(sel.gone, uid)
		switch {
		case found && sel.seqOf(i) != 0:
			out = append(out, sel.seqOf(i))
		case gone:
			out = append(out, uint32(i+below+1))
		}
	}
	return out
}
