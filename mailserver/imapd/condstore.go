package imapd

import (
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

// CONDSTORE and QRESYNC (RFC 7162). Every message and folder carries the store's
// mod-sequence, persisted in the folder's journal; what the store does not keep is which UIDs
// were expunged when, so VANISHED (EARLIER) names every UID of the range asked about that no
// longer exists: a superset of what changed since, which the RFC allows (3.2.5.2, 3.2.6) and
// which stays small (ranges) for folders whose UIDs were not much expunged.

// useCondStore notes a CONDSTORE enabling command (RFC 7162 3.1) when on. The first one issued
// with a folder selected reports that folder's HIGHESTMODSEQ, as SELECT (CONDSTORE) would
// have: the client has no mod-sequence to resynchronise from otherwise. Changes it has not
// heard of yet come after, with their own MODSEQ. SELECT reports its own and does not call it.
func (s *session) useCondStore(on bool) {
	if !on || s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		highest := max(s.sel.folder.HighestModSeq(), 1)
		s.w.UntaggedStatus(wire.OK, "HIGHESTMODSEQ", []wire.Value{wire.Number(highest)}, "Highest")
	}
}

// resync answers SELECT's QRESYNC parameter: the UIDs gone from what the client knows, then
// the messages changed since its mod-sequence (RFC 7162 3.2.5). A UIDVALIDITY other than the
// folder's means the client must start over, and gets nothing more.
func (s *session) resync(q *qresyncArgs) {
	if q.UIDValidity != s.sel.uidValidity {
		return
	}
	known := q.KnownUIDs
	if len(known) == 0 && s.sel.opened.UIDNext > 1 {
		known = imap.UIDSet{}
		known.AddRange(1, imap.UID(s.sel.opened.UIDNext-1))
	}
	var (
		gone    imap.UIDSet
		changed []update
	)
	s.sel.folder.View(func(msgs []store.Message) {
		s.sel.mu.Lock()
		defer s.sel.mu.Unlock()
		gone = missingUIDs(msgs, known, s.sel.opened.UIDNext)
		for i, m := range msgs {
			if m.ModSeq > q.ModSeq {
				if seq := s.sel.seqOf(i); seq != 0 {
					changed = append(changed, update{seq: seq, uid: m.UID, flags: m.Flags, modSeq: m.ModSeq})
				}
			}
		}
	})
	if len(gone) > 0 {
		s.w.Untagged(wire.Atom("VANISHED"), wire.List(wire.Atom("EARLIER")), wire.Atom(gone.String()))
	}
	for _, u := range changed {
		s.writeFlagsFetch(u.seq, u.uid, u.flags, u.modSeq)
	}
}

// missingUIDs is the UIDs of set, below uidNext, that no message of msgs has.
func missingUIDs(msgs []store.Message, set imap.UIDSet, uidNext uint32) imap.UIDSet {
	var out imap.UIDSet
	last := imap.UID(uidNext - 1)
	for _, r := range set {
		start, stop := r.Start, r.Stop
		if stop == 0 || stop > last { // "*", or beyond any UID given out
			stop = last
		}
		if start == 0 {
			start = last
		}
		if start > stop {
			start, stop = stop, start
		}
		if start == 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(msgs, uint32(start), func(m store.Message, u uint32) int { return int(int64(m.UID) - int64(u)) })
		next := start
		for ; i < len(msgs) && imap.UID(msgs[i].UID) <= stop; i++ {
			if u := imap.UID(msgs[i].UID); u > next {
				out.AddRange(next, u-1)
			}
			next = imap.UID(msgs[i].UID) + 1
		}
		if next <= stop {
			out.AddRange(next, stop)
		}
	}
	return out
}

// vanishedEarlier answers UID FETCH's VANISHED modifier (RFC 7162 3.2.6): the UIDs of the set
// asked for that are gone.
func (s *session) vanishedEarlier(set imap.UIDSet) {
	var gone imap.UIDSet
	uidNext := s.sel.folder.UIDNext()
	s.sel.folder.View(func(msgs []store.Message) {
		gone = missingUIDs(msgs, set, uidNext)
	})
	if len(gone) > 0 {
		s.w.Untagged(wire.Atom("VANISHED"), wire.List(wire.Atom("EARLIER")), wire.Atom(gone.String()))
	}
}
