package store

import "testing"

func TestStandardSpecialUseMatchesFolders(t *testing.T) {
	for name, want := range map[string]string{
		"Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`,
		"INBOX": "", "inbox": "", "sent": "", "Sent/2026": "", "Projects": "",
	} {
		if got := StandardSpecialUse(name); got != want {
			t.Errorf("StandardSpecialUse(%q) = %q, want %q", name, got, want)
		}
	}
	s := openStore(t, t.TempDir())
	m, err := s.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range m.Folders() {
		if got := StandardSpecialUse(fi.Name); got != fi.SpecialUse {
			t.Errorf("StandardSpecialUse(%q) = %q, but Folders says %q", fi.Name, got, fi.SpecialUse)
		}
	}
}
