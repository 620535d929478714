package imapd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

// store changes flags and, unless .SILENT, answers with every message's flags. With
// UNCHANGEDSINCE (RFC 7162 3.1.3) only messages not changed since that mod-sequence change;
// the others are named in MODIFIED.
func (s *session) store(numSet imap.NumSet, flags *imap.StoreFlags, opts *imap.StoreOptions, uid bool) (reply, error) {
	sel := s.sel
	if sel.readOnly {
		return reply{}, errReadOnly
	}
	conditional := opts != nil && opts.UnchangedSince > 0
	s.useCondStore(conditional)
	targets, err := sel.resolve(numSet)
	if err != nil {
		return reply{}, err
	}
	uids := make([]uint32, len(targets))
	for i, t := range targets {
		uids[i] = t.msg.UID
	}
	var op store.FlagOp
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = store.FlagsAdd
	case imap.StoreFlagsDel:
		op = store.FlagsRemove
	default:
		op = store.FlagsReplace
	}
	var since uint64
	if conditional {
		since = opts.UnchangedSince
	}
	changed, modified, err := sel.setFlags(uids, op, keywordSpelling(targets, op, storeFlags(flags.Flags)), conditional, since)
	if err != nil {
		return reply{}, s.storageError("changing flags", err)
	}
	s.announceFlags()
	s.writeStored(targets, changed, modified, flags.Silent)
	if len(modified) == 0 {
		return reply{}, nil
	}
	var set imap.NumSet
	if uid {
		set = imap.UIDSetNum(uidsOf(modified)...)
	} else {
		var seqs imap.SeqSet
		for _, t := range targets {
			if slices.Contains(modified, t.msg.UID) {
				seqs.AddNum(t.seq)
			}
		}
		set = seqs
	}
	return reply{code: "MODIFIED", args: []wire.Value{wire.Atom(set.String())}, text: "Conditional STORE failed for some messages"}, nil
}

// writeStored answers STORE: every message asked for (and not refused by UNCHANGEDSINCE) gets
// its flags back, changed or not; after .SILENT only a CONDSTORE client hears, of the messages
// that changed, their new mod-sequence (RFC 7162 3.1.3).
func (s *session) writeStored(targets []target, changed []store.Message, modified []uint32, silent bool) {
	now := make(map[uint32]store.Message, len(changed))
	for _, m := range changed {
		now[m.UID] = m
	}
	for _, t := range targets {
		m, ok := now[t.msg.UID]
		switch {
		case silent && (!ok || !s.condstore):
			continue
		case silent:
			s.w.Untagged(wire.Number(uint64(t.seq)), wire.Atom("FETCH"), wire.List(wire.Atom("UID"),
				wire.Number(uint64(m.UID)), wire.Atom("MODSEQ"), wire.List(wire.Number(m.ModSeq))))
			continue
		case slices.Contains(modified, t.msg.UID):
			continue
		case !ok:
			cur, exists := s.sel.current(t.msg.UID)
			if !exists {
				continue // expunged meanwhile
			}
			m = cur
		}
		s.writeFlagsFetch(t.seq, m.UID, m.Flags, m.ModSeq)
	}
}

func uidsOf(uids []uint32) []imap.UID {
	out := make([]imap.UID, len(uids))
	for i, u := range uids {
		out[i] = imap.UID(u)
	}
	return out
}

// keywordSpelling matches keywords case-insensitively, as IMAP wants, although the store
// compares them exactly: a keyword the messages already carry keeps their spelling, and
// removing one removes every spelling.
func keywordSpelling(targets []target, op store.FlagOp, flags []string) []string {
	var out []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			out = append(out, f)
			continue
		}
		var spellings []string
		for _, t := range targets {
			for _, have := range t.msg.Flags {
				if strings.EqualFold(have, f) && !slices.Contains(spellings, have) {
					spellings = append(spellings, have)
				}
			}
		}
		switch {
		case op == store.FlagsRemove:
			out = append(append(out, f), spellings...)
		case len(spellings) > 0:
			slices.Sort(spellings)
			out = append(out, spellings[0])
		default:
			out = append(out, f)
		}
	}
	return out
}

// expunge removes \Deleted messages (of uids, for UID EXPUNGE) and says how many. The EXPUNGE
// responses come from the folder's events, like everyone else's, in the poll after the
// command; CLOSE discards them with the selection.
func (s *session) expunge(uids *imap.UIDSet) (int, error) {
	sel := s.sel
	if sel.readOnly {
		return 0, nil // RFC 3501: CLOSE after EXAMINE removes nothing and is no error
	}
	var doomed []uint32
	sel.folder.View(func(msgs []store.Message) {
		for _, m := range msgs {
			if hasFlag(m.Flags, imap.FlagDeleted) && (uids == nil || uids.Contains(imap.UID(m.UID))) {
				doomed = append(doomed, m.UID)
			}
		}
	})
	if len(doomed) == 0 {
		return 0, nil
	}
	if _, err := sel.folder.Expunge(doomed); err != nil {
		return 0, s.storageError("expunging", err)
	}
	return len(doomed), nil
}

// copy copies messages and answers COPYUID, or leaves the destination as it was.
func (s *session) copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	dst, err := s.folder(dest, imap.ResponseCodeTryCreate)
	if err != nil {
		return nil, err
	}
	targets, err := s.sel.resolve(numSet)
	if err != nil {
		return nil, err
	}
	uids := make([]uint32, len(targets))
	var size int64
	for i, t := range targets {
		uids[i] = t.msg.UID
		size += t.msg.Size
	}
	if err := s.checkQuota(size); err != nil {
		return nil, err
	}
	src, copied, err := s.sel.folder.CopyTo(dst, uids)
	if err != nil {
		if _, rerr := dst.Expunge(copied); rerr != nil {
			s.log.Error("removing a failed copy's messages", "folder", dst.Name(), "err", rerr)
		}
		return nil, s.storageError("copying messages", err)
	}
	if len(src) == 0 {
		return nil, nil // nothing to copy: OK without COPYUID
	}
	data := &imap.CopyData{UIDValidity: dst.UIDValidity()}
	for i := range src {
		data.SourceUIDs.AddNum(imap.UID(src[i]))
		data.DestUIDs.AddNum(imap.UID(copied[i]))
	}
	return data, nil
}

// move is COPY, then EXPUNGE of what was copied (RFC 6851). The EXPUNGE responses follow the
// COPYUID response from the folder's events. A move into the selected folder itself gives the
// messages new UIDs at the end, as Dovecot does.
func (s *session) move(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	sel := s.sel
	if sel.readOnly {
		return nil, errReadOnly
	}
	data, err := s.copy(numSet, dest)
	if err != nil || data == nil {
		return nil, err
	}
	moved, _ := data.SourceUIDs.Nums()
	uids := make([]uint32, len(moved))
	for i, u := range moved {
		uids[i] = uint32(u)
	}
	if _, err := sel.folder.Expunge(uids); err != nil {
		// The copies stay: a message twice is better than a message lost.
		return nil, s.storageError("removing moved messages", err)
	}
	return data, nil
}

// checkQuota refuses to store size more bytes in a mailbox that would then be over its quota.
func (s *session) checkQuota(size int64) error {
	if q := s.user.Quota; q > 0 && s.box.Usage()+size > q {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeOverQuota,
			Text: fmt.Sprintf("Mailbox is full (%d of %d bytes used); delete some mail", s.box.Usage(), q)}
	}
	return nil
}
