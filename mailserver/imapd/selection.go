package imapd

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// selection is a session's view of its selected folder.
//
// uids mirrors the UIDs of the folder's index as the store's events describe them (the "server
// view"); the client knows a view that lags behind it until the session reports the changes
// (EXISTS, FETCH FLAGS, EXPUNGE). That client view is kept as a difference, not a copy: the
// client knows every message of uids up to known (the highest UID announced with EXISTS) and
// the UIDs in gone, expunged from the folder but not yet reported. So the sequence number of
// the message at index i of uids is i+1 plus the gone UIDs below it, and a folder with
// nothing to report costs 4 bytes per message. Flags, sizes and dates are read from the
// folder's own index (Folder.View) when a command needs them. Under the folder's lock every
// event has been applied, so the folder's index and uids agree position by position there.
//
// Locks: the watcher runs under the folder's lock and takes mu, so code holding mu must never
// call into the folder (taking mu inside Folder.View is the watcher's order, and fine).
type selection struct {
	folder      *store.Folder
	readOnly    bool
	uidValidity uint32
	// opened is the folder's state when it was selected, for SELECT's response.
	opened store.FolderStatus
	cancel func()

	mu   sync.Mutex
	uids []uint32 // ascending
	// known is the highest UID the client was told exists; gone the UIDs (ascending) expunged
	// since the client last heard of them; dirty the UIDs whose flags changed unreported.
	known uint32
	gone  []uint32
	dirty map[uint32]struct{}
	// storing holds the UIDs of this session's SetFlags call in progress: their flag events are
	// this session's own changes, which STORE and FETCH report themselves (or, for .SILENT, not
	// at all), so they are held back in suppressed instead of marked dirty.
	storing    map[uint32]struct{}
	suppressed []store.Message
	// keywords are those the client was told of by FLAGS; newKeywords is set when a message
	// gained one it was not, to be announced with a new FLAGS (and PERMANENTFLAGS).
	keywords    map[string]struct{}
	newKeywords bool
	// searchRes is the last SEARCH RETURN (SAVE) result, referenced as "$".
	searchRes imap.UIDSet
	// wake holds a token when changes arrived since IDLE last looked; onWake, set while the
	// session idles, is called (under the folder's lock and mu) after each change.
	wake   chan struct{}
	onWake func()

	// contexts are the searches kept up to date (context.go). Only the session's writer (its
	// goroutine, or IDLE's updates) uses them, never under mu.
	contexts []*searchContext
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
	if len(msgs) > 0 {
		sel.known = msgs[len(msgs)-1].UID
	}
	sel.keywords = map[string]struct{}{}
	for _, m := range msgs {
		sel.noteKeywords(m.Flags)
	}
	sel.newKeywords = false
	sel.cancel, sel.uidValidity, sel.opened = cancel, st.UIDValidity, st
	return sel, msgs, st
}

// noteKeywords records the keywords among flags; a new one is announced at the next poll.
// Callers hold mu.
func (sel *selection) noteKeywords(flags []string) {
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		if _, ok := sel.keywords[f]; !ok {
			sel.keywords[f] = struct{}{}
			sel.newKeywords = true
		}
	}
}

// flagNames is the FLAGS response's list: the system flags, then the keywords in use.
// Callers hold mu.
func (sel *selection) flagNames() []string {
	out := make([]string, 0, len(systemFlags)+len(sel.keywords))
	for _, f := range systemFlags {
		out = append(out, string(f))
	}
	kw := make([]string, 0, len(sel.keywords))
	for k := range sel.keywords {
		kw = append(kw, k)
	}
	slices.Sort(kw)
	return append(out, kw...)
}

func (sel *selection) close() {
	sel.cancel() // waits for a watcher call in progress; none follows
}

