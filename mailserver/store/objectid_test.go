package store

import (
	"strings"
	"testing"
	"time"
)

func TestObjectIDsAndSaveDate(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	mb, err := s.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	inbox := mb.Inbox()
	before := time.Now().Add(-time.Second)
	m := appendMsg(t, inbox, "Subject: a\r\n\r\na\r\n")
	if id := m.EmailID(); !strings.HasPrefix(id, "M") || len(id) < 10 {
		t.Errorf("EMAILID %q", id)
	}
	if sd := m.SaveDate(); sd.Before(before) || sd.After(time.Now().Add(time.Second)) {
		t.Errorf("SAVEDATE %v, want about now", sd)
	}
	// A copy keeps the message's id; a flag change keeps it too.
	archive, err := mb.Folder("Archive")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := inbox.CopyTo(archive, []uint32{m.UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	copies, _ := archive.Messages()
	again, _ := inbox.Messages()
	if copies[0].EmailID() != m.EmailID() || again[0].EmailID() != m.EmailID() {
		t.Errorf("EMAILID of the copy %q and after a flag change %q, want %q", copies[0].EmailID(), again[0].EmailID(), m.EmailID())
	}
	other := appendMsg(t, inbox, "Subject: b\r\n\r\nb\r\n")
	if other.EmailID() == m.EmailID() {
		t.Error("two messages share an EMAILID")
	}

	// MAILBOXID: one per folder, kept across a rename and a restart.
	id := archive.MailboxID()
	if id == "" || id == inbox.MailboxID() {
		t.Fatalf("MAILBOXIDs %q and %q", id, inbox.MailboxID())
	}
	if err := mb.RenameFolder("Archive", "Old"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, root)
	mb, _ = s.Mailbox("alice@example.com")
	old, err := mb.Folder("Old")
	if err != nil {
		t.Fatal(err)
	}
	if old.MailboxID() != id {
		t.Errorf("MAILBOXID after rename and restart = %q, want %q", old.MailboxID(), id)
	}
	msgs, _ := old.Messages()
	if len(msgs) != 1 || msgs[0].EmailID() != m.EmailID() {
		t.Errorf("after a restart the copy's EMAILID is %q, want %q", msgs[0].EmailID(), m.EmailID())
	}
}

func TestAppendExactKeepsBytes(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "alice@example.com")
	raw := "Subject: bin\n\nline\x00one\nline two\n"
	m, err := f.AppendExact(strings.NewReader(raw), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, f, m.UID); got != raw || m.Size != int64(len(raw)) {
		t.Errorf("stored %q (size %d), want %q", got, m.Size, raw)
	}
}
