package imapd

import (
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

// NOTIFY (RFC 5465): one IDLE connection hears of new mail in every folder, not only the
// selected one, and of folders created, renamed, deleted and (un)subscribed elsewhere, so a
// client need not keep a connection per folder or poll with STATUS. Changes to other folders
// come as STATUS responses, changes to the folder list as LIST responses, while idling and
// before the tagged response of commands that report the selected folder's changes.
//
// The selected folder keeps its usual reporting (EXISTS, EXPUNGE, FETCH FLAGS) whatever the
// SELECTED filter says; the filter is checked and kept for the grammar's sake.

func init() {
	commands["NOTIFY"] = handler{states: loggedIn, polls: true, run: (*session).cmdNotify}
	extensionCaps = append(extensionCaps, "NOTIFY")
}

// notifyEvents is a set of RFC 5465 events.
type notifyEvents uint8

const (
	evMessageNew notifyEvents = 1 << iota
	evMessageExpunge
	evFlagChange
	evMailboxName
	evSubscriptionChange
	// Events of extensions kubemail lacks (ANNOTATE, METADATA): known, refused with BADEVENT.
	evAnnotationChange
	evMailboxMetadataChange
	evServerMetadataChange

	evMessages    = evMessageNew | evMessageExpunge | evFlagChange
	evUnsupported = evAnnotationChange | evMailboxMetadataChange | evServerMetadataChange
)

// notifyEventNames are the events' names as RFC 5465 spells them, in bit order.
var notifyEventNames = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName",
	"SubscriptionChange", "AnnotationChange", "MailboxMetadataChange", "ServerMetadataChange"}

// notifyFilter is one event group for folders other than the selected one.
type notifyFilter struct {
	kind   string   // PERSONAL (also for INBOXES), SUBSCRIBED, SUBTREE or MAILBOXES
	names  []string // SUBTREE's and MAILBOXES' folders
	events notifyEvents
}

// notifySpec is a parsed NOTIFY SET.
type notifySpec struct {
	status   bool
	selected notifyEvents
	// newFetch is what SELECTED's MessageNew asks to be sent of each new message, nil if
	// nothing (RFC 5465 5.2).
	newFetch *fetchArgs
	filters  []notifyFilter
	used     notifyEvents // every event named anywhere
}

// matches says whether the filter covers the folder name; subs are the subscriptions, sorted.
func (f *notifyFilter) matches(name string, subs []string) bool {
	switch f.kind {
	case "PERSONAL":
		return true
	case "SUBSCRIBED":
		_, found := slices.BinarySearch(subs, name)
		return found
	case "MAILBOXES":
		return slices.Contains(f.names, name)
	}
	for _, n := range f.names { // SUBTREE
		if name == n || strings.HasPrefix(name, n+string(store.Delimiter)) {
			return true
		}
	}
	return false
}

// eventsFor is the events wanted for a folder: those of the first filter that covers it, as
// Dovecot chooses when filters overlap.
func (sp *notifySpec) eventsFor(name string, subs []string) notifyEvents {
	for i := range sp.filters {
		if sp.filters[i].matches(name, subs) {
			return sp.filters[i].events
		}
	}
	return 0
}

// needsSubscriptions says whether matching reads the subscriptions.
func (sp *notifySpec) needsSubscriptions() bool {
	return slices.ContainsFunc(sp.filters, func(f notifyFilter) bool { return f.kind == "SUBSCRIBED" })
}

// notifier follows the folders a NOTIFY SET covers. The store's watchers only record what
// changed and wake the session; the session writes the responses (writeNotify).
//
// Locks: folder watchers run under the folder's lock and take mu, so code holding mu must not
// call into the store.
type notifier struct {
	spec      notifySpec
	cancelBox func()
	// watches are the folders followed, with the events asked for them; only the session (or
	// its IDLE flush, which the write lock keeps apart from it) touches them.
	watches map[*store.Folder]folderWatch

	mu      sync.Mutex
	changed map[*store.Folder]notifyEvents // folders whose messages changed unreported, and how
	events  []store.MailboxEvent           // folder list changes unreported
	closed  bool
	// wake holds a token when something is unreported; onWake, set while the session idles,
	// is called under mu after each change (see selection.wake).
	wake   chan struct{}
	onWake func()
}

