package imapd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/store"
)

// notifyIdle logs alice in with INBOX selected, sets NOTIFY as given and starts IDLE.
func (e *env) notifyIdle(t *testing.T, set string) *rawConn {
	t.Helper()
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	if lines := c.transact("n", "NOTIFY SET "+set); !strings.HasPrefix(lines[len(lines)-1], "n OK") {
		t.Fatalf("NOTIFY SET %s: %q", set, lines)
	}
	c.send("i IDLE")
	c.expect("+ ")
	return c
}

// done ends IDLE and returns what came before its tagged response.
func (c *rawConn) done() []string {
	c.t.Helper()
	c.send("DONE")
	return c.until("i")
}

func TestNotifyStatusOfOtherFolderWhileIdle(t *testing.T) {
	e := newEnv(t)
	c := e.notifyIdle(t, "(selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")

	m := e.deliver(alice, "Archive", message("filed", "by a rule"))
	if got := c.expect("* STATUS"); got != `* STATUS Archive (MESSAGES 1 UIDNEXT 2 UNSEEN 1)` {
		t.Errorf("delivery into Archive while idling: %q, want its MESSAGES, UIDNEXT and UNSEEN", got)
	}
	// The selected folder is reported as always, not with STATUS.
	e.deliver(alice, "INBOX", message("hello", "inbox"))
	if got := c.expect("* "); got != "* 1 EXISTS" {
		t.Errorf("delivery into the selected INBOX: %q, want * 1 EXISTS", got)
	}
	if _, err := e.folder(alice, "Archive").Expunge([]uint32{m.UID}); err != nil {
		t.Fatal(err)
	}
	if got := c.expect("* STATUS"); got != `* STATUS Archive (MESSAGES 0 UIDNEXT 2 UNSEEN 0)` {
		t.Errorf("expunge in Archive while idling: %q", got)
	}
	if lines := c.done(); len(lines) != 1 {
		t.Errorf("after DONE: %q, want only the tagged OK", lines)
	}
}

func TestNotifyFolderListChangesByAnotherSession(t *testing.T) {
	e := newEnv(t)
	c := e.notifyIdle(t, "(personal (MailboxName SubscriptionChange))")
	other := e.rawLogin(t, alice)
	steps := []struct{ cmd, want string }{
		{"CREATE Projects", `* LIST () "/" Projects`},
		{"RENAME Projects Work", `* LIST () "/" Work ("OLDNAME" (Projects))`},
		{"SUBSCRIBE Work", `* LIST (\Subscribed) "/" Work`},
		{"UNSUBSCRIBE Work", `* LIST () "/" Work`},
		{"DELETE Work", `* LIST (\NonExistent) "/" Work`},
	}
	for _, st := range steps {
		if lines := other.transact("o", st.cmd); !strings.HasPrefix(lines[len(lines)-1], "o OK") {
			t.Fatalf("%s: %q", st.cmd, lines)
		}
		if got := c.expect("* "); got != st.want {
			t.Errorf("after %s by another session: %q, want %q", st.cmd, got, st.want)
		}
	}
	c.done()
}

// A filter covers only its folders, and only its events: message events are not asked for
// here, so a delivery says nothing.
func TestNotifyFiltersChooseFoldersAndEvents(t *testing.T) {
	e := newEnv(t)
	c := e.notifyIdle(t, "(subtree Work (MessageNew MessageExpunge)) (mailboxes Sent (MailboxName))")
	other := e.rawLogin(t, alice)
	for _, cmd := range []string{"CREATE Work/2026", "CREATE Elsewhere"} {
		other.transact("o", cmd)
	}
	e.deliver(alice, "Sent", message("sent", "not reported"))
	e.deliver(alice, "Elsewhere", message("else", "not reported"))
	// Work/2026 was created after NOTIFY SET, and is followed: SUBTREE covers it.
	e.deliver(alice, "Work/2026", message("work", "reported"))
	if got := c.expect("* "); got != `* STATUS Work/2026 (MESSAGES 1 UIDNEXT 2 UNSEEN 1)` {
		t.Errorf("first update: %q, want Work/2026's STATUS alone", got)
	}
	if lines := c.done(); len(lines) != 1 {
		t.Errorf("updates for folders or events not asked for: %q", lines[:len(lines)-1])
	}
}

func TestNotifySetStatusAndNone(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "Archive", message("old", "x"), `\Seen`)
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	lines := c.transact("n", "NOTIFY SET STATUS (mailboxes (Archive INBOX Drafts) (MessageNew MessageExpunge))")
	uv := e.folder(alice, "Archive").UIDValidity()
	want := []string{
		`* STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY ` + fmt.Sprint(uv) + ` UNSEEN 0)`,
		`* STATUS Drafts (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ` + fmt.Sprint(e.folder(alice, "Drafts").UIDValidity()) + ` UNSEEN 0)`,
		"n OK*",
	}
	checkLines(t, "NOTIFY SET STATUS (INBOX is selected, so it has none)", lines, want...)

	checkLines(t, "NOTIFY NONE", c.transact("x", "NOTIFY NONE"), "x OK*")
	e.deliver(alice, "Archive", message("new", "y"))
	checkLines(t, "NOOP after NOTIFY NONE and a delivery into Archive", c.transact("p", "NOOP"), "p OK*")
}

