package imapd

import (
	"cmp"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/kubemail/kubemail/mailserver/store"
)

// selection is a session's view of its selected folder.
//
// uids mirrors the UIDs of the folder's index as the store's events describe them (the "server
// view"): the watcher applies each event to uids and queues the matching update (EXISTS, FETCH
// FLAGS, EXPUNGE) on a tracker of this session's own. The tracker's queue is what the client
// has not been told yet, so its EncodeSeqNum/DecodeSeqNum translate between positions in the
// index and the sequence numbers the client knows. Only UIDs are mirrored, to find an event's
// position: flags, sizes and dates are read from the folder's own index (Folder.View) when a
// command needs them, so an idle session holds 4 bytes per message, not a copy of the index.
// Under the folder's lock every event has been applied, so the folder's index and uids agree
// position by position there.
//
// Locks: the watcher runs under the folder's lock and takes mu, so code holding mu must never
// call into the folder (taking mu inside Folder.View is the watcher's order, and fine). Every
// tracker call happens under mu: the library's tracker reads its message count without its own
// lock in EncodeSeqNum, and mu is what orders that read against the watcher's updates.
type selection struct {
	folder      *store.Folder
	readOnly    bool
	uidValidity uint32
	cancel      func()
	mailbox     *imapserver.MailboxTracker
	tracker     *imapserver.SessionTracker

	mu   sync.Mutex
	uids []uint32 // ascending
	// storing holds the UIDs of this session's SetFlags call in progress: their flag events are
	// this session's own changes, which STORE and FETCH report themselves (or, for .SILENT, not
	// at all), so they are held back in suppressed instead of queued.
	storing    map[uint32]struct{}
	suppressed []store.Message
	// searchRes is the last SEARCH RETURN (SAVE) result, referenced as "$".
	searchRes imap.UIDSet
	// wake holds a token when updates were queued since IDLE last looked.
	wake chan struct{}
}

// openSelection snapshots folder and starts following its changes. The snapshot is returned
// for the SELECT response; the selection keeps only its UIDs.
func openSelection(folder *store.Folder, readOnly bool) (*selection, []store.Message, store.FolderStatus) {
	sel := &selection{folder: folder, readOnly: readOnly, wake: make(chan struct{}, 1)}
	// Hold mu until uids is set: the watcher may fire as soon as Snapshot releases the
	// folder's lock and must see the snapshot it continues.
	sel.mu.Lock()
	defer sel.mu.Unlock()
	msgs, st, cancel := folder.Snapshot(sel.onEvent)
	sel.uids = make([]uint32, len(msgs))
	for i, m := range msgs {
		sel.uids[i] = m.UID
	}
	sel.cancel, sel.uidValidity = cancel, st.UIDValidity
	sel.mailbox = imapserver.NewMailboxTracker(uint32(len(msgs)))
	sel.tracker = sel.mailbox.NewSession()
	return sel, msgs, st
}

func (sel *selection) close() {
	sel.cancel() // waits for a watcher call in progress; none follows
	sel.tracker.Close()
}

// onEvent is the folder watcher. It runs under the folder's lock and must not block.
func (sel *selection) onEvent(ev store.Event) {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	defer sel.signal()
	m := ev.Message
	switch ev.Kind {
	case store.EventNew:
		// UIDs are assigned in commit order under the folder's lock, so new ones come last.
		sel.uids = append(sel.uids, m.UID)
		sel.mailbox.QueueNumMessages(uint32(len(sel.uids)))
	case store.EventFlags:
		i, ok := sel.index(m.UID)
		if !ok {
			return
		}
		if _, own := sel.storing[m.UID]; own {
			sel.suppressed = append(sel.suppressed, m)
			return
		}
		sel.mailbox.QueueMessageFlags(uint32(i+1), imap.UID(m.UID), imapFlags(m.Flags), nil)
	case store.EventExpunge:
		i, ok := sel.index(m.UID)
		if !ok {
			return
		}
		sel.uids = slices.Delete(sel.uids, i, i+1)
		sel.mailbox.QueueExpunge(uint32(i + 1))
	}
}

// signal wakes IDLE without blocking; one pending token is enough.
func (sel *selection) signal() {
	select {
	case sel.wake <- struct{}{}:
	default:
	}
}

// idle writes queued updates as they come until stop is closed. The library's
// SessionTracker.Idle only wakes for updates queued after it starts, so one that arrived
// between the previous command's poll and IDLE would wait for the next; polling first, then
// on every token, loses none.
func (sel *selection) idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		if err := sel.tracker.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-sel.wake:
		case <-stop:
			return nil
		}
	}
}