type folderWatch struct {
	events notifyEvents
	cancel func()
}

// startNotifier follows box as spec asks. The caller reports the first STATUS responses.
func (s *session) startNotifier(spec notifySpec) *notifier {
	n := &notifier{spec: spec, watches: map[*store.Folder]folderWatch{},
		changed: map[*store.Folder]notifyEvents{}, wake: make(chan struct{}, 1)}
	n.cancelBox = s.box.Watch(n.onMailboxEvent)
	s.followFolders(n)
	return n
}

// onMailboxEvent is the mailbox watcher: it queues the change for writeNotify, which also
// follows new folders and forgets deleted ones. It may run after close; it then does nothing.
func (n *notifier) onMailboxEvent(ev store.MailboxEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.events = append(n.events, ev)
	n.signal()
}

// watcher is the folder watcher of f for the events asked. It runs under f's lock.
func (n *notifier) watcher(f *store.Folder, want notifyEvents) func(store.Event) {
	return func(ev store.Event) {
		var kind notifyEvents
		switch ev.Kind {
		case store.EventNew:
			kind = evMessageNew
		case store.EventFlags:
			kind = evFlagChange
		case store.EventExpunge:
			kind = evMessageExpunge
		}
		if want&kind == 0 {
			return
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.changed[f]&kind == 0 && !n.closed {
			n.changed[f] |= kind
			n.signal()
		}
	}
}

// signal wakes IDLE without blocking. Callers hold mu.
func (n *notifier) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
	if n.onWake != nil {
		n.onWake()
	}
}

// setOnWake starts (fn set) or stops (nil) IDLE's updates; a change that came before they
// started wakes them at once.
func (n *notifier) setOnWake(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onWake = fn
	if fn != nil && len(n.wake) > 0 {
		fn()
	}
}

// take returns what is unreported and forgets it.
func (n *notifier) take() (changed map[*store.Folder]notifyEvents, events []store.MailboxEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.wake:
	default:
	}
	changed, n.changed = n.changed, map[*store.Folder]notifyEvents{}
	events, n.events = n.events, nil
	return changed, events
}

// close stops every watcher; none calls after it returns but the mailbox watcher, which then
// does nothing.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cancelBox()
	for f, w := range n.watches {
		w.cancel()
		delete(n.watches, f)
	}
}

// followFolders watches the messages of the folders the filters cover, and stops watching
// those they no longer cover (deleted, renamed away, unsubscribed). A message that arrives in
// a new folder before this runs is not reported: the folder's LIST comes first, and a client
// that follows folder names asks for the new folder's STATUS itself.
func (s *session) followFolders(n *notifier) {
	var subs []string
	if n.spec.needsSubscriptions() {
		subs, _ = s.box.Subscriptions() // none on error: SUBSCRIBED then covers nothing
	}
	want := map[*store.Folder]notifyEvents{}
	for _, info := range s.box.Folders() {
		if ev := n.spec.eventsFor(info.Name, subs) & evMessages; ev != 0 {
			if f, err := s.box.Folder(info.Name); err == nil {
				want[f] = ev
			}
		}
	}
	for f, w := range n.watches {
		if want[f] != w.events {
			w.cancel()
			delete(n.watches, f)
		}
	}
	for f, ev := range want {
		if _, ok := n.watches[f]; !ok {
			n.watches[f] = folderWatch{events: ev, cancel: f.Watch(n.watcher(f, ev))}
		}
	}
}

