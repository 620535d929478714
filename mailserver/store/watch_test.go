package store

import (
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder collects a mailbox's events as "kind name [old]" lines.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) note(ev MailboxEvent) {
	kind := [...]string{"created", "deleted", "renamed", "subscribed", "unsubscribed"}[ev.Kind]
	line := kind + " " + ev.Name
	if ev.OldName != "" {
		line += " from " + ev.OldName
	}
	r.mu.Lock()
	r.got = append(r.got, line)
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	slices.Sort(out)
	return out
}

func TestMailboxWatchSeesFolderAndSubscriptionChanges(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, err := s.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	cancel := m.Watch(r.note)
	if n := m.MailboxWatchers(); n != 1 {
		t.Fatalf("MailboxWatchers = %d after Watch, want 1", n)
	}
	steps := []struct {
		do   func() error
		want []string
	}{
		{func() error { _, err := m.CreateFolder("Projects"); return err }, []string{"created Projects"}},
		{func() error { _, err := m.CreateFolder("Projects/2026"); return err }, []string{"created Projects/2026"}},
		{func() error { return m.Subscribe("Projects") }, []string{"subscribed Projects"}},
		{func() error { return m.Subscribe("Projects") }, nil}, // no change, no event
		{func() error { return m.RenameFolder("Projects", "Work") },
			[]string{"renamed Work from Projects", "renamed Work/2026 from Projects/2026"}},
		{func() error { return m.RenameSubscriptions("Projects", "Work") },
			[]string{"subscribed Work", "unsubscribed Projects"}},
		{func() error { return m.DeleteFolder("Work/2026") }, []string{"deleted Work/2026"}},
		{func() error { return m.Unsubscribe("Work") }, []string{"unsubscribed Work"}},
	}
	for i, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := r.take(); !slices.Equal(got, st.want) {
			t.Errorf("step %d: events %q, want %q", i, got, st.want)
		}
	}
	// Failures change nothing and report nothing.
	if _, err := m.CreateFolder("Work"); err == nil {
		t.Fatal("creating an existing folder succeeded")
	}
	if err := m.DeleteFolder("Nope"); err == nil {
		t.Fatal("deleting a missing folder succeeded")
	}
	if got := r.take(); len(got) != 0 {
		t.Errorf("failed operations reported %q", got)
	}
	cancel()
	if _, err := m.CreateFolder("After"); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); len(got) != 0 || m.MailboxWatchers() != 0 {
		t.Errorf("after cancel: events %q, %d watchers", got, m.MailboxWatchers())
	}
}

func TestFolderWatchSeesChangesWithoutSnapshot(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "alice@example.com")
	var mu sync.Mutex
	var kinds []string
	cancel := f.Watch(func(ev Event) {
		mu.Lock()
		kinds = append(kinds, [...]string{"new", "flags", "expunge"}[ev.Kind])
		mu.Unlock()
	})
	if n := f.Watchers(); n != 1 {
		t.Fatalf("Watchers = %d after Watch, want 1", n)
	}
	m := appendMsg(t, f, "Subject: x\r\n\r\nbody\r\n")
	if _, err := f.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Expunge([]uint32{m.UID}); err != nil {
		t.Fatal(err)
	}
	cancel()
	appendMsg(t, f, "Subject: y\r\n\r\nbody\r\n")
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(kinds, " "); got != "new flags expunge" {
		t.Errorf("events %q, want \"new flags expunge\" and nothing after cancel", got)
	}
	if n := f.Watchers(); n != 0 {
		t.Errorf("Watchers = %d after cancel, want 0", n)
	}
}
