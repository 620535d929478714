package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// Mailbox is one account's mail: its folders and their total size.
type Mailbox struct {
	store   *Store
	address string
	dir     string

	mu      sync.Mutex // guards folders and folder creation, deletion and renaming
	folders map[string]*Folder

	usage atomic.Int64
	count atomic.Int64

	lastUIDValidity atomic.Uint32

	watchers mailboxWatchers
}

// nextUIDValidity returns a UIDVALIDITY for a new folder: the current time in seconds, but
// always above any value this mailbox handed out before, so a folder deleted and re-created
// within a second still tells clients to drop their caches.
func (m *Mailbox) nextUIDValidity() uint32 {
	for {
		last := m.lastUIDValidity.Load()
		v := max(uint32(time.Now().Unix()), last+1)
		if m.lastUIDValidity.CompareAndSwap(last, v) {
			return v
		}
	}
}

// Errors of folder management.
var (
	ErrFolderExists   = errors.New("folder already exists")
	ErrNoSuchFolder   = errors.New("no such folder")
	ErrInboxProtected = errors.New("INBOX cannot be deleted or renamed away")
)

// Address is the mailbox's address (lowercase).
func (m *Mailbox) Address() string { return m.address }

// Usage is the total size of the stored messages in bytes.
func (m *Mailbox) Usage() int64 { return m.usage.Load() }

// Count is the number of stored messages.
func (m *Mailbox) Count() int64 { return m.count.Load() }

func openMailbox(s *Store, address, dir string) (*Mailbox, error) {
	m := &Mailbox{store: s, address: address, dir: dir, folders: map[string]*Folder{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		// Dot entries are never folders (encodeName escapes a leading dot); ".deleted-*" is a
		// deletion a crash interrupted.
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			if strings.HasPrefix(e.Name(), ".deleted-") {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
			continue
		}
		name, err := decodeName(e.Name())
		if err != nil || ValidateFolderName(name) != nil {
			continue
		}
		f, err := openFolder(m, name, filepath.Join(dir, e.Name()), false)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", address, err)
		}
		m.folders[name] = f
		if f.uidValidity > m.lastUIDValidity.Load() {
			m.lastUIDValidity.Store(f.uidValidity)
		}
		m.usage.Add(f.size)
		m.count.Add(int64(len(f.msgs)))
	}
	for _, sf := range standardFolders {
		if _, ok := m.folders[sf.Name]; !ok {
			if _, err := m.createFolderLocked(sf.Name); err != nil {
				return nil, fmt.Errorf("mailbox %s: %w", address, err)
			}
		}
	}
	return m, nil
}

// Folder returns the named folder.
func (m *Mailbox) Folder(name string) (*Folder, error) {
	name = CanonicalFolderName(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.folders[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchFolder, name)
	}
	return f, nil
}

// Inbox returns the INBOX folder.
func (m *Mailbox) Inbox() *Folder {
	f, _ := m.Folder("INBOX")
	return f
}

// FolderInfo describes a folder for listing.
type FolderInfo struct {
	Name       string
	SpecialUse string // RFC 6154 attribute such as \Sent, or empty
}

