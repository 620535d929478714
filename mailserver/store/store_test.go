package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func inbox(t *testing.T, s *Store, addr string) *Folder {
	t.Helper()
	m, err := s.Mailbox(addr)
	if err != nil {
		t.Fatal(err)
	}
	return m.Inbox()
}

func appendMsg(t *testing.T, f *Folder, body string, flags ...string) Message {
	t.Helper()
	m, err := f.Append(strings.NewReader(body), flags, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readMsg(t *testing.T, f *Folder, uid uint32) string {
	t.Helper()
	fh, err := f.Open(uid)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b, err := io.ReadAll(fh)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendStoresCRLFWithExactSize(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "Alice@example.com")
	m := appendMsg(t, f, "Subject: hi\nX: y\r\n\nbody\nlast")
	want := "Subject: hi\r\nX: y\r\n\r\nbody\r\nlast"
	if got := readMsg(t, f, m.UID); got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	if m.Size != int64(len(want)) {
		t.Fatalf("size %d, want %d", m.Size, len(want))
	}
	mb, _ := s.Mailbox("alice@EXAMPLE.com")
	if mb.Usage() != m.Size || mb.Count() != 1 {
		t.Fatalf("usage %d count %d", mb.Usage(), mb.Count())
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "mailboxes", "example.com", "alice", "INBOX", "cur", m.file)); err != nil {
		t.Fatalf("message file not where expected: %v", err)
	}
}

func TestCopyCRLFLongLines(t *testing.T) {
	long := strings.Repeat("x", 200000)
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	m := appendMsg(t, f, long+"\n"+long+"\r\n")
	if got := readMsg(t, f, m.UID); got != long+"\r\n"+long+"\r\n" {
		t.Fatalf("long lines mangled (len %d)", len(got))
	}
}

func TestStandardFolders(t *testing.T) {
	s := openStore(t, t.TempDir())
	m, err := s.Mailbox("a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range m.Folders() {
		names = append(names, fi.Name+fi.SpecialUse)
	}
	want := []string{"INBOX", `Archive\Archive`, `Drafts\Drafts`, `Junk\Junk`, `Sent\Sent`, `Trash\Trash`}
	if !slices.Equal(names, want) {
		t.Fatalf("folders %v, want %v", names, want)
	}
}

func TestStateSurvivesReopenAndRebuild(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	f := inbox(t, s, "a@example.com")
	m1 := appendMsg(t, f, "one")
	m2 := appendMsg(t, f, "two")
	m3 := appendMsg(t, f, "three")
	if _, err := f.SetFlags([]uint32{m1.UID}, FlagsAdd, []string{`\Seen`, "$Label1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Expunge([]uint32{m3.UID}); err != nil {
		t.Fatal(err)
	}
	st1 := f.Status()
	s.Close()

	check := func(t *testing.T, f *Folder, wantFlags bool) {
		t.Helper()
		msgs, st := f.Messages()
		if st.UIDValidity != st1.UIDValidity {
			t.Fatalf("UIDVALIDITY changed %d -> %d", st1.UIDValidity, st.UIDValidity)
		}
		if st.UIDNext < st1.UIDNext {
			t.Fatalf("UIDNEXT went back %d -> %d (UID %d could be reused)", st1.UIDNext, st.UIDNext, m3.UID)
		}
		if st.HighestModSeq < st1.HighestModSeq && wantFlags {
			t.Fatalf("HIGHESTMODSEQ went back %d -> %d", st1.HighestModSeq, st.HighestModSeq)
		}
		if len(msgs) != 2 || msgs[0].UID != m1.UID || msgs[1].UID != m2.UID {
			t.Fatalf("messages after reopen: %+v", msgs)
		}
		wantF := []string{`\Seen`} // standard flags survive even a lost journal
		if wantFlags {
			wantF = []string{"$Label1", `\Seen`}
		}
		if !slices.Equal(msgs[0].Flags, wantF) {
			t.Fatalf("flags after reopen: %v, want %v", msgs[0].Flags, wantF)
		}
		if got := readMsg(t, f, m2.UID); got != "two" {
			t.Fatalf("content %q", got)
		}
		m4 := appendMsg(t, f, "four")
		if m4.UID <= m3.UID {
			t.Fatalf("new message got UID %d, not above expunged UID %d", m4.UID, m3.UID)
		}
	}
	t.Run("reopen", func(t *testing.T) {
		s := openStore(t, root)
		check(t, inbox(t, s, "a@example.com"), true)
		s.Close()
	})
	t.Run("journal lost", func(t *testing.T) {
		dir := filepath.Join(root, "mailboxes", "example.com", "a", "INBOX")
		if err := os.Remove(filepath.Join(dir, journalFile)); err != nil {
			t.Fatal(err)
		}
		// The message added by the previous subtest is removed so the rebuilt state must come
		// from the meta file alone.
		s := openStore(t, root)
		f := inbox(t, s, "a@example.com")
		msgs, _ := f.Messages()
		f.Expunge([]uint32{msgs[len(msgs)-1].UID})
		s.Close()
		os.Remove(filepath.Join(dir, journalFile))
		s = openStore(t, root)
		check(t, inbox(t, s, "a@example.com"), false)
	})
	t.Run("journal corrupt", func(t *testing.T) {
		dir := filepath.Join(root, "mailboxes", "example.com", "a", "INBOX")
		if err := os.WriteFile(filepath.Join(dir, journalFile), []byte("garbage\n+ x y\n\x00\x01"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, root)
		f := inbox(t, s, "a@example.com")
		msgs, _ := f.Messages()
		if len(msgs) != 3 {
			t.Fatalf("rebuilt %d messages, want 3", len(msgs))
		}
	})
}

func TestStaleTmpFilesAreRemoved(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	f := inbox(t, s, "a@example.com")
	appendMsg(t, f, "kept")
	stale := filepath.Join(f.dir, "tmp", "123.abc")
	os.WriteFile(stale, []byte("half a message"), 0o600)
	s.Close()
	s = openStore(t, root)
	f = inbox(t, s, "a@example.com")
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale tmp file still there: %v", err)
	}
	if st := f.Status(); st.Messages != 1 {
		t.Fatalf("%d messages", st.Messages)
	}
}

func TestConcurrentAppendsGetUniqueUIDs(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	var events []Event
	var evMu sync.Mutex
	_, _, cancel := f.Snapshot(func(ev Event) {
		evMu.Lock()
		events = append(events, ev)
		evMu.Unlock()
	})
	defer cancel()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := f.Append(strings.NewReader(fmt.Sprintf("msg %d %d", w, i)), nil, time.Time{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	msgs, st := f.Messages()
	if len(msgs) != workers*each || st.UIDNext != workers*each+1 {
		t.Fatalf("%d messages, uidnext %d", len(msgs), st.UIDNext)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].UID <= msgs[i-1].UID {
			t.Fatalf("UIDs not strictly increasing at %d", i)
		}
	}
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) != workers*each {
		t.Fatalf("watcher saw %d events, want %d", len(events), workers*each)
	}
	for i := 1; i < len(events); i++ {
		if events[i].Message.UID <= events[i-1].Message.UID {
			t.Fatalf("events out of order at %d", i)
		}
	}
}

func TestFlagsAndExpungeEvents(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "a@example.com")
	m := appendMsg(t, f, "x")
	var got []EventKind
	_, _, cancel := f.Snapshot(func(ev Event) { got = append(got, ev.Kind) })
	defer cancel()
	changed, err := f.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Flagged`, `\Flagged`, "bad flag"})
	if err != nil || len(changed) != 1 || !slices.Equal(changed[0].Flags, []string{`\Flagged`}) {
		t.Fatalf("SetFlags: %+v %v", changed, err)
	}
	if changed[0].ModSeq <= m.ModSeq {
		t.Fatalf("modseq did not grow: %d -> %d", m.ModSeq, changed[0].ModSeq)
	}
	if again, _ := f.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Flagged`}); len(again) != 0 {
		t.Fatalf("no-op flag change reported as a change")
	}
	if removed, err := f.Expunge([]uint32{m.UID, 999}); err != nil || !slices.Equal(removed, []uint32{m.UID}) {
		t.Fatalf("Expunge: %v %v", removed, err)
	}
	if !slices.Equal(got, []EventKind{EventFlags, EventExpunge}) {
		t.Fatalf("events %v", got)
	}
	if _, err := f.Open(m.UID); !errors.Is(err, ErrNoSuchMessage) {
		t.Fatalf("open expunged: %v", err)
	}
	mb, _ := s.Mailbox("a@example.com")
	if mb.Usage() != 0 || mb.Count() != 0 {
		t.Fatalf("usage %d count %d after expunge", mb.Usage(), mb.Count())
	}
}

