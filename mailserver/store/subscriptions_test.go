package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func subscriptions(t *testing.T, m *Mailbox) []string {
	t.Helper()
	subs, err := m.Subscriptions()
	if err != nil {
		t.Fatal(err)
	}
	return subs
}

func TestSubscriptionsDefaultToStandardFolders(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, err := s.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}
	if got := subscriptions(t, m); !slices.Equal(got, want) {
		t.Fatalf("default subscriptions = %q, want %q", got, want)
	}
	// Unsubscribing something not subscribed changes nothing and writes nothing.
	if err := m.Unsubscribe("Nope"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.dir, subscriptionsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("subscriptions file written for a no-op: %v", err)
	}
}

func TestSubscriptionsPersistAndRename(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	m, err := s.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Projects", "Projects/2026", "Projects/2026", "inbox/Sub", "Projectsx"} {
		if err := m.Subscribe(name); err != nil {
			t.Fatalf("subscribe %q: %v", name, err)
		}
	}
	if err := m.Unsubscribe("Junk"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "/abs", "a\x01b", "a//b"} {
		if err := m.Subscribe(bad); !errors.Is(err, ErrBadFolderName) {
			t.Errorf("subscribe %q: got %v, want ErrBadFolderName", bad, err)
		}
	}
	if err := m.RenameSubscriptions("Projects", "Old/Projects"); err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Drafts", "INBOX", "INBOX/Sub", "Old/Projects", "Old/Projects/2026", "Projectsx", "Sent", "Trash"}
	if got := subscriptions(t, m); !slices.Equal(got, want) {
		t.Fatalf("subscriptions = %q, want %q", got, want)
	}

	// A new process sees the same subscriptions.
	s.Close()
	s2 := openStore(t, root)
	m2, err := s2.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := subscriptions(t, m2); !slices.Equal(got, want) {
		t.Fatalf("after reopen: subscriptions = %q, want %q", got, want)
	}
	// The file is not mistaken for a folder.
	for _, fi := range m2.Folders() {
		if fi.Name == subscriptionsFile {
			t.Fatalf("subscriptions file listed as a folder")
		}
	}
}