// onEvent is the folder watcher. It runs under the folder's lock and must not block.
func (sel *selection) onEvent(ev store.Event) {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	defer sel.signal()
	m := ev.Message
	if ev.Kind != store.EventExpunge {
		sel.noteKeywords(m.Flags)
	}
	switch ev.Kind {
	case store.EventNew:
		// UIDs are assigned in commit order under the folder's lock, so new ones come last.
		sel.uids = append(sel.uids, m.UID)
	case store.EventFlags:
		if _, ok := sel.index(m.UID); !ok {
			return
		}
		if _, own := sel.storing[m.UID]; own {
			sel.suppressed = append(sel.suppressed, m)
			return
		}
		sel.markDirty(m.UID)
	case store.EventExpunge:
		i, ok := sel.index(m.UID)
		if !ok {
			return
		}
		sel.uids = slices.Delete(sel.uids, i, i+1)
		delete(sel.dirty, m.UID)
		if m.UID <= sel.known {
			j, _ := slices.BinarySearch(sel.gone, m.UID)
			sel.gone = slices.Insert(sel.gone, j, m.UID)
		}
	}
}

// markDirty notes that uid's flags changed unreported. Callers hold mu.
func (sel *selection) markDirty(uid uint32) {
	if sel.dirty == nil {
		sel.dirty = map[uint32]struct{}{}
	}
	sel.dirty[uid] = struct{}{}
}

// signal wakes IDLE without blocking; one pending token is enough. Callers hold mu.
func (sel *selection) signal() {
	select {
	case sel.wake <- struct{}{}:
	default:
	}
	if sel.onWake != nil {
		sel.onWake()
	}
}

// seqOf is the sequence number the client knows the message at index i of uids by, 0 for one
// it has not been told about. Callers hold mu.
func (sel *selection) seqOf(i int) uint32 {
	uid := sel.uids[i]
	if uid > sel.known {
		return 0
	}
	below, _ := slices.BinarySearch(sel.gone, uid)
	return uint32(i + 1 + below)
}

// clientCount is the number of messages the client knows of. Callers hold mu.
func (sel *selection) clientCount() uint32 {
	n, found := slices.BinarySearch(sel.uids, sel.known)
	if found {
		n++
	}
	return uint32(n + len(sel.gone))
}

// update is one change to report: the folder's flags (a new keyword), an expunged sequence
// number (and its UID) or UIDs (VANISHED, with each message's sequence number before it), a
// message's new flags, or the new message count (and, in seq, the first new message's).
type update struct {
	flagNames    []string
	expunged     uint32
	vanished     imap.UIDSet
	vanishedMsgs []expungedMsg
	seq, uid     uint32
	flags        []string
	modSeq       uint64
	exists       uint32
}

// pending takes the changes to report, in the order they must go out: a new FLAGS, expunges
// (when allowed: never during FETCH, STORE and SEARCH, RFC 3501 7.4.1) as EXPUNGE or, for a
// QRESYNC client, one VANISHED, flag changes, then the new count. The client view moves on as
// if they were sent.
func (sel *selection) pending(allowExpunge, vanished bool) []update {
	var out []update
	sel.folder.View(func(msgs []store.Message) {
		sel.mu.Lock()
		defer sel.mu.Unlock()
		if sel.newKeywords {
			out = append(out, update{flagNames: sel.flagNames()})
			sel.newKeywords = false
		}
		if allowExpunge && len(sel.gone) > 0 {
			out = sel.expungeUpdates(vanished, out)
		}
		if len(sel.dirty) > 0 {
			out = sel.flagUpdates(msgs, out)
		}
		if n := len(sel.uids); n > 0 && sel.uids[n-1] > sel.known {
			first := sel.clientCount() + 1
			sel.known = sel.uids[n-1]
			out = append(out, update{exists: sel.clientCount(), seq: first})
		}
	})
	return out
}

// expungedMsg is a message expunged: its sequence number before and its UID.
type expungedMsg struct{ seq, uid uint32 }

// expungeUpdates appends the report of the gone messages: one EXPUNGE each, highest first, as
// each renumbers only the messages after it, or one VANISHED. Callers hold mu.
func (sel *selection) expungeUpdates(vanished bool, out []update) []update {
	gone := make([]expungedMsg, 0, len(sel.gone))
	for j := len(sel.gone) - 1; j >= 0; j-- {
		at, _ := slices.BinarySearch(sel.uids, sel.gone[j])
		gone = append(gone, expungedMsg{seq: uint32(at + j + 1), uid: sel.gone[j]})
	}
	sel.gone = sel.gone[:0]
	if vanished {
		var set imap.UIDSet
		for _, g := range gone {
			set.AddNum(imap.UID(g.uid))
		}
		return append(out, update{vanished: set, vanishedMsgs: gone})
	}
	for _, g := range gone {
		out = append(out, update{expunged: g.seq, uid: g.uid})
	}
	return out
}

