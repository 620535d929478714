package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// A client that names a message number it cannot know of has lost track of the mailbox; an OK
// with nothing done would hide that from it (RFC 9051 9, seq-number: BAD). UIDs past the last
// may name messages expunged since and stay OK.
func TestSeqNumberPastLastIsBad(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	e.deliver(alice, "INBOX", message("two", "2"))
	e.folder(alice, "Archive")
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	for cmd, want := range map[string]string{
		"FETCH 3 FLAGS":           "BAD",
		"FETCH 1:3 FLAGS":         "BAD",
		"FETCH 2:* FLAGS":         "OK",
		"FETCH * FLAGS":           "OK",
		"STORE 5 +FLAGS (\\Seen)": "BAD",
		"COPY 9 Archive":          "BAD",
		"MOVE 1,3 Archive":        "BAD",
		"UID FETCH 99 FLAGS":      "OK",
		"UID STORE 99 FLAGS ()":   "OK",
	} {
		c.send("t " + cmd)
		lines := c.until("t")
		if got := lines[len(lines)-1]; !strings.HasPrefix(got, "t "+want) {
			t.Errorf("%s: %q, want %s", cmd, got, want)
		}
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != 2 {
		t.Errorf("INBOX holds %d messages after refused commands, want 2", n)
	}

	// In an empty mailbox even "*" names no message.
	c.send("x SELECT Archive")
	c.until("x")
	for _, cmd := range []string{"FETCH 1:* UID", "FETCH * UID", "STORE * +FLAGS (\\Seen)"} {
		c.send("t " + cmd)
		if lines := c.until("t"); !strings.HasPrefix(lines[len(lines)-1], "t BAD") {
			t.Errorf("%s in an empty mailbox: %q, want BAD", cmd, lines)
		}
	}
	c.send("t UID FETCH 1:* UID")
	if lines := c.until("t"); !strings.HasPrefix(lines[len(lines)-1], "t OK") {
		t.Errorf("UID FETCH 1:* in an empty mailbox: %q, want OK", lines)
	}
}

// Before login the server offers what logging in needs; the tagged OK of LOGIN brings the
// full list, so a client that reads it knows the rest without asking.
func TestCapabilitiesBeforeAndAfterLogin(t *testing.T) {
	e := newEnv(t)
	c := e.raw(t)
	before := c.transact("a", "CAPABILITY")[0]
	for _, want := range []string{"IMAP4rev1", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"} {
		if !strings.Contains(before+" ", " "+want+" ") {
			t.Errorf("before login: CAPABILITY lacks %s: %s", want, before)
		}
	}
	for _, unwanted := range []string{"MOVE", "QUOTA", "CONDSTORE", "COMPRESS=DEFLATE", "SORT"} {
		if strings.Contains(before+" ", " "+unwanted+" ") {
			t.Errorf("before login: CAPABILITY offers %s: %s", unwanted, before)
		}
	}
	login := c.transact("b", fmt.Sprintf("LOGIN %s %q", alice, password))
	after := login[len(login)-1]
	for _, want := range []string{"MOVE", "QUOTA", "CONDSTORE", "COMPRESS=DEFLATE", "SORT", "IDLE"} {
		if !strings.Contains(after, " "+want+" ") {
			t.Errorf("LOGIN's OK [CAPABILITY] lacks %s: %s", want, after)
		}
	}
	if strings.Contains(after, "AUTH=PLAIN") {
		t.Errorf("LOGIN's OK [CAPABILITY] still offers AUTH=PLAIN: %s", after)
	}
}

// STATUS of the selected folder is answered, with CLIENTBUG (RFC 9051 6.3.11: clients SHOULD
// NOT ask); of another folder it is a plain OK.
func TestStatusOfSelectedFolderIsClientBug(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	c := e.rawSelected(t, "", "EXAMINE INBOX")
	c.until("s")
	checkLines(t, "STATUS inbox", c.transact("a", "STATUS inbox (MESSAGES)"),
		`* STATUS INBOX (MESSAGES 1)`, "a OK [CLIENTBUG] *")
	checkLines(t, "STATUS Archive", c.transact("b", "STATUS Archive (MESSAGES)"),
		`* STATUS Archive (MESSAGES 0)`, "b OK STATUS*")
	c.transact("c", "UNSELECT")
	checkLines(t, "STATUS INBOX after UNSELECT", c.transact("d", "STATUS INBOX (MESSAGES)"),
		`* STATUS INBOX (MESSAGES 1)`, "d OK STATUS*")
}
