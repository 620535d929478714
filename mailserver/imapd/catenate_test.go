package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// literal is s as a non-synchronising literal (LITERAL+).
func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

func TestMultiAppend(t *testing.T) {
	e := newEnv(t)
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	one, two := message("one", "1"), message("two", "2")
	c.send("a APPEND Archive (\\Seen) " + literal(one) + " " + literal(two))
	st := e.folder(alice, "Archive").Status()
	if got := c.until("a"); got[len(got)-1] != fmt.Sprintf("a OK [APPENDUID %d 1:2] APPEND completed", st.UIDValidity) {
		t.Errorf("MULTIAPPEND: %q", got)
	}
	msgs, _ := e.folder(alice, "Archive").Messages()
	if len(msgs) != 2 || !hasFlag(msgs[0].Flags, `\Seen`) || hasFlag(msgs[1].Flags, `\Seen`) {
		t.Errorf("Archive after MULTIAPPEND: %+v", msgs)
	}
	// All or nothing: an empty second message fails the command, and the first goes too.
	c.send("b APPEND Archive " + literal(one) + " {0+}\r\n")
	if got := c.until("b"); !strings.HasPrefix(got[len(got)-1], "b NO") {
		t.Errorf("MULTIAPPEND with an empty message: %q", got)
	}
	if n := e.folder(alice, "Archive").Status().Messages; n != 2 {
		t.Errorf("Archive holds %d messages after a failed MULTIAPPEND, want 2", n)
	}
}

func TestCatenate(t *testing.T) {
	e := newEnv(t)
	orig := e.deliver(alice, "INBOX", multipartMessage)
	st := e.folder(alice, "INBOX").Status()
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	header := "From: alice@example.com\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
	url := fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=2.MIME", st.UIDValidity, orig.UID)
	body := fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=2", st.UIDValidity, orig.UID)
	c.send(fmt.Sprintf(`a APPEND Drafts CATENATE (TEXT %s URL %q URL %q TEXT %s)`,
		literal(header), url, body, literal("\r\n--X--\r\n")))
	if got := c.until("a"); !strings.HasPrefix(got[len(got)-1], "a OK [APPENDUID") {
		t.Fatalf("CATENATE: %q", got)
	}
	drafts := e.folder(alice, "Drafts")
	msgs, _ := drafts.Messages()
	if len(msgs) != 1 {
		t.Fatalf("Drafts holds %d messages", len(msgs))
	}
	c.send(`f FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])`)
	c.until("f")
	c.send(`g EXAMINE Drafts`)
	c.until("g")
	c.send(`h FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[1])`)
	got := strings.Join(c.until("h"), "\n")
	if !strings.Contains(got, "application/octet-stream") || !strings.Contains(got, "base64") {
		t.Errorf("the catenated part lost its header or body:\n%s", got)
	}

	for i, bad := range []string{
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=999", st.UIDValidity),
		fmt.Sprintf("/INBOX;UIDVALIDITY=%d/;UID=%d", st.UIDValidity+1, orig.UID),
		fmt.Sprintf("imap://bob@example.com@mail/INBOX/;UID=%d", orig.UID),
		"/NoSuchFolder/;UID=1",
		fmt.Sprintf("/INBOX/;UID=%d/;SECTION=9", orig.UID),
	} {
		tag := fmt.Sprint("b", i)
		c.send(fmt.Sprintf(`%s APPEND Drafts CATENATE (URL %q)`, tag, bad))
		if got := c.until(tag); !strings.HasPrefix(got[len(got)-1], tag+" NO [BADURL "+bad+"]") {
			t.Errorf("CATENATE of %s: %q, want NO [BADURL %s]", bad, got, bad)
		}
	}
	if n := drafts.Status().Messages; n != 1 {
		t.Errorf("Drafts holds %d messages after refused CATENATEs, want 1", n)
	}
}
