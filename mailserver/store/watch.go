package store

import "sync"

// Watching a mailbox: IMAP NOTIFY tells clients when folders appear, disappear, are renamed or
// (un)subscribed, and when messages arrive in folders they have not selected. Folder.Snapshot
// follows one folder's messages; the hooks here follow the mailbox's list of folders and follow
// a folder's messages without copying its index.

// MailboxEventKind says what changed in a mailbox's list of folders or subscriptions.
type MailboxEventKind int

const (
	// FolderCreated: Name was created.
	FolderCreated MailboxEventKind = iota
	// FolderDeleted: Name was deleted.
	FolderDeleted
	// FolderRenamed: OldName is now Name (one event per folder moved, sub-folders included).
	FolderRenamed
	// FolderSubscribed: Name was added to the subscriptions.
	FolderSubscribed
	// FolderUnsubscribed: Name was removed from the subscriptions.
	FolderUnsubscribed
)

// MailboxEvent is one change to a mailbox's folders or subscriptions.
type MailboxEvent struct {
	Kind    MailboxEventKind
	Name    string
	OldName string // for FolderRenamed
}

// mailboxWatchers holds a mailbox's watchers. It has a lock of its own so that the folder
// operations, which hold the mailbox's lock while they work, can report after releasing it.
type mailboxWatchers struct {
	mu   sync.Mutex
	fns  map[int]func(MailboxEvent)
	next int
}

// Watch calls fn after every change to the mailbox's folders or subscriptions, until cancel.
// fn runs on the goroutine that made the change, with no store lock held, after the change is
// durable; it must not block. Calls for concurrent changes may come in any order, and a call
// already under way when cancel returns may still finish: fn must tolerate one late call.
func (m *Mailbox) Watch(fn func(MailboxEvent)) (cancel func()) {
	w := &m.watchers
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(MailboxEvent){}
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

// MailboxWatchers is the number of watchers registered with Watch; a session that ended and
// left one behind leaks, which tests look for.
func (m *Mailbox) MailboxWatchers() int {
	m.watchers.mu.Lock()
	defer m.watchers.mu.Unlock()
	return len(m.watchers.fns)
}

// tell calls the watchers with evs. Callers hold no lock of the mailbox.
func (m *Mailbox) tell(evs ...MailboxEvent) {
	w := &m.watchers
	w.mu.Lock()
	fns := make([]func(MailboxEvent), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, ev := range evs {
		for _, fn := range fns {
			fn(ev)
		}
	}
}

// Watch registers fn for every later change to the folder's messages, like Snapshot but
// without copying the index, for a watcher that only needs to know that something changed.
// fn runs with the folder locked and must not block or call back into the folder.
func (f *Folder) Watch(fn func(Event)) (cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watchLocked(fn)
}

// watchLocked registers fn; the caller holds f.mu.
func (f *Folder) watchLocked(fn func(Event)) (cancel func()) {
	id := f.nextWatcher
	f.nextWatcher++
	f.watchers[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.watchers, id)
		f.mu.Unlock()
	}
}

// Watchers is the number of watchers of the folder's messages (Snapshot and Watch); a
// session that ended and left one behind leaks, which tests look for.
func (f *Folder) Watchers() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.watchers)
}