// writeNotify writes what changed since the last call: LIST responses for the folder list,
// then a STATUS for each folder whose messages changed, but for the selected folder, whose
// changes poll reports.
func (s *session) writeNotify() {
	n := s.notify
	changed, events := n.take()
	if len(events) > 0 {
		s.writeMailboxEvents(n, events)
		s.followFolders(n)
	}
	folders := make([]*store.Folder, 0, len(changed))
	for f := range changed {
		if _, still := n.watches[f]; still && (s.sel == nil || s.sel.folder != f) {
			folders = append(folders, f)
		}
	}
	slices.SortFunc(folders, func(a, b *store.Folder) int { return compareFolderNames(a.Name(), b.Name()) })
	for _, f := range folders {
		s.writeChangeStatus(f, changed[f])
	}
}

// writeChangeStatus writes the unsolicited STATUS of RFC 5465 5.2 and 5.3 with the items
// Dovecot sends: the counts new and expunged messages change, UNSEEN for flag changes (Dovecot
// only for \Seen, which the store's events do not single out), and HIGHESTMODSEQ to a
// CONDSTORE client. A flag change without CONDSTORE that leaves nothing to say sends nothing.
func (s *session) writeChangeStatus(f *store.Folder, ev notifyEvents) {
	opts := &imap.StatusOptions{HighestModSeq: s.condstore}
	if ev&(evMessageNew|evMessageExpunge) != 0 {
		opts.NumMessages, opts.UIDNext, opts.NumUnseen = true, true, true
	}
	if ev&evFlagChange != 0 {
		opts.NumUnseen = true
	}
	s.writeStatus(s.status(f, opts), opts, false)
}

// writeInitialStatus answers NOTIFY SET STATUS: the STATUS of every folder followed, but the
// selected one, so the client starts from the counts the updates then change. The items are
// Dovecot's: HIGHESTMODSEQ only when flag changes were asked for.
func (s *session) writeInitialStatus() {
	folders := make([]*store.Folder, 0, len(s.notify.watches))
	for f := range s.notify.watches {
		if s.sel == nil || s.sel.folder != f {
			folders = append(folders, f)
		}
	}
	slices.SortFunc(folders, func(a, b *store.Folder) int { return compareFolderNames(a.Name(), b.Name()) })
	opts := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true,
		HighestModSeq: s.notify.spec.used&evFlagChange != 0}
	for _, f := range folders {
		s.writeStatus(s.status(f, opts), opts, false)
	}
}

// writeMailboxEvents writes a LIST response for each folder list change the filters ask for:
// created, renamed (with OLDNAME, RFC 5465 5.4), deleted (\NonExistent) and (un)subscribed.
func (s *session) writeMailboxEvents(n *notifier, events []store.MailboxEvent) {
	var subs []string
	if n.spec.needsSubscriptions() {
		subs, _ = s.box.Subscriptions()
	}
	wanted := func(ev notifyEvents, names ...string) bool {
		for _, name := range names {
			if name != "" && n.spec.eventsFor(name, subs)&ev != 0 {
				return true
			}
		}
		return false
	}
	for _, ev := range events {
		attrs, extra := []wire.Value{}, []wire.Value(nil)
		switch ev.Kind {
		case store.FolderCreated:
		case store.FolderDeleted:
			attrs = append(attrs, wire.Atom(`\NonExistent`))
		case store.FolderRenamed:
			extra = append(extra, wire.List(wire.String("OLDNAME"), wire.List(s.mailboxValue(ev.OldName))))
		case store.FolderSubscribed:
			attrs = append(attrs, wire.Atom(`\Subscribed`))
		}
		want := evMailboxName
		if ev.Kind == store.FolderSubscribed || ev.Kind == store.FolderUnsubscribed {
			want = evSubscriptionChange
		}
		if !wanted(want, ev.Name, ev.OldName) {
			continue
		}
		vals := []wire.Value{wire.Atom("LIST"), wire.List(attrs...), wire.String(string(store.Delimiter)), s.mailboxValue(ev.Name)}
		s.w.Untagged(append(vals, extra...)...)
	}
}