func TestCopyKeepsContentAndFlags(t *testing.T) {
	s := openStore(t, t.TempDir())
	mb, _ := s.Mailbox("a@example.com")
	src := mb.Inbox()
	dst, err := mb.Folder("Archive")
	if err != nil {
		t.Fatal(err)
	}
	m := appendMsg(t, src, "content", `\Seen`)
	from, to, err := src.CopyTo(dst, []uint32{m.UID})
	if err != nil || len(from) != 1 || len(to) != 1 {
		t.Fatalf("CopyTo: %v %v %v", from, to, err)
	}
	if got := readMsg(t, dst, to[0]); got != "content" {
		t.Fatalf("copied content %q", got)
	}
	msgs, _ := dst.Messages()
	if !slices.Equal(msgs[0].Flags, []string{`\Seen`}) || !msgs[0].InternalDate.Equal(m.InternalDate) {
		t.Fatalf("copied message %+v", msgs[0])
	}
	if mb.Usage() != 2*m.Size {
		t.Fatalf("usage %d after copy", mb.Usage())
	}
}

func TestFolderManagement(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	mb, _ := s.Mailbox("a@example.com")
	for _, bad := range []string{"", "..", "a/../b", "/abs", "a//b", "trail/", "ctl\x01", "ctl\x7f", string([]byte{0xff})} {
		if _, err := mb.CreateFolder(bad); !errors.Is(err, ErrBadFolderName) {
			t.Errorf("CreateFolder(%q) = %v, want ErrBadFolderName", bad, err)
		}
	}
	if _, err := mb.CreateFolder("Projects/2026/Ünïcode ✓"); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.CreateFolder("Projects"); err != nil {
		t.Fatal(err)
	}
	f, _ := mb.Folder("Projects/2026/Ünïcode ✓")
	appendMsg(t, f, "hello")
	if _, err := mb.CreateFolder("inbox"); !errors.Is(err, ErrFolderExists) {
		t.Fatalf("creating inbox again: %v", err)
	}
	if err := mb.RenameFolder("Projects", "Old/Projects"); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteFolder("INBOX"); !errors.Is(err, ErrInboxProtected) {
		t.Fatalf("deleting INBOX: %v", err)
	}
	s.Close()
	s = openStore(t, root)
	mb, _ = s.Mailbox("a@example.com")
	f, err := mb.Folder("Old/Projects/2026/Ünïcode ✓")
	if err != nil {
		t.Fatalf("renamed child folder lost: %v (have %v)", err, mb.Folders())
	}
	if st := f.Status(); st.Messages != 1 {
		t.Fatalf("renamed folder has %d messages", st.Messages)
	}
	if err := mb.DeleteFolder("Old/Projects/2026/Ünïcode ✓"); err != nil {
		t.Fatal(err)
	}
	if mb.Usage() != 0 {
		t.Fatalf("usage %d after deleting the folder", mb.Usage())
	}
}