// index finds uid in uids. Callers hold mu.
func (sel *selection) index(uid uint32) (int, bool) {
	return slices.BinarySearch(sel.uids, uid)
}

// findMessage finds uid in a folder's index.
func findMessage(msgs []store.Message, uid uint32) (int, bool) {
	return slices.BinarySearchFunc(msgs, uid, func(m store.Message, uid uint32) int { return cmp.Compare(m.UID, uid) })
}

// target is a message a command acts on, with the sequence number the client knows it by.
type target struct {
	seq uint32
	msg store.Message
}

// resolve turns a command's sequence or UID set into messages in ascending order. Messages the
// client has not been told about yet (no EXISTS) and ones already expunged are left out.
func (sel *selection) resolve(numSet imap.NumSet) []target {
	var out []target
	sel.folder.View(func(msgs []store.Message) {
		sel.mu.Lock()
		defer sel.mu.Unlock()
		if imap.IsSearchRes(numSet) {
			numSet = sel.searchRes
		}
		switch set := numSet.(type) {
		case imap.SeqSet:
			set = staticSeqSet(set, uint32(len(msgs)))
			for i, m := range msgs {
				if seq := sel.tracker.EncodeSeqNum(uint32(i + 1)); seq != 0 && set.Contains(seq) {
					out = append(out, target{seq, m})
				}
			}
		case imap.UIDSet:
			var last uint32
			if len(msgs) > 0 {
				last = msgs[len(msgs)-1].UID
			}
			set = staticUIDSet(set, last)
			for i, m := range msgs {
				if set.Contains(imap.UID(m.UID)) {
					if seq := sel.tracker.EncodeSeqNum(uint32(i + 1)); seq != 0 {
						out = append(out, target{seq, m})
					}
				}
			}
		}
	})
	return out
}

// staticSeqSet returns a copy of set with "*" replaced by max.
func staticSeqSet(set imap.SeqSet, max uint32) imap.SeqSet {
	out := slices.Clone(set)
	for i := range out {
		staticRange(&out[i].Start, &out[i].Stop, max)
	}
	return out
}

// staticUIDSet returns a copy of set with "*" replaced by max.
func staticUIDSet(set imap.UIDSet, max uint32) imap.UIDSet {
	out := slices.Clone(set)
	for i := range out {
		start, stop := uint32(out[i].Start), uint32(out[i].Stop)
		staticRange(&start, &stop, max)
		out[i].Start, out[i].Stop = imap.UID(start), imap.UID(stop)
	}
	return out
}

// staticRange resolves "*" (0 in go-imap) in one range; "n:*" with n beyond max means max:n.
func staticRange(start, stop *uint32, max uint32) {
	dyn := false
	if *start == 0 {
		*start, dyn = max, true
	}
	if *stop == 0 {
		*stop, dyn = max, true
	}
	if dyn && *start > *stop {
		*start, *stop = *stop, *start
	}
}

// setFlags changes flags for this session and returns the messages that changed. Their flag
// events are kept from this session's queue (the caller reports them); a flag change by
// someone else to the same messages that races with this call is queued afterwards, with the
// flags as they are now.
func (sel *selection) setFlags(uids []uint32, op store.FlagOp, flags []string) ([]store.Message, error) {
	sel.mu.Lock()
	sel.storing = make(map[uint32]struct{}, len(uids))
	for _, uid := range uids {
		sel.storing[uid] = struct{}{}
	}
	sel.suppressed = nil
	sel.mu.Unlock()

	changed, err := sel.folder.SetFlags(uids, op, flags)

	sel.mu.Lock()
	defer sel.mu.Unlock()
	ours := make(map[uint32]uint64, len(changed))
	for _, m := range changed {
		ours[m.UID] = m.ModSeq
	}
	// Every flag event of these UIDs since the call began was suppressed, so the last one of
	// a UID carries its current flags.
	latest := map[uint32][]string{}
	requeue := map[uint32]bool{}
	for _, m := range sel.suppressed {
		latest[m.UID] = m.Flags
		if ours[m.UID] != m.ModSeq {
			requeue[m.UID] = true
		}
	}
	for uid := range requeue {
		if i, ok := sel.index(uid); ok {
			sel.mailbox.QueueMessageFlags(uint32(i+1), imap.UID(uid), imapFlags(latest[uid]), nil)
			sel.signal()
		}
	}
	sel.storing, sel.suppressed = nil, nil
	return changed, err
}

// current returns a message as the selection knows it now, for a reply that must show the
// latest flags.
func (sel *selection) current(uid uint32) (m store.Message, ok bool) {
	sel.folder.View(func(msgs []store.Message) {
		var i int
		if i, ok = findMessage(msgs, uid); ok {
			m = msgs[i]
		}
	})
	return m, ok
}
