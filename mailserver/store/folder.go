package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// Message is what the index knows of one stored message.
type Message struct {
	UID          uint32
	Size         int64 // exact octets, CRLF line endings
	ModSeq       uint64
	InternalDate time.Time
	Flags        []string // sorted, unique; shared, never modify
	file         string   // entry name in cur/
}

// MailboxID is the folder's object id (RFC 8474): it stays when the folder is renamed, and a
// folder deleted and created again gets a new one.
func (f *Folder) MailboxID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mailboxID
}

// EmailID is the message's object id (RFC 8474), kept by copies and moves. A message stored
// before ids were kept gets one made of its file name, stable for that file.
func (m Message) EmailID() string {
	if id := nameField(m.file, "E"); id != "" {
		return id
	}
	base, _ := splitInfo(m.file)
	base, _, _ = strings.Cut(base, ",")
	return "M" + strings.ReplaceAll(base, ".", "-")
}

// SaveDate is when the message was stored in its folder (RFC 8514); zero when unknown (stored
// before save dates were kept).
func (m Message) SaveDate() time.Time {
	n, err := strconv.ParseInt(nameField(m.file, "T"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

// nameField is the value of ",key=" in a message file name's base, "" when absent.
func nameField(file, key string) string {
	base, _ := splitInfo(file)
	_, rest, ok := strings.Cut(base, ",")
	for ok {
		var field string
		field, rest, ok = strings.Cut(rest, ",")
		if v, found := strings.CutPrefix(field, key+"="); found {
			return v
		}
	}
	return ""
}

// FolderStatus is a consistent view of a folder's counters.
type FolderStatus struct {
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	Messages      int
	Size          int64
	Unseen        int
}

// EventKind says what changed in a folder.
type EventKind int

const (
	// EventNew: a message was added.
	EventNew EventKind = iota
	// EventFlags: a message's flags changed.
	EventFlags
	// EventExpunge: a message was removed.
	EventExpunge
)

// Event is one change in a folder, delivered to watchers in the order the changes happened.
type Event struct {
	Kind    EventKind
	Message Message
}

// FlagOp says how SetFlags combines the given flags with the current ones.
type FlagOp int

const (
	FlagsAdd FlagOp = iota
	FlagsRemove
	FlagsReplace
)

// ErrNoSuchMessage is returned for a UID the folder does not hold.
var ErrNoSuchMessage = errors.New("no such message")

// Folder is one IMAP mailbox: a cur/ directory of message files and a journal.
type Folder struct {
	mbox *Mailbox
	name string
	dir  string
	id   uint64 // unique in the process; names the folder in the store's header cache

	mu            sync.RWMutex
	uidValidity   uint32
	uidNextFloor  uint32 // persisted in meta; uidNext never goes below it
	mailboxID     string // persisted in meta: RFC 8474's MAILBOXID, kept across renames
	uidNext       uint32
	highestModSeq uint64
	msgs          []Message // sorted by UID
	size          int64
	journal       *os.File
	journalLines  int
	watchers      map[int]func(Event)
	nextWatcher   int
	deleted       bool
}

// Name is the folder's name ("INBOX", "Archive/2026").
func (f *Folder) Name() string { return f.name }

const (
	metaFile    = "meta"
	journalFile = "journal"
)

// openFolder loads (creating if asked) the folder stored in dir.
func openFolder(m *Mailbox, name, dir string, create bool) (*Folder, error) {
	f := &Folder{mbox: m, name: name, dir: dir, id: m.store.folderIDs.Add(1), watchers: map[int]func(Event){}}
	if create {
		for _, sub := range []string{"cur", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				return nil, err
			}
		}
	}
	if err := f.load(); err != nil {
		return nil, fmt.Errorf("folder %q: %w", name, err)
	}
	return f, nil
}

func (f *Folder) load() error {
	if err := f.readMeta(); err != nil {
		return err
	}
	// Anything in tmp/ is a delivery that never finished (a crash before its rename): the
	// client got no 250 for it.
	if entries, err := os.ReadDir(filepath.Join(f.dir, "tmp")); err == nil {
		for _, e := range entries {
			os.Remove(filepath.Join(f.dir, "tmp", e.Name()))
		}
	}
	fromJournal, maxJournalUID, err := f.replayJournal()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(f.dir, "cur"))
	if err != nil {
		return err
	}
	rebuilt := false
	var maxUID uint32
	for _, e := range entries {
		msg, ok := parseMessageFile(e.Name())
		if !ok {
			continue // not ours (editor backups, stray files)
		}
		if j, found := fromJournal[msg.UID]; found {
			// The file name is the truth for standard flags (it is renamed before the journal is
			// written); keywords exist only in the journal.
			flags := slices.Clone(msg.Flags)
			for _, fl := range j.Flags {
				if !isStandardFlag(fl) {
					flags = append(flags, fl)
				}
			}
			if !slices.Equal(normalizeFlags(flags), j.Flags) {
				rebuilt = true
			}
			msg.Flags, msg.ModSeq = normalizeFlags(flags), j.ModSeq
		} else {
			f.highestModSeq++
			msg.ModSeq = f.highestModSeq
			rebuilt = true
		}
		delete(fromJournal, msg.UID)
		f.msgs = append(f.msgs, msg)
		f.size += msg.Size
		maxUID = max(maxUID, msg.UID)
	}
	if len(fromJournal) > 0 {
		rebuilt = true // journal entries whose files are gone
	}
	sort.Slice(f.msgs, func(i, j int) bool { return f.msgs[i].UID < f.msgs[j].UID })
	f.uidNext = max(f.uidNextFloor, maxJournalUID+1, maxUID+1, 1)
	if rebuilt || f.journalLines > 2*len(f.msgs)+1000 {
		return f.compactJournal()
	}
	return f.openJournal()
}

func (f *Folder) readMeta() error {
	data, err := os.ReadFile(filepath.Join(f.dir, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		// A new folder, or one whose meta file was lost: a fresh UIDVALIDITY tells clients to
		// forget what they cached.
		f.uidValidity = f.mbox.nextUIDValidity()
		return f.writeMeta()
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, perr := strconv.ParseUint(v, 10, 32)
		switch {
		case k == "mailboxid" && v != "":
			f.mailboxID = v
		case k == "uidvalidity" && perr == nil:
			f.uidValidity = uint32(n)
		case k == "uidnext" && perr == nil:
			f.uidNextFloor = uint32(n)
		}
	}
	if f.uidValidity == 0 || f.mailboxID == "" {
		// A folder from before MAILBOXIDs were kept gets one now, kept from then on.
		if f.uidValidity == 0 {
			f.uidValidity = f.mbox.nextUIDValidity()
		}
		return f.writeMeta()
	}
	return nil
}

func (f *Folder) writeMeta() error {
	if f.mailboxID == "" {
		f.mailboxID = "F" + randomToken(9)
	}
	data := fmt.Sprintf("uidvalidity %d\nuidnext %d\nmailboxid %s\n", f.uidValidity, f.uidNextFloor, f.mailboxID)
	return durable.WriteFile(filepath.Join(f.dir, metaFile), []byte(data), 0o600)
}

// Maildir info letters for the standard flags, kept in the file name so they survive the loss
// of the journal (keywords live in the journal only).
var maildirFlags = []struct {
	letter byte
	flag   string
}{{'D', `\Draft`}, {'F', `\Flagged`}, {'R', `\Answered`}, {'S', `\Seen`}, {'T', `\Deleted`}}

// messageFileName is "<uid>.<unixnano>.<token>,S=<size>,E=<emailid>,T=<saved>:2,<letters>":
// the internal date in nanoseconds, the size in octets, the message's object id (RFC 8474's
// EMAILID, the same for its copies) and when it was stored in this folder (RFC 8514's
// SAVEDATE), in Unix seconds. Files stored before E= and T= existed lack them.
func messageFileName(base string, flags []string) string {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString(":2,")
	for _, mf := range maildirFlags {
		if slices.Contains(flags, mf.flag) {
			b.WriteByte(mf.letter)
		}
	}
	return b.String()
}

// splitInfo separates a file name's Maildir info (":2,<letters>") and returns the standard flags
// it names.
func splitInfo(name string) (base string, flags []string) {
	base, info, ok := strings.Cut(name, ":2,")
	if !ok {
		return name, nil
	}
	for _, mf := range maildirFlags {
		if strings.IndexByte(info, mf.letter) >= 0 {
			flags = append(flags, mf.flag)
		}
	}
	return base, flags
}

// isStandardFlag reports whether the file name carries fl.
func isStandardFlag(fl string) bool {
	for _, mf := range maildirFlags {
		if mf.flag == fl {
			return true
		}
	}
	return false
}

// parseMessageFile reads a stored message's file name (see messageFileName).
func parseMessageFile(name string) (Message, bool) {
	base, fileFlags := splitInfo(name)
	base, sizeStr, ok := strings.Cut(base, ",S=")
	if !ok {
		return Message{}, false
	}
	sizeStr, _, _ = strings.Cut(sizeStr, ",")
	parts := strings.SplitN(base, ".", 3)
	if len(parts) != 3 {
		return Message{}, false
	}
	uid, err1 := strconv.ParseUint(parts[0], 10, 32)
	nano, err2 := strconv.ParseInt(parts[1], 10, 64)
	size, err3 := strconv.ParseInt(sizeStr, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || uid == 0 || size < 0 {
		return Message{}, false
	}
	return Message{UID: uint32(uid), Size: size, InternalDate: time.Unix(0, nano), Flags: normalizeFlags(fileFlags), file: name}, true
}

// Journal lines:
//
//   - <uid> <modseq> <file> [flag...]   a message was added
//     f <uid> <modseq> [flag...]          its flags changed
//   - <uid> <modseq>                    it was expunged
//     = 0 <modseq>                        the highest mod-sequence so far (after compaction)
//
// A torn last line (a crash mid-write) is ignored; the files fill in what it lacked.
func (f *Folder) replayJournal() (map[uint32]Message, uint32, error) {
	msgs := map[uint32]Message{}
	var maxUID uint32
	data, err := os.ReadFile(filepath.Join(f.dir, journalFile))
	if errors.Is(err, os.ErrNotExist) {
		return msgs, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		fields := strings.Fields(string(line))
		if len(fields) < 3 {
			continue
		}
		uid64, err1 := strconv.ParseUint(fields[1], 10, 32)
		modseq, err2 := strconv.ParseUint(fields[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		uid := uint32(uid64)
		f.journalLines++
		f.highestModSeq = max(f.highestModSeq, modseq)
		maxUID = max(maxUID, uid)
		switch fields[0] {
		case "+":
			if len(fields) < 4 {
				continue
			}
			msgs[uid] = Message{UID: uid, ModSeq: modseq, file: fields[3], Flags: normalizeFlags(fields[4:])}
		case "f":
			if m, ok := msgs[uid]; ok {
				flags := fields[3:]
				if len(flags) > 0 && strings.Contains(flags[0], ",S=") {
					m.file, flags = flags[0], flags[1:]
				}
				m.Flags, m.ModSeq = normalizeFlags(flags), modseq
				msgs[uid] = m
			}
		case "-":
			delete(msgs, uid)
		}
	}
	return msgs, maxUID, nil
}

func (f *Folder) openJournal() error {
	j, err := os.OpenFile(filepath.Join(f.dir, journalFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	f.journal = j
	return nil
}

// compactJournal rewrites the journal to one line per message.
func (f *Folder) compactJournal() error {
	if f.journal != nil {
		f.journal.Close()
		f.journal = nil
	}
	var b bytes.Buffer
	// The highest mod-sequence first: it may belong to a change (an expunge) whose line goes,
	// and it must never go back (RFC 7162 clients compare it). Replay reads it like any line's
	// mod-sequence; UID 0 names no message.
	fmt.Fprintf(&b, "= 0 %d\n", f.highestModSeq)
	for _, m := range f.msgs {
		b.WriteString(addLine(m))
	}
	if err := durable.WriteFile(filepath.Join(f.dir, journalFile), b.Bytes(), 0o600); err != nil {
		return err
	}
	f.journalLines = len(f.msgs)
	return f.openJournal()
}

func addLine(m Message) string {
	return fmt.Sprintf("+ %d %d %s%s\n", m.UID, m.ModSeq, m.file, flagSuffix(m.Flags))
}

func flagSuffix(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return " " + strings.Join(flags, " ")
}

// journalWrite appends lines. It does not fsync: the files are the durable truth, and a
// process crash keeps what was written; only a power loss can lose the last flag changes.
func (f *Folder) journalWrite(lines string) error {
	if f.journal == nil {
		return errors.New("folder is closed")
	}
	if _, err := f.journal.WriteString(lines); err != nil {
		return fmt.Errorf("writing the journal of %q: %w", f.name, err)
	}
	f.journalLines += strings.Count(lines, "\n")
	if f.journalLines > 2*len(f.msgs)+1000 {
		return f.compactJournal()
	}
	return nil
}

// normalizeFlags sorts and de-duplicates flags, dropping invalid ones.
func normalizeFlags(flags []string) []string {
	if len(flags) == 0 {
		return nil
	}
	out := make([]string, 0, len(flags))
	for _, fl := range flags {
		if ValidFlag(fl) {
			out = append(out, fl)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ValidFlag reports whether s can be stored as a flag: an IMAP atom, optionally with a leading
// backslash, at most 128 bytes.
func ValidFlag(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"]`, c) >= 0 || (c == '\\' && i > 0) {
			return false
		}
	}
	return s != `\`
}

// Append stores a message in the folder and returns it once it is durable. Bare LF line
// endings are stored as CRLF.
func (f *Folder) Append(r io.Reader, flags []string, date time.Time) (Message, error) {
	return f.appendFrom(r, flags, date, copyCRLF)
}

// AppendExact stores a message byte for byte: IMAP's binary APPEND (RFC 3516) may carry bare
// LF and NUL, and its BINARY.SIZE must be what was sent.
func (f *Folder) AppendExact(r io.Reader, flags []string, date time.Time) (Message, error) {
	return f.appendFrom(r, flags, date, func(w *bufio.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) })
}

func (f *Folder) appendFrom(r io.Reader, flags []string, date time.Time, copyFn func(*bufio.Writer, io.Reader) (int64, error)) (Message, error) {
	tmpPath := filepath.Join(f.dir, "tmp", strconv.FormatInt(time.Now().UnixNano(), 10)+"."+randomToken(6))
	var size int64
	err := durable.WriteNew(tmpPath, 0o600, func(w *bufio.Writer) error {
		var err error
		size, err = copyFn(w, r)
		return err
	})
	if err != nil {
		return Message{}, fmt.Errorf("storing a message in %q: %w", f.name, err)
	}
	return f.commit(tmpPath, size, flags, date, "")
}

// commit moves a durable file from tmp/ into cur/ under the next UID and makes the rename
// durable before returning.
func (f *Folder) commit(tmpPath string, size int64, flags []string, date time.Time, emailID string) (Message, error) {
	now := time.Now()
	if date.IsZero() {
		date = now
	}
	if emailID == "" {
		emailID = "M" + randomToken(9)
	}
	f.mu.Lock()
	if f.deleted {
		f.mu.Unlock()
		os.Remove(tmpPath)
		return Message{}, fmt.Errorf("folder %q was deleted", f.name)
	}
	uid := f.uidNext
	flags = normalizeFlags(flags)
	name := messageFileName(fmt.Sprintf("%d.%d.%s,S=%d,E=%s,T=%d", uid, date.UnixNano(), randomToken(4), size, emailID, now.Unix()), flags)
	if err := os.Rename(tmpPath, filepath.Join(f.dir, "cur", name)); err != nil {
		f.mu.Unlock()
		os.Remove(tmpPath)
		return Message{}, fmt.Errorf("storing a message in %q: %w", f.name, err)
	}
	f.uidNext++
	f.highestModSeq++
	msg := Message{UID: uid, Size: size, ModSeq: f.highestModSeq, InternalDate: time.Unix(0, date.UnixNano()),
		Flags: flags, file: name}
	f.msgs = append(f.msgs, msg)
	f.size += size
	f.mbox.usage.Add(size)
	f.mbox.count.Add(1)
	jerr := f.journalWrite(addLine(msg))
	f.notify(Event{Kind: EventNew, Message: msg})
	f.mu.Unlock()
	if err := durable.SyncDir(filepath.Join(f.dir, "cur")); err != nil {
		return Message{}, fmt.Errorf("storing a message in %q: %w", f.name, err)
	}
	if jerr != nil {
		f.mbox.store.log.Warn("journal write failed; the folder index will be rebuilt from its files", "folder", f.name, "err", jerr)
	}
	return msg, nil
}

// UIDValidity returns the folder's UIDVALIDITY.
func (f *Folder) UIDValidity() uint32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.uidValidity
}

// UIDNext returns the UID the next message will get.
func (f *Folder) UIDNext() uint32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.uidNext
}

// HighestModSeq returns the folder's highest mod-sequence (RFC 7162).
func (f *Folder) HighestModSeq() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.highestModSeq
}

// Status returns the folder's counters; it reads every message to count the unseen, which the
// accessors above do not.
func (f *Folder) Status() FolderStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := FolderStatus{UIDValidity: f.uidValidity, UIDNext: f.uidNext, HighestModSeq: f.highestModSeq,
		Messages: len(f.msgs), Size: f.size}
	for _, m := range f.msgs {
		if !slices.Contains(m.Flags, `\Seen`) {
			st.Unseen++
		}
	}
	return st
}

// Messages returns a copy of the index, sorted by UID, with the status it belongs to.
func (f *Folder) Messages() ([]Message, FolderStatus) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := FolderStatus{UIDValidity: f.uidValidity, UIDNext: f.uidNext, HighestModSeq: f.highestModSeq,
		Messages: len(f.msgs), Size: f.size}
	return slices.Clone(f.msgs), st
}

// Snapshot returns the index and registers fn to receive every later change, atomically: no
// change is missed or seen twice. fn runs with the folder locked and must not block or call
// back into the folder. cancel stops the events.
func (f *Folder) Snapshot(fn func(Event)) (msgs []Message, st FolderStatus, cancel func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st = FolderStatus{UIDValidity: f.uidValidity, UIDNext: f.uidNext, HighestModSeq: f.highestModSeq,
		Messages: len(f.msgs), Size: f.size}
	return slices.Clone(f.msgs), st, f.watchLocked(fn)
}

// View calls fn with the index, sorted by UID, under the folder's read lock, so a reader
// need not copy it. fn must not modify or keep msgs, must not call into the folder, and should
// be quick: changes wait for it.
func (f *Folder) View(fn func(msgs []Message)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.msgs)
}

func (f *Folder) notify(ev Event) {
	for _, fn := range f.watchers {
		fn(ev)
	}
}

func (f *Folder) find(uid uint32) (int, bool) {
	return sort.Find(len(f.msgs), func(i int) int {
		switch {
		case uid < f.msgs[i].UID:
			return -1
		case uid > f.msgs[i].UID:
			return 1
		}
		return 0
	})
}

// Open returns the message's content.
func (f *Folder) Open(uid uint32) (*os.File, error) {
	// Opened under the lock: a flag change renames the file.
	f.mu.RLock()
	defer f.mu.RUnlock()
	i, ok := f.find(uid)
	if !ok {
		return nil, ErrNoSuchMessage
	}
	fh, err := os.Open(filepath.Join(f.dir, "cur", f.msgs[i].file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSuchMessage // expunged meanwhile
	}
	return fh, err
}

// SetFlags changes the flags of the given messages and returns the messages that changed.
func (f *Folder) SetFlags(uids []uint32, op FlagOp, flags []string) ([]Message, error) {
	changed, _, err := f.setFlags(uids, op, flags, false, 0)
	return changed, err
}

// SetFlagsUnchangedSince is SetFlags for the messages whose mod-sequence is still at most
// since (IMAP's STORE UNCHANGEDSINCE, RFC 7162 3.1.3), decided under the folder's lock so that
// no other change slips in between; the UIDs of the others come back in modified.
func (f *Folder) SetFlagsUnchangedSince(uids []uint32, op FlagOp, flags []string, since uint64) (changed []Message, modified []uint32, err error) {
	return f.setFlags(uids, op, flags, true, since)
}

func (f *Folder) setFlags(uids []uint32, op FlagOp, flags []string, conditional bool, since uint64) ([]Message, []uint32, error) {
	flags = normalizeFlags(flags)
	f.mu.Lock()
	defer f.mu.Unlock()
	var changed []Message
	var modified []uint32
	var lines strings.Builder
	for _, uid := range uids {
		i, ok := f.find(uid)
		if !ok {
			continue
		}
		m := &f.msgs[i]
		if conditional && m.ModSeq > since {
			modified = append(modified, uid)
			continue
		}
		var next []string
		switch op {
		case FlagsAdd:
			next = normalizeFlags(append(slices.Clone(m.Flags), flags...))
		case FlagsRemove:
			next = slices.DeleteFunc(slices.Clone(m.Flags), func(s string) bool { return slices.Contains(flags, s) })
		case FlagsReplace:
			next = flags
		}
		if slices.Equal(next, m.Flags) {
			continue
		}
		base, _ := splitInfo(m.file)
		if newFile := messageFileName(base, next); newFile != m.file {
			if err := os.Rename(filepath.Join(f.dir, "cur", m.file), filepath.Join(f.dir, "cur", newFile)); err != nil {
				if lines.Len() > 0 {
					f.journalWrite(lines.String())
				}
				return changed, modified, fmt.Errorf("setting flags of UID %d in %q: %w", uid, f.name, err)
			}
			m.file = newFile
		}
		f.highestModSeq++
		m.Flags, m.ModSeq = next, f.highestModSeq
		fmt.Fprintf(&lines, "f %d %d %s%s\n", m.UID, m.ModSeq, m.file, flagSuffix(m.Flags))
		changed = append(changed, *m)
		f.notify(Event{Kind: EventFlags, Message: *m})
	}
	if lines.Len() > 0 {
		if err := f.journalWrite(lines.String()); err != nil {
			return changed, modified, err
		}
	}
	return changed, modified, nil
}

// Expunge removes the given messages and returns the UIDs it removed.
func (f *Folder) Expunge(uids []uint32) ([]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var removed []uint32
	var lines strings.Builder
	var firstErr error
	for _, uid := range uids {
		i, ok := f.find(uid)
		if !ok {
			continue
		}
		m := f.msgs[i]
		if err := os.Remove(filepath.Join(f.dir, "cur", m.file)); err != nil && !errors.Is(err, os.ErrNotExist) {
			if firstErr == nil {
				firstErr = fmt.Errorf("expunging UID %d from %q: %w", uid, f.name, err)
			}
			continue
		}
		f.msgs = slices.Delete(f.msgs, i, i+1)
		f.size -= m.Size
		f.mbox.usage.Add(-m.Size)
		f.mbox.count.Add(-1)
		f.highestModSeq++
		fmt.Fprintf(&lines, "- %d %d\n", uid, f.highestModSeq)
		removed = append(removed, uid)
		f.notify(Event{Kind: EventExpunge, Message: m})
	}
	if len(removed) == 0 {
		return nil, firstErr
	}
	f.mbox.store.headers.drop(f.id, removed)
	// UIDs are never reused: once the message with the highest UID is gone, only the meta file
	// remembers how far UIDs went.
	if f.uidNextFloor < f.uidNext && (len(f.msgs) == 0 || f.msgs[len(f.msgs)-1].UID < f.uidNext-1) {
		f.uidNextFloor = f.uidNext
		if err := f.writeMeta(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := f.journalWrite(lines.String()); err != nil && firstErr == nil {
		firstErr = err
	}
	if err := durable.SyncDir(filepath.Join(f.dir, "cur")); err != nil && firstErr == nil {
		firstErr = err
	}
	return removed, firstErr
}

// CopyTo copies messages into dst (which may be this folder) keeping flags and internal dates,
// and returns the pairs of source and destination UIDs in order.
func (f *Folder) CopyTo(dst *Folder, uids []uint32) (src, dest []uint32, err error) {
	for _, uid := range uids {
		tmp := filepath.Join(dst.dir, "tmp", strconv.FormatInt(time.Now().UnixNano(), 10)+"."+randomToken(6))
		// A hard link shares the durable content (files are never modified in place). It is
		// made under the source's read lock because a flag change renames the file; the lock is
		// released before dst is locked, so copies in opposite directions cannot deadlock.
		f.mu.RLock()
		i, ok := f.find(uid)
		var m Message
		var err error
		if ok {
			m = f.msgs[i]
			err = os.Link(filepath.Join(f.dir, "cur", m.file), tmp)
		}
		f.mu.RUnlock()
		if !ok {
			continue // expunged meanwhile
		}
		if err != nil {
			return src, dest, fmt.Errorf("copying UID %d to %q: %w", uid, dst.name, err)
		}
		copied, err := dst.commit(tmp, m.Size, m.Flags, m.InternalDate, m.EmailID())
		if err != nil {
			return src, dest, err
		}
		src = append(src, uid)
		dest = append(dest, copied.UID)
	}
	return src, dest, nil
}

func (f *Folder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.journal != nil {
		f.journal.Close()
		f.journal = nil
	}
}
