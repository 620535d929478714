package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// subscriptionsFile lists a mailbox's subscribed folder names, one per line. The leading dot
// keeps it apart from folder directories, whose encoded names never start with one.
const subscriptionsFile = ".subscriptions"

// Subscriptions returns the subscribed folder names, sorted. Names need not exist as folders
// (IMAP lets a subscription outlive its folder). A mailbox that never changed its
// subscriptions is subscribed to the standard folders, so clients that show only subscribed
// folders show those.
func (m *Mailbox) Subscriptions() ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.subscriptionsLocked()
}

func (m *Mailbox) subscriptionsLocked() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(m.dir, subscriptionsFile))
	if errors.Is(err, os.ErrNotExist) {
		out := make([]string, 0, len(standardFolders))
		for _, sf := range standardFolders {
			out = append(out, sf.Name)
		}
		slices.Sort(out)
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: reading subscriptions: %w", m.address, err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		// A hand-edited or damaged line is dropped rather than failing every LIST.
		if ValidateFolderName(line) == nil {
			out = append(out, CanonicalFolderName(line))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Subscribe adds name to the subscriptions. Subscribing twice is not an error.
func (m *Mailbox) Subscribe(name string) error {
	if err := ValidateFolderName(name); err != nil {
		return err
	}
	name = CanonicalFolderName(name)
	return m.updateSubscriptions(func(subs []string) []string {
		if slices.Contains(subs, name) {
			return subs
		}
		return append(subs, name)
	})
}

// Unsubscribe removes name from the subscriptions. Removing a name that is not subscribed is
// not an error.
func (m *Mailbox) Unsubscribe(name string) error {
	name = CanonicalFolderName(name)
	return m.updateSubscriptions(func(subs []string) []string {
		return slices.DeleteFunc(subs, func(s string) bool { return s == name })
	})
}

// RenameSubscriptions moves the subscriptions of from and its sub-folders to to, the way
// RenameFolder moves the folders, so that a renamed folder stays subscribed.
func (m *Mailbox) RenameSubscriptions(from, to string) error {
	if err := ValidateFolderName(to); err != nil {
		return err
	}
	from, to = CanonicalFolderName(from), CanonicalFolderName(to)
	prefix := from + string(Delimiter)
	return m.updateSubscriptions(func(subs []string) []string {
		for i, s := range subs {
			if s == from || strings.HasPrefix(s, prefix) {
				subs[i] = to + strings.TrimPrefix(s, from)
			}
		}
		return subs
	})
}

// updateSubscriptions rewrites the subscriptions file durably with edit's result, then tells
// the mailbox's watchers which names came and went.
func (m *Mailbox) updateSubscriptions(edit func([]string) []string) error {
	var before, after []string
	if err := m.writeSubscriptions(edit, &before, &after); err != nil {
		return err
	}
	var evs []MailboxEvent
	for _, name := range before {
		if _, found := slices.BinarySearch(after, name); !found {
			evs = append(evs, MailboxEvent{Kind: FolderUnsubscribed, Name: name})
		}
	}
	for _, name := range after {
		if _, found := slices.BinarySearch(before, name); !found {
			evs = append(evs, MailboxEvent{Kind: FolderSubscribed, Name: name})
		}
	}
	m.tell(evs...)
	return nil
}

// writeSubscriptions applies edit under the mailbox's lock and reports the sorted names before
// and after; both are equal when nothing changed.
func (m *Mailbox) writeSubscriptions(edit func([]string) []string, before, after *[]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	subs, err := m.subscriptionsLocked()
	if err != nil {
		return err
	}
	*before = slices.Clone(subs)
	subs = edit(subs)
	slices.Sort(subs)
	subs = slices.Compact(subs)
	*after = subs
	if slices.Equal(*before, subs) {
		return nil
	}
	var b strings.Builder
	for _, s := range subs {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	if err := durable.WriteFile(filepath.Join(m.dir, subscriptionsFile), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("mailbox %s: saving subscriptions: %w", m.address, err)
	}
	return nil
}
