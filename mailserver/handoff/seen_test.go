package handoff

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHandoffIDField(t *testing.T) {
	data := withID("0123abcd", []byte("Received: x\r\n\r\nbody\r\n"))
	id, rest := splitID(data)
	if id != "0123abcd" || string(rest) != "Received: x\r\n\r\nbody\r\n" {
		t.Errorf("splitID: %q %q", id, rest)
	}
	for _, in := range []string{"Received: x\r\n\r\n", "X-Kubemail-Handoff: \r\nx", "X-Kubemail-Handoff: ../../etc\r\nx", ""} {
		if id, rest := splitID([]byte(in)); id != "" || string(rest) != in {
			t.Errorf("splitID(%q) = %q %q, want no id and the data unchanged", in, id, rest)
		}
	}
	if a, b := newID(), newID(); a == b || len(a) != 32 {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestSeenRemembersPerMailboxAndForgets(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSeen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Has("id1", "a@example.com") {
		t.Fatal("remembered before Add")
	}
	if err := s.Add("id1", "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if !s.Has("id1", "a@example.com") || s.Has("id1", "b@example.com") || s.Has("id2", "a@example.com") {
		t.Error("Has answers for another mailbox or id")
	}
	// Reopened (a restart) it still knows; entries older than SeenFor go.
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-SeenFor - time.Hour)
	os.Chtimes(old, past, past)
	s, err = OpenSeen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has("id1", "a@example.com") {
		t.Error("forgotten across a restart")
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("an entry older than SeenFor is kept: %v", err)
	}
}