// flagUpdates appends the dirty messages' current flags, in sequence order. Callers hold mu
// inside the folder's View, where msgs and uids agree.
func (sel *selection) flagUpdates(msgs []store.Message, out []update) []update {
	uids := make([]uint32, 0, len(sel.dirty))
	for uid := range sel.dirty {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	for _, uid := range uids {
		i, ok := sel.index(uid)
		if !ok || uid > sel.known {
			continue // a new message: its EXISTS comes, and the client fetches its flags
		}
		out = append(out, update{seq: sel.seqOf(i), uid: uid, flags: msgs[i].Flags, modSeq: msgs[i].ModSeq})
	}
	sel.dirty = nil
	return out
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
// client has not been told about yet (no EXISTS) and ones already expunged are left out. A
// sequence number the client cannot know of is its mistake (see seqSetKnown).
func (sel *selection) resolve(numSet imap.NumSet) ([]target, error) {
	var out []target
	var err error
	sel.folder.View(func(msgs []store.Message) {
		sel.mu.Lock()
		defer sel.mu.Unlock()
		if imap.IsSearchRes(numSet) {
			numSet = sel.searchRes
		}
		switch set := numSet.(type) {
		case imap.SeqSet:
			if err = seqSetKnown(set, sel.clientCount()); err != nil {
				return
			}
			set = staticSeqSet(set, sel.clientCount())
			for i, m := range msgs {
				if seq := sel.seqOf(i); seq != 0 && set.Contains(seq) {
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
					if seq := sel.seqOf(i); seq != 0 {
						out = append(out, target{seq, m})
					}
				}
			}
		}
	})
	return out, err
}

// seqSetKnown refuses sequence numbers past the last message the client knows of, and "*" in
// an empty mailbox: RFC 9051's grammar (seq-number) says the server should answer BAD, and a
// client that sends them has lost track of the mailbox, which an OK with nothing done would
// hide from it. UIDs past the last are fine: they may name messages expunged since.
func seqSetKnown(set imap.SeqSet, count uint32) error {
	for _, r := range set {
		for _, n := range []uint32{r.Start, r.Stop} {
			if count == 0 || n > count {
				return badArg("Invalid message set %s: the mailbox has %d messages", set, count)
			}
		}
	}
	return nil
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
func (sel *selection) setFlags(uids []uint32, op store.FlagOp, flags []string, conditional bool, since uint64) ([]store.Message, []uint32, error) {
	sel.mu.Lock()
	sel.storing = make(map[uint32]struct{}, len(uids))
	for _, uid := range uids {
		sel.storing[uid] = struct{}{}
	}
	sel.suppressed = nil
	sel.mu.Unlock()

	var (
		changed  []store.Message
		modified []uint32
		err      error
	)
	if conditional {
		changed, modified, err = sel.folder.SetFlagsUnchangedSince(uids, op, flags, since)
	} else {
		changed, err = sel.folder.SetFlags(uids, op, flags)
	}

	sel.mu.Lock()
	defer sel.mu.Unlock()
	ours := make(map[uint32]uint64, len(changed))
	for _, m := range changed {
		ours[m.UID] = m.ModSeq
	}
	// Every flag event of these UIDs since the call began was suppressed; one that is not
	// this call's own change is someone else's, reported with the flags as they are then.
	requeue := map[uint32]bool{}
	for _, m := range sel.suppressed {
		if ours[m.UID] != m.ModSeq {
			requeue[m.UID] = true
		}
	}
	for uid := range requeue {
		if _, ok := sel.index(uid); ok {
			sel.markDirty(uid)
			sel.signal()
		}
	}
	sel.storing, sel.suppressed = nil, nil
	return changed, modified, err
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