// Changes come before the tagged response of a command, as the selected folder's do.
func TestNotifyAfterCommand(t *testing.T) {
	e := newEnv(t)
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	checkLines(t, "NOTIFY SET", c.transact("n", "NOTIFY SET (personal (MessageNew MessageExpunge FlagChange))"), "n OK*")
	m := e.deliver(alice, "Junk", message("spam", "x"))
	checkLines(t, "NOOP after a delivery into Junk", c.transact("p", "NOOP"),
		`* STATUS Junk (MESSAGES 1 UIDNEXT 2 UNSEEN 1)`, "p OK*")
	if _, err := e.folder(alice, "Junk").SetFlags([]uint32{m.UID}, store.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	checkLines(t, "NOOP after a flag change in Junk", c.transact("p", "NOOP"),
		`* STATUS Junk (UNSEEN 0)`, "p OK*")
}

func TestNotifyRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.rawLogin(t, alice)
	for _, tc := range []struct{ args, want string }{
		{"", "t BAD"},
		{"SOMETIMES", "t BAD"},
		{"NONE extra", "t BAD"},
		{"SET", "t BAD"},
		{"SET personal", "t BAD"},
		{"SET (personal)", "t BAD"},
		{"SET (personal ())", "t BAD"},
		{"SET (bogus (MessageNew))", "t BAD"},
		{"SET (personal (MessageNew Sneezes))", "t BAD"},
		{"SET (subtree (MessageNew))", "t BAD"},
		{"SET (selected (MessageNew))", "t BAD"},
		{"SET (selected (FlagChange))", "t BAD"},
		{"SET (selected NONE) (selected-delayed NONE)", "t BAD"},
		{"SET (selected (MessageNew (NOSUCHITEM) MessageExpunge))", "t BAD"},
		{"SET (personal (MessageNew AnnotationChange MailboxMetadataChange))", "t NO [BADEVENT (AnnotationChange MailboxMetadataChange)]"},
		{"SET (selected (MessageNew (UID FLAGS) MessageExpunge)) (inboxes NONE)", "t OK"},
	} {
		lines := c.transact("t", strings.TrimSpace("NOTIFY "+tc.args))
		if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
			t.Errorf("NOTIFY %s: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// Every watcher NOTIFY starts is gone after NOTIFY SET replaces it, NOTIFY NONE and LOGOUT, and
// after a connection that just drops.
func TestNotifyLeavesNoWatchers(t *testing.T) {
	e := newEnv(t)
	box, err := e.store.Mailbox(alice)
	if err != nil {
		t.Fatal(err)
	}
	archive := e.folder(alice, "Archive")
	watchers := func() (int, int) { return box.MailboxWatchers(), archive.Watchers() }
	c := e.rawLogin(t, alice)
	for i := 0; i < 3; i++ {
		c.transact("n", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
	}
	if b, f := watchers(); b != 1 || f != 1 {
		t.Fatalf("after three NOTIFY SET: %d mailbox and %d Archive watchers, want 1 and 1", b, f)
	}
	c.transact("n", "NOTIFY NONE")
	if b, f := watchers(); b != 0 || f != 0 {
		t.Fatalf("after NOTIFY NONE: %d mailbox and %d Archive watchers, want none", b, f)
	}
	c.transact("n", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
	c.send("l LOGOUT")
	c.expect("l OK")
	testutil.Eventually(t, "watchers gone after LOGOUT", func() bool { b, f := watchers(); return b == 0 && f == 0 })

	d := e.rawLogin(t, alice)
	d.transact("n", "NOTIFY SET (personal (MessageNew MessageExpunge MailboxName))")
	d.send("i IDLE")
	d.expect("+ ")
	d.conn.Close()
	testutil.Eventually(t, "watchers gone after an idle connection dropped", func() bool { b, f := watchers(); return b == 0 && f == 0 })
}

// MessageNew's fetch items for the selected folder come with each new message, after its
// EXISTS (RFC 5465 5.2), and a body section does not mark it \Seen.
func TestNotifyFetchesNewMessagesOfSelectedFolder(t *testing.T) {
	e := newEnv(t)
	c := e.notifyIdle(t, "(selected (MessageNew (UID FLAGS BODY[HEADER.FIELDS (SUBJECT)]) MessageExpunge))")
	e.deliver(alice, "INBOX", message("lunch", "on friday"))
	if got := c.expect("* "); got != "* 1 EXISTS" {
		t.Errorf("delivery while idling: %q, want * 1 EXISTS", got)
	}
	got := c.expect("* 1 FETCH")
	if want := "* 1 FETCH (UID 1 FLAGS () BODY[HEADER.FIELDS (SUBJECT)] {18}"; got != want {
		t.Errorf("delivery while idling: %q, want %q", got, want)
	}
	if got := c.expect(""); got != "Subject: lunch" {
		t.Errorf("the header field: %q", got)
	}
	c.done()
	checkLines(t, "FETCH FLAGS", c.transact("f", "FETCH 1 FLAGS"), "* 1 FETCH (UID 1 FLAGS ())", "f OK*")

	// Without items, only EXISTS says there is new mail.
	c.ok("n", "NOTIFY SET (selected (MessageNew MessageExpunge))")
	e.deliver(alice, "INBOX", message("dinner", "on saturday"))
	checkLines(t, "NOOP", c.transact("n2", "NOOP"), "* 2 EXISTS", "* 0 RECENT", "n2 OK*")
}
