package imapd

import (
	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// Commands on the selected folder's messages: arguments read here, the work done in
// messages.go, search.go and fetch.go.

func (s *session) cmdClose(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("CLOSE", args); err != nil {
		return reply{}, err
	}
	// CLOSE expunges silently: the selection, and with it the EXPUNGE responses, go.
	_, err := s.expunge(nil)
	s.unselect()
	return reply{}, err
}

func (s *session) cmdUnselect(_ string, args []wire.Value, _ bool) (reply, error) {
	if err := noArgs("UNSELECT", args); err != nil {
		return reply{}, err
	}
	s.unselect()
	return reply{}, nil
}

func (s *session) unselect() {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	s.state = stateAuthenticated
}

func (s *session) cmdExpunge(_ string, args []wire.Value, uid bool) (reply, error) {
	if !uid {
		if err := noArgs("EXPUNGE", args); err != nil {
			return reply{}, err
		}
		return s.expunged(s.expunge(nil))
	}
	if len(args) != 1 {
		return reply{}, badArg("UID EXPUNGE takes a UID set")
	}
	set, err := parseNumSet(args[0], true)
	if err != nil {
		return reply{}, err
	}
	uids := s.sel.uidSet(set)
	return s.expunged(s.expunge(&uids))
}

// expunged completes EXPUNGE and UID EXPUNGE: when messages went, a QRESYNC client hears the
// folder's new HIGHESTMODSEQ in the tagged OK (RFC 7162 3.2.7, 3.2.9), as VANISHED carries
// none and the client would otherwise resynchronise from before the expunge.
func (s *session) expunged(n int, err error) (reply, error) {
	if err != nil || n == 0 || !s.qresync {
		return reply{}, err
	}
	highest := max(s.sel.folder.HighestModSeq(), 1)
	return reply{code: "HIGHESTMODSEQ", args: []wire.Value{wire.Number(highest)}, text: "EXPUNGE completed"}, nil
}

// uidSet is a UID set with "$" (SEARCHRES) resolved.
func (sel *selection) uidSet(set imap.NumSet) imap.UIDSet {
	if imap.IsSearchRes(set) {
		sel.mu.Lock()
		defer sel.mu.Unlock()
		return sel.searchRes
	}
	uids, _ := set.(imap.UIDSet)
	return uids
}

func (s *session) cmdStore(_ string, args []wire.Value, uid bool) (reply, error) {
	if len(args) < 3 {
		return reply{}, badArg("STORE takes a message set, FLAGS, +FLAGS or -FLAGS, and flags")
	}
	set, err := parseNumSet(args[0], uid)
	if err != nil {
		return reply{}, err
	}
	flags, opts, err := parseStoreArgs(args[1:])
	if err != nil {
		return reply{}, err
	}
	return s.store(set, flags, opts, uid)
}

func (s *session) cmdSearch(tag string, args []wire.Value, uid bool) (reply, error) {
	sa, err := parseSearchArgs(args, uid)
	if err != nil {
		return reply{}, err
	}
	options := sa.Return
	if options == nil {
		options = &searchReturn{SearchOptions: imap.SearchOptions{ReturnAll: true}}
	}
	s.useCondStore(sa.ModSeq)
	var modSeq uint64
	if options.Update {
		modSeq = s.sel.folder.HighestModSeq()
	}
	res := s.search(uid, sa.Criteria, options, sa.saveDateFilter())
	if !sa.ModSeq {
		res.ModSeq = 0 // RFC 7162 3.1.5: only a search by MODSEQ answers with one
	}
	if sa.Return == nil {
		vals := []wire.Value{wire.Atom("SEARCH")}
		if nums, ok := res.All.(imap.SeqSet); ok {
			n, _ := nums.Nums()
			for _, x := range n {
				vals = append(vals, wire.Number(uint64(x)))
			}
		} else if nums, ok := res.All.(imap.UIDSet); ok {
			n, _ := nums.Nums()
			for _, x := range n {
				vals = append(vals, wire.Number(uint64(x)))
			}
		}
		if res.ModSeq > 0 && len(vals) > 1 {
			vals = append(vals, wire.List(wire.Atom("MODSEQ"), wire.Number(res.ModSeq)))
		}
		s.w.Untagged(vals...)
		return reply{}, nil
	}
	s.writeESearch(tag, uid, options, res)
	if options.Update {
		s.keepContext(tag, uid, args, res.uids, modSeq)
	}
	return reply{}, nil
}

// writeESearch writes RFC 4731's ESEARCH response, in the order Dovecot writes it. A SAVE
// without other options returns nothing (RFC 5182 2.4).
func (s *session) writeESearch(tag string, uid bool, o *searchReturn, d *searchResult) {
	if o.onlySave() {
		return
	}
	vals := []wire.Value{wire.Atom("ESEARCH"), wire.List(wire.Atom("TAG"), wire.String(tag))}
	if uid {
		vals = append(vals, wire.Atom("UID"))
	}
	if o.ReturnMin && d.Count > 0 {
		vals = append(vals, wire.Atom("MIN"), wire.Number(uint64(d.Min)))
	}
	if o.ReturnMax && d.Count > 0 {
		vals = append(vals, wire.Atom("MAX"), wire.Number(uint64(d.Max)))
	}
	if o.ReturnAll && d.Count > 0 {
		vals = append(vals, wire.Atom("ALL"), wire.Atom(d.All.String()))
	}
	if o.Partial != nil {
		vals = append(vals, wire.Atom("PARTIAL"), partialValue(*o.Partial, d.partial.String()))
	}
	if o.ReturnCount {
		vals = append(vals, wire.Atom("COUNT"), wire.Number(uint64(d.Count)))
	}
	if d.ModSeq > 0 && d.Count > 0 {
		vals = append(vals, wire.Atom("MODSEQ"), wire.Number(d.ModSeq))
	}
	s.w.Untagged(vals...)
}

// partialValue is PARTIAL's return data: the range asked for and the numbers found there, or
// NIL (RFC 5267 4.4).
func partialValue(p partialRange, set string) wire.Value {
	found := wire.NIL()
	if set != "" {
		found = wire.Atom(set)
	}
	return wire.List(wire.Atom(p.String()), found)
}

// copyArgs reads COPY's and MOVE's message set and destination.
func (s *session) copyArgs(name string, args []wire.Value, uid bool) (imap.NumSet, string, error) {
	if len(args) != 2 {
		return nil, "", badArg("%s takes a message set and a folder name", name)
	}
	set, err := parseNumSet(args[0], uid)
	if err != nil {
		return nil, "", err
	}
	dest, err := parseMailbox(args[1], s.utf8Names())
	return set, dest, err
}

func (s *session) cmdCopy(_ string, args []wire.Value, uid bool) (reply, error) {
	set, dest, err := s.copyArgs("COPY", args, uid)
	if err != nil {
		return reply{}, err
	}
	data, err := s.copy(set, dest)
	if err != nil || data == nil {
		return reply{}, err
	}
	return reply{code: "COPYUID", args: copyUIDArgs(data), text: "COPY completed"}, nil
}

func copyUIDArgs(d *imap.CopyData) []wire.Value {
	return []wire.Value{wire.Number(uint64(d.UIDValidity)), wire.Atom(d.SourceUIDs.String()), wire.Atom(d.DestUIDs.String())}
}

func (s *session) cmdMove(_ string, args []wire.Value, uid bool) (reply, error) {
	set, dest, err := s.copyArgs("MOVE", args, uid)
	if err != nil {
		return reply{}, err
	}
	data, err := s.move(set, dest)
	if err != nil || data == nil {
		return reply{}, err
	}
	// RFC 6851 4.3: COPYUID goes in an untagged OK, before the EXPUNGEs.
	s.w.UntaggedStatus(wire.OK, "COPYUID", copyUIDArgs(data), "Moved")
	return reply{}, nil
}