// cmdNotify is NOTIFY NONE and NOTIFY SET. A new SET replaces the last one.
func (s *session) cmdNotify(_ string, args []wire.Value, _ bool) (reply, error) {
	if len(args) == 0 || args[0].Kind != wire.KindAtom {
		return reply{}, badArg("NOTIFY takes NONE, or SET and event groups such as (personal (MessageNew MessageExpunge))")
	}
	var spec notifySpec
	switch strings.ToUpper(args[0].Str) {
	case "NONE":
		if len(args) > 1 {
			return reply{}, badArg("NOTIFY NONE takes no arguments")
		}
	case "SET":
		var err error
		if spec, err = parseNotifySet(args[1:], s.utf8Names()); err != nil {
			return reply{}, err
		}
	default:
		return reply{}, badArg("NOTIFY takes NONE or SET, not %q", clip(args[0].Str, 20))
	}
	if bad := spec.used & evUnsupported; bad != 0 {
		// Events the server cannot deliver fail the whole command, naming them (RFC 5465 3.1).
		var names []string
		for i, name := range notifyEventNames {
			if bad&(1<<i) != 0 {
				names = append(names, name)
			}
		}
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCode("BADEVENT (" + strings.Join(names, " ") + ")"),
			Text: "kubemail has no annotations or metadata; ask for MessageNew, MessageExpunge, FlagChange, MailboxName or SubscriptionChange"}
	}
	if s.notify != nil {
		s.notify.close()
		s.notify = nil
	}
	s.newFetch = spec.newFetch
	if len(spec.filters) > 0 {
		s.notify = s.startNotifier(spec)
		if spec.status {
			s.writeInitialStatus()
		}
	}
	return reply{}, nil
}

// parseNotifySet reads NOTIFY SET's arguments: an optional STATUS, then event groups, each
// (filter [mailboxes] events) where events is NONE or a list. The rules are Dovecot's, which
// follow RFC 5465 6: one SELECTED or SELECTED-DELAYED group, whose MessageNew and
// MessageExpunge go together and whose FlagChange needs them; MessageNew may carry fetch items
// there only.
func parseNotifySet(args []wire.Value, utf8 bool) (notifySpec, error) {
	var spec notifySpec
	if len(args) > 0 && args[0].Kind == wire.KindAtom && strings.EqualFold(args[0].Str, "STATUS") {
		spec.status, args = true, args[1:]
	}
	if len(args) == 0 {
		return spec, badArg("NOTIFY SET needs at least one event group, such as (personal (MessageNew MessageExpunge))")
	}
	selectedSeen := false
	for _, group := range args {
		if group.Kind != wire.KindList || len(group.List) < 2 || group.List[0].Kind != wire.KindAtom {
			return spec, badArg("NOTIFY SET's event groups are (filter events), such as (personal (MessageNew MessageExpunge))")
		}
		kind, rest := strings.ToUpper(group.List[0].Str), group.List[1:]
		switch kind {
		case "SELECTED", "SELECTED-DELAYED":
			if selectedSeen {
				return spec, badArg("NOTIFY SET names the selected mailbox twice")
			}
			selectedSeen = true
			ev, fa, err := parseSelectedEvents(rest)
			if err != nil {
				return spec, err
			}
			spec.selected, spec.used, spec.newFetch = ev, spec.used|ev, fa
			continue
		case "INBOXES":
			// Which folders receive mail depends on rules this session does not see; like
			// Dovecot, every personal folder counts.
			kind = "PERSONAL"
		case "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES":
		default:
			return spec, badArg("Unknown NOTIFY filter %q: use SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or MAILBOXES", clip(group.List[0].Str, 30))
		}
		f, err := parseNotifyFilter(kind, rest, utf8)
		if err != nil {
			return spec, err
		}
		spec.used |= f.events
		if f.events != 0 { // NONE is the default: no group needed
			spec.filters = append(spec.filters, f)
		}
	}
	return spec, nil
}