// Folders lists the folders sorted by name, INBOX first.
func (m *Mailbox) Folders() []FolderInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]FolderInfo, 0, len(m.folders))
	for name := range m.folders {
		out = append(out, FolderInfo{Name: name, SpecialUse: specialUse(name)})
	}
	slices.SortFunc(out, func(a, b FolderInfo) int {
		if a.Name == "INBOX" {
			return -1
		}
		if b.Name == "INBOX" {
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func specialUse(name string) string {
	for _, sf := range standardFolders {
		if sf.Name == name {
			return sf.SpecialUse
		}
	}
	return ""
}

// CreateFolder creates a folder.
func (m *Mailbox) CreateFolder(name string) (*Folder, error) {
	if err := ValidateFolderName(name); err != nil {
		return nil, err
	}
	name = CanonicalFolderName(name)
	m.mu.Lock()
	if _, ok := m.folders[name]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrFolderExists, name)
	}
	f, err := m.createFolderLocked(name)
	m.mu.Unlock()
	if err == nil {
		m.tell(MailboxEvent{Kind: FolderCreated, Name: name})
	}
	return f, err
}

func (m *Mailbox) createFolderLocked(name string) (*Folder, error) {
	f, err := openFolder(m, name, filepath.Join(m.dir, encodeName(name)), true)
	if err != nil {
		return nil, err
	}
	if err := durable.SyncDir(m.dir); err != nil {
		return nil, err
	}
	m.folders[name] = f
	return f, nil
}

// DeleteFolder removes a folder and its messages. INBOX cannot be deleted.
func (m *Mailbox) DeleteFolder(name string) error {
	name = CanonicalFolderName(name)
	if name == "INBOX" {
		return ErrInboxProtected
	}
	if err := m.deleteFolder(name); err != nil {
		return err
	}
	m.tell(MailboxEvent{Kind: FolderDeleted, Name: name})
	return nil
}

func (m *Mailbox) deleteFolder(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.folders[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoSuchFolder, name)
	}
	f.mu.Lock()
	m.usage.Add(-f.size)
	m.count.Add(-int64(len(f.msgs)))
	m.discardLocked(f)
	f.mu.Unlock()
	delete(m.folders, name)
	// Rename first so a crash never leaves a half-deleted folder that looks alive.
	gone := filepath.Join(m.dir, ".deleted-"+randomToken(8))
	if err := os.Rename(f.dir, gone); err != nil {
		return err
	}
	if err := durable.SyncDir(m.dir); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// RenameFolder renames a folder and its sub-folders ("A" to "B" also moves "A/x" to "B/x").
func (m *Mailbox) RenameFolder(from, to string) error {
	if err := ValidateFolderName(to); err != nil {
		return err
	}
	from, to = CanonicalFolderName(from), CanonicalFolderName(to)
	if from == "INBOX" || to == "INBOX" {
		return ErrInboxProtected
	}
	// Watchers hear of every folder that moved, even when a later one failed to.
	var moved []MailboxEvent
	err := m.renameFolder(from, to, &moved)
	m.tell(moved...)
	return err
}

func (m *Mailbox) renameFolder(from, to string, moved *[]MailboxEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.folders[from]; !ok {
		return fmt.Errorf("%w: %q", ErrNoSuchFolder, from)
	}
	if _, ok := m.folders[to]; ok {
		return fmt.Errorf("%w: %q", ErrFolderExists, to)
	}
	prefix := from + string(Delimiter)
	if strings.HasPrefix(to, prefix) {
		return fmt.Errorf("%w: cannot move %q into itself", ErrBadFolderName, from)
	}
	for name, f := range m.folders {
		if name != from && !strings.HasPrefix(name, prefix) {
			continue
		}
		newName := to + strings.TrimPrefix(name, from)
		if _, ok := m.folders[newName]; ok {
			return fmt.Errorf("%w: %q", ErrFolderExists, newName)
		}
		newDir := filepath.Join(m.dir, encodeName(newName))
		f.mu.Lock()
		err := os.Rename(f.dir, newDir)
		if err == nil {
			f.dir, f.name = newDir, newName
			if f.journal != nil {
				f.journal.Close()
				f.journal = nil
			}
			err = f.openJournal()
		}
		f.mu.Unlock()
		if err != nil {
			return err
		}
		delete(m.folders, name)
		m.folders[newName] = f
		*moved = append(*moved, MailboxEvent{Kind: FolderRenamed, Name: newName, OldName: name})
	}
	return durable.SyncDir(m.dir)
}

// discardLocked marks f deleted, so every later write to it fails, and forgets its messages,
// telling its watchers they are gone. The caller holds f.mu.
func (m *Mailbox) discardLocked(f *Folder) {
	f.deleted = true
	for _, msg := range f.msgs {
		f.notify(Event{Kind: EventExpunge, Message: msg})
	}
	f.msgs, f.size = nil, 0
	if f.journal != nil {
		f.journal.Close()
		f.journal = nil
	}
	m.store.headers.dropFolder(f.id)
}

// markDeleted makes every later write to the mailbox fail and tells watchers its messages are
// gone.
func (m *Mailbox) markDeleted() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.folders {
		f.mu.Lock()
		m.discardLocked(f)
		f.mu.Unlock()
	}
	m.usage.Store(0)
	m.count.Store(0)
}

func (m *Mailbox) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.folders {
		f.close()
	}
}
