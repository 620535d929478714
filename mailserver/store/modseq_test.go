package store

import (
	"slices"
	"testing"
)

// The highest mod-sequence never goes back, even when the change that set it (an expunge) is
// compacted out of the journal and the folder is opened again.
func TestHighestModSeqSurvivesCompaction(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	f := inbox(t, s, "alice@example.com")
	a := appendMsg(t, f, "Subject: a\r\n\r\na\r\n")
	b := appendMsg(t, f, "Subject: b\r\n\r\nb\r\n")
	if _, err := f.Expunge([]uint32{b.UID}); err != nil {
		t.Fatal(err)
	}
	want := f.Status().HighestModSeq
	if want <= a.ModSeq {
		t.Fatalf("HIGHESTMODSEQ %d after an expunge, want above %d", want, a.ModSeq)
	}
	f.mu.Lock()
	err := f.compactJournal()
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, root)
	if got := inbox(t, s, "alice@example.com").Status().HighestModSeq; got < want {
		t.Errorf("HIGHESTMODSEQ after compaction and reopening = %d, want at least %d", got, want)
	}
}

func TestSetFlagsUnchangedSince(t *testing.T) {
	s := openStore(t, t.TempDir())
	f := inbox(t, s, "alice@example.com")
	a := appendMsg(t, f, "Subject: a\r\n\r\na\r\n")
	b := appendMsg(t, f, "Subject: b\r\n\r\nb\r\n")
	// b changes after the client's view (a.ModSeq): only a may be set.
	if _, err := f.SetFlags([]uint32{b.UID}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	changed, modified, err := f.SetFlagsUnchangedSince([]uint32{a.UID, b.UID}, FlagsAdd, []string{`\Flagged`}, b.ModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].UID != a.UID || !slices.Equal(modified, []uint32{b.UID}) {
		t.Errorf("changed %+v, modified %v; want only UID %d changed, %d modified", changed, modified, a.UID, b.UID)
	}
	msgs, _ := f.Messages()
	if slices.Contains(msgs[1].Flags, `\Flagged`) {
		t.Errorf("the message changed since was flagged anyway: %v", msgs[1].Flags)
	}
}