// parseNotifyFilter reads the rest of an event group for folders other than the selected one:
// SUBTREE and MAILBOXES take a folder or a list of them first.
func parseNotifyFilter(kind string, rest []wire.Value, utf8 bool) (notifyFilter, error) {
	f := notifyFilter{kind: kind}
	if kind == "SUBTREE" || kind == "MAILBOXES" {
		var err error
		if f.names, err = parseNotifyMailboxes(rest[0], utf8); err != nil {
			return f, err
		}
		rest = rest[1:]
	}
	if len(rest) != 1 {
		return f, badArg("A NOTIFY %s group ends with its events: NONE or a list such as (MessageNew MessageExpunge)", kind)
	}
	if rest[0].Kind == wire.KindAtom && strings.EqualFold(rest[0].Str, "NONE") {
		return f, nil
	}
	if rest[0].Kind != wire.KindList || len(rest[0].List) == 0 {
		return f, badArg("A NOTIFY %s group's events are NONE or a list such as (MessageNew MessageExpunge)", kind)
	}
	for _, v := range rest[0].List {
		ev, err := parseNotifyEvent(v)
		if err != nil {
			return f, err
		}
		f.events |= ev
	}
	return f, nil
}

// parseNotifyMailboxes reads SUBTREE's or MAILBOXES' folders: one name or a list of names.
func parseNotifyMailboxes(v wire.Value, utf8 bool) ([]string, error) {
	vals := []wire.Value{v}
	if v.Kind == wire.KindList {
		if len(v.List) == 0 {
			return nil, badArg("NOTIFY SUBTREE and MAILBOXES need at least one mailbox")
		}
		vals = v.List
	}
	names := make([]string, 0, len(vals))
	for _, mv := range vals {
		name, err := parseMailbox(mv, utf8)
		if err != nil {
			return nil, err
		}
		names = append(names, store.CanonicalFolderName(strings.TrimSuffix(name, string(store.Delimiter))))
	}
	return names, nil
}

// parseSelectedEvents reads the events of the SELECTED group, and MessageNew's fetch items.
// Those never mark a message \Seen: a body section is read as if with .PEEK, as nothing the
// client did asked for the message to be read.
func parseSelectedEvents(rest []wire.Value) (notifyEvents, *fetchArgs, error) {
	if len(rest) != 1 {
		return 0, nil, badArg("The NOTIFY SELECTED group is (selected events)")
	}
	if rest[0].Kind == wire.KindAtom && strings.EqualFold(rest[0].Str, "NONE") {
		return 0, nil, nil
	}
	if rest[0].Kind != wire.KindList || len(rest[0].List) == 0 {
		return 0, nil, badArg("The NOTIFY SELECTED group's events are NONE or a list such as (MessageNew MessageExpunge)")
	}
	var events notifyEvents
	var fa *fetchArgs
	list := rest[0].List
	for i := 0; i < len(list); i++ {
		ev, err := parseNotifyEvent(list[i])
		if err != nil {
			return 0, nil, err
		}
		events |= ev
		if ev == evMessageNew && i+1 < len(list) && list[i+1].Kind == wire.KindList {
			i++
			fa = &fetchArgs{Options: &imap.FetchOptions{}}
			if err := fa.readItems(list[i]); err != nil {
				return 0, nil, err
			}
			for _, bs := range fa.Options.BodySection {
				bs.Peek = true
			}
		}
	}
	if newOrGone := events & (evMessageNew | evMessageExpunge); newOrGone != 0 && newOrGone != evMessageNew|evMessageExpunge {
		return 0, nil, badArg("NOTIFY SELECTED: MessageNew and MessageExpunge go together (RFC 5465 5.1)")
	}
	if events&(evFlagChange|evAnnotationChange) != 0 && events&evMessageExpunge == 0 {
		return 0, nil, badArg("NOTIFY SELECTED: FlagChange needs MessageNew and MessageExpunge (RFC 5465 5.1)")
	}
	return events, fa, nil
}

// parseNotifyEvent reads one event name.
func parseNotifyEvent(v wire.Value) (notifyEvents, error) {
	if v.Kind == wire.KindAtom {
		for i, name := range notifyEventNames {
			if strings.EqualFold(v.Str, name) {
				return 1 << i, nil
			}
		}
	}
	return 0, badArg("Unknown NOTIFY event %q: use %s", clip(v.Str, 30), strings.Join(notifyEventNames[:5], ", "))
}
