package imapd

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestObjectIDAndSaveDate(t *testing.T) {
	e := newEnv(t)
	m := e.deliver(alice, "INBOX", message("one", "1"))
	c := e.rawSelected(t, "", "SELECT INBOX")
	inboxID := e.folder(alice, "INBOX").MailboxID()
	if lines := c.until("s"); !hasLine(lines, fmt.Sprintf("* OK [MAILBOXID (%s)]", inboxID)) {
		t.Errorf("SELECT lacks MAILBOXID (%s): %q", inboxID, lines)
	}
	c.send("f FETCH 1 (EMAILID THREADID SAVEDATE)")
	lines := c.until("f")
	want := regexp.MustCompile(fmt.Sprintf(`^\* 1 FETCH \(UID %d EMAILID \(%s\) THREADID NIL SAVEDATE "\d\d-\w\w\w-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"\)$`, m.UID, m.EmailID()))
	if !want.MatchString(lines[0]) {
		t.Errorf("FETCH EMAILID THREADID SAVEDATE = %q", lines[0])
	}
	// A copy keeps the EMAILID; a new folder answers its MAILBOXID, which STATUS gives too.
	c.send("cr CREATE Projects")
	lines = c.until("cr")
	got := regexp.MustCompile(`^cr OK \[MAILBOXID \((F[0-9a-f]+)\)\]`).FindStringSubmatch(lines[len(lines)-1])
	if got == nil {
		t.Fatalf("CREATE: %q, want OK [MAILBOXID (...)]", lines)
	}
	c.send("st STATUS Projects (MAILBOXID MESSAGES)")
	if lines := c.until("st"); !hasLine(lines, fmt.Sprintf("* STATUS Projects (MESSAGES 0 MAILBOXID (%s))", got[1])) {
		t.Errorf("STATUS MAILBOXID: %q", lines)
	}
	c.send("cp COPY 1 Projects")
	c.until("cp")
	copies, _ := e.folder(alice, "Projects").Messages()
	if len(copies) != 1 || copies[0].EmailID() != m.EmailID() {
		t.Errorf("the copy's EMAILID is not the original's")
	}
	c.send("q SEARCH SAVEDSINCE 1-Jan-2000 SAVEDBEFORE 1-Jan-2100")
	if lines := c.until("q"); lines[0] != "* SEARCH 1" {
		t.Errorf("SEARCH SAVEDATE: %q", lines)
	}
	c.send("q2 SEARCH SAVEDBEFORE 1-Jan-2000")
	if lines := c.until("q2"); lines[0] != "* SEARCH" {
		t.Errorf("SEARCH SAVEDBEFORE 2000: %q", lines)
	}
}

// A binary APPEND keeps bare LF and NUL exactly: BINARY.SIZE is what was sent, and BODY[]
// carries each NUL as 0x80 (the same length), never a NUL in an ordinary literal.
func TestBinaryAppendKeepsBytes(t *testing.T) {
	e := newEnv(t)
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	raw := "Subject: bin\nContent-Type: application/octet-stream\n\nab\x00cd\nef\n"
	c.send(fmt.Sprintf("a APPEND INBOX ~{%d+}\r\n%s", len(raw), raw))
	c.until("a")
	msgs, _ := e.folder(alice, "INBOX").Messages()
	if len(msgs) != 1 || msgs[0].Size != int64(len(raw)) {
		t.Fatalf("stored %+v, want one message of %d bytes", msgs, len(raw))
	}
	c.send("f FETCH 1 (BINARY.SIZE[] BODY.PEEK[])")
	lines := strings.Join(c.until("f"), "\n")
	if !strings.Contains(lines, fmt.Sprintf("BINARY.SIZE[] %d", len(raw))) || strings.Contains(lines, "\x00") ||
		!strings.Contains(lines, "ab\x80cd") {
		t.Errorf("FETCH after a binary APPEND: %q", lines)
	}
}