func TestDeleteMailbox(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	appendMsg(t, inbox(t, s, "a@example.com"), "bye")
	if err := s.DeleteMailbox("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "mailboxes", "example.com", "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mailbox directory still there: %v", err)
	}
	if st := inbox(t, s, "a@example.com").Status(); st.Messages != 0 {
		t.Fatalf("recreated mailbox has %d messages", st.Messages)
	}
}

func TestEncodeNameRoundTrip(t *testing.T) {
	for _, in := range []string{"alice", ".hidden", "a/b", "o'brien+tag", "ü", "%41", "a.b"} {
		enc := encodeName(in)
		if strings.ContainsAny(enc, "/") || strings.HasPrefix(enc, ".") {
			t.Errorf("encodeName(%q) = %q is not a safe entry", in, enc)
		}
		dec, err := decodeName(enc)
		if err != nil || dec != in {
			t.Errorf("round trip %q -> %q -> %q (%v)", in, enc, dec, err)
		}
	}
	if bytes.Equal([]byte(encodeName("a/b")), []byte(encodeName("a%2Fb"))) {
		t.Error("distinct names collide")
	}
}

func TestRecreatedFolderGetsNewUIDValidity(t *testing.T) {
	s := openStore(t, t.TempDir())
	mb, _ := s.Mailbox("a@example.com")
	seen := map[uint32]bool{}
	for _, fi := range mb.Folders() {
		f, _ := mb.Folder(fi.Name)
		if seen[f.UIDValidity()] {
			t.Fatalf("two folders share UIDVALIDITY %d", f.UIDValidity())
		}
		seen[f.UIDValidity()] = true
	}
	f, _ := mb.CreateFolder("x")
	first := f.UIDValidity()
	if err := mb.DeleteFolder("x"); err != nil {
		t.Fatal(err)
	}
	f, _ = mb.CreateFolder("x")
	if f.UIDValidity() <= first {
		t.Fatalf("re-created folder kept UIDVALIDITY %d (was %d)", f.UIDValidity(), first)
	}
}

func TestInterruptedDeletionIsNotAFolder(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	mb, _ := s.Mailbox("a@example.com")
	dir := filepath.Join(root, "mailboxes", "example.com", "a", ".deleted-abc", "cur")
	os.MkdirAll(dir, 0o700)
	s.Close()
	s = openStore(t, root)
	mb, _ = s.Mailbox("a@example.com")
	for _, fi := range mb.Folders() {
		if strings.HasPrefix(fi.Name, ".") {
			t.Fatalf("leftover %q listed as a folder", fi.Name)
		}
	}
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Fatalf("leftover deletion not cleaned up: %v", err)
	}
}

func TestFlagsLiveInFileNames(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	f := inbox(t, s, "a@example.com")
	m := appendMsg(t, f, "x", `\Draft`)
	if _, err := f.SetFlags([]uint32{m.UID}, FlagsAdd, []string{`\Seen`, `\Flagged`, `\Answered`, `\Deleted`, "$Work"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(f.dir, "cur"))
	if len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ":2,DFRST") {
		t.Fatalf("file name %v does not carry the standard flags", entries)
	}
	// Content is still readable and copyable after the rename.
	if got := readMsg(t, f, m.UID); got != "x" {
		t.Fatalf("content %q", got)
	}
	mb, _ := s.Mailbox("a@example.com")
	arch, _ := mb.Folder("Archive")
	if _, to, err := f.CopyTo(arch, []uint32{m.UID}); err != nil || len(to) != 1 {
		t.Fatalf("copy after rename: %v %v", to, err)
	}
	if _, err := f.SetFlags([]uint32{m.UID}, FlagsRemove, []string{`\Deleted`, `\Draft`}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(f.dir, journalFile))
	s = openStore(t, root)
	msgs, _ := inbox(t, s, "a@example.com").Messages()
	if !slices.Equal(msgs[0].Flags, []string{`\Answered`, `\Flagged`, `\Seen`}) {
		t.Fatalf("flags rebuilt from the file name: %v", msgs[0].Flags)
	}
}
