package imapd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/store"
)

// login opens a raw session as alice with the given extensions enabled and INBOX selected
// by the given SELECT command (its tagged response is read).
func (e *env) rawSelected(t *testing.T, enable, selectCmd string) *rawConn {
	t.Helper()
	c := e.raw(t)
	c.send(fmt.Sprintf("l LOGIN %s %q", alice, password))
	c.expect("l OK")
	if enable != "" {
		c.send("en ENABLE " + enable)
		c.expect("* ENABLED " + enable)
		c.expect("en OK")
	}
	c.send("s " + selectCmd)
	return c
}

// until reads lines up to the tagged response of tag and returns them, tagged one last.
func (c *rawConn) until(tag string) []string {
	c.t.Helper()
	var lines []string
	for {
		line := c.expect("")
		lines = append(lines, line)
		if strings.HasPrefix(line, tag+" ") {
			return lines
		}
	}
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want || strings.HasPrefix(l, want) {
			return true
		}
	}
	return false
}

func TestCondStore(t *testing.T) {
	e := newEnv(t)
	m1 := e.deliver(alice, "INBOX", message("one", "1"))
	m2 := e.deliver(alice, "INBOX", message("two", "2"))
	c := e.rawSelected(t, "CONDSTORE", "SELECT INBOX")
	highest := e.folder(alice, "INBOX").Status().HighestModSeq
	if lines := c.until("s"); !hasLine(lines, fmt.Sprintf("* OK [HIGHESTMODSEQ %d]", highest)) {
		t.Errorf("SELECT after ENABLE CONDSTORE lacks HIGHESTMODSEQ %d: %q", highest, lines)
	}

	// Another session flags message 2: this one hears of it with its mod-sequence.
	changed, err := e.folder(alice, "INBOX").SetFlags([]uint32{m2.UID}, store.FlagsAdd, []string{`\Flagged`})
	if err != nil {
		t.Fatal(err)
	}
	c.send("n NOOP")
	want := fmt.Sprintf(`* 2 FETCH (UID %d FLAGS (\Flagged) MODSEQ (%d))`, m2.UID, changed[0].ModSeq)
	if lines := c.until("n"); !hasLine(lines, want) {
		t.Errorf("NOOP after another session's change: %q, want %s", lines, want)
	}

	// CHANGEDSINCE: only message 2 changed after message 1 was stored.
	c.send(fmt.Sprintf("f FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", m2.ModSeq))
	lines := c.until("f")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "* 2 FETCH") || !strings.Contains(lines[0], "MODSEQ (") {
		t.Errorf("FETCH CHANGEDSINCE: %q, want only message 2 with its MODSEQ", lines)
	}

	// UNCHANGEDSINCE: message 2 changed after m2.ModSeq, so only message 1 is set.
	c.send(fmt.Sprintf(`u STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\Seen)`, m2.ModSeq))
	lines = c.until("u")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "u OK [MODIFIED 2]") {
		t.Errorf("conditional STORE: %q, want OK [MODIFIED 2]", lines)
	}
	msgs, _ := e.folder(alice, "INBOX").Messages()
	if !hasFlag(msgs[0].Flags, `\Seen`) || hasFlag(msgs[1].Flags, `\Seen`) {
		t.Errorf("after the conditional STORE: %v, %v; want only message 1 seen", msgs[0].Flags, msgs[1].Flags)
	}
	c.send(fmt.Sprintf(`v UID STORE %d (UNCHANGEDSINCE 1) +FLAGS.SILENT (\Answered)`, m2.UID))
	if last := c.until("v"); !strings.HasPrefix(last[len(last)-1], fmt.Sprintf("v OK [MODIFIED %d]", m2.UID)) {
		t.Errorf("UID STORE UNCHANGEDSINCE: %q, want MODIFIED with the UID", last)
	}

	// SEARCH MODSEQ answers with the highest mod-sequence of the matches.
	top := e.folder(alice, "INBOX").Status().HighestModSeq
	c.send(fmt.Sprintf("q SEARCH MODSEQ %d", m1.ModSeq+1))
	if lines := c.until("q"); !hasLine(lines, fmt.Sprintf("* SEARCH 1 2 (MODSEQ %d)", top)) {
		t.Errorf("SEARCH MODSEQ: %q, want 1 2 (MODSEQ %d)", lines, top)
	}
	c.send("st STATUS Archive (HIGHESTMODSEQ MESSAGES)")
	if lines := c.until("st"); !hasLine(lines, "* STATUS Archive (MESSAGES 0 HIGHESTMODSEQ ") {
		t.Errorf("STATUS HIGHESTMODSEQ: %q", lines)
	}
}

func TestQResync(t *testing.T) {
	e := newEnv(t)
	var uids []uint32
	for i := range 5 {
		uids = append(uids, e.deliver(alice, "INBOX", message(fmt.Sprint("m", i), "x")).UID)
	}
	f := e.folder(alice, "INBOX")
	st := f.Status()
	// While the client is away: message 2 is expunged, message 4 flagged.
	if _, err := f.Expunge([]uint32{uids[1]}); err != nil {
		t.Fatal(err)
	}
	changed, err := f.SetFlags([]uint32{uids[3]}, store.FlagsAdd, []string{`\Flagged`})
	if err != nil {
		t.Fatal(err)
	}
	c := e.rawSelected(t, "QRESYNC", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", st.UIDValidity, st.HighestModSeq))
	lines := c.until("s")
	if !hasLine(lines, fmt.Sprintf("* VANISHED (EARLIER) %d", uids[1])) {
		t.Errorf("QRESYNC SELECT lacks VANISHED (EARLIER) %d: %q", uids[1], lines)
	}
	want := fmt.Sprintf(`* 3 FETCH (UID %d FLAGS (\Flagged) MODSEQ (%d))`, uids[3], changed[0].ModSeq)
	if !hasLine(lines, want) {
		t.Errorf("QRESYNC SELECT lacks %s: %q", want, lines)
	}
	for _, l := range lines {
		if strings.Contains(l, fmt.Sprintf("UID %d ", uids[0])) {
			t.Errorf("an unchanged message was sent: %s", l)
		}
	}

	// A QRESYNC session hears of expunges as VANISHED, not EXPUNGE.
	if _, err := f.Expunge([]uint32{uids[4]}); err != nil {
		t.Fatal(err)
	}
	c.send("n NOOP")
	if lines := c.until("n"); !hasLine(lines, fmt.Sprintf("* VANISHED %d", uids[4])) || hasLine(lines, "* 4 EXPUNGE") {
		t.Errorf("NOOP after an expunge: %q, want VANISHED %d", lines, uids[4])
	}
	c.send(fmt.Sprintf("v UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)", st.HighestModSeq))
	if lines := c.until("v"); !hasLine(lines, fmt.Sprintf("* VANISHED (EARLIER) %d,%d", uids[1], uids[4])) {
		t.Errorf("UID FETCH VANISHED: %q", lines)
	}
	// The client's own EXPUNGE raises the folder's mod-sequence, and only the tagged OK says
	// to what; one that removes nothing has nothing to say.
	c.send(`x STORE 1 +FLAGS.SILENT (\Deleted)`)
	c.until("x")
	c.send("y EXPUNGE")
	lines = c.until("y")
	if want := fmt.Sprintf("y OK [HIGHESTMODSEQ %d]", f.Status().HighestModSeq); !hasLine(lines, want) {
		t.Errorf("EXPUNGE with QRESYNC: %q, want %s", lines, want)
	}
	c.send("z UID EXPUNGE 1:*")
	if lines := c.until("z"); strings.Contains(lines[len(lines)-1], "HIGHESTMODSEQ") {
		t.Errorf("UID EXPUNGE that removed nothing: %q, want no HIGHESTMODSEQ", lines)
	}
	// QRESYNC in SELECT without ENABLE is a client error.
	d := e.rawSelected(t, "", fmt.Sprintf("SELECT INBOX (QRESYNC (%d 1))", st.UIDValidity))
	if lines := d.until("s"); !strings.HasPrefix(lines[len(lines)-1], "s BAD") {
		t.Errorf("QRESYNC without ENABLE: %q", lines)
	}
}

// A keyword new to the folder is announced with FLAGS and PERMANENTFLAGS to every session on
// it, before the FETCH responses that show it.
func TestNewKeywordAnnounced(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	watcher := e.rawSelected(t, "", "SELECT INBOX")
	watcher.until("s")
	actor := e.rawSelected(t, "", "SELECT INBOX")
	actor.until("s")
	actor.send(`a STORE 1 +FLAGS ($Project)`)
	lines := actor.until("a")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Project)`) ||
		!strings.Contains(lines[1], `PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Project \*)`) ||
		!strings.Contains(lines[2], "FETCH") {
		t.Errorf("STORE of a new keyword: %q", lines)
	}
	watcher.send("n NOOP")
	if lines := watcher.until("n"); !hasLine(lines, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Project)`) {
		t.Errorf("the other session was not told of the new keyword: %q", lines)
	}
}

// A QRESYNC resynchronisation after 10 flag changes in a 10,000-message folder costs a few
// bytes per change, not per message.
func TestQResyncTransfersLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("delivers 10,000 messages")
	}
	e := newEnv(t)
	f := e.folder(alice, "INBOX")
	var uids []uint32
	for i := range 10000 {
		uids = append(uids, e.deliver(alice, "INBOX", message(fmt.Sprint("m", i), "x")).UID)
	}
	st := f.Status()
	for i := range 10 {
		if _, err := f.SetFlags([]uint32{uids[i*997]}, store.FlagsAdd, []string{`\Seen`}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.rawSelected(t, "QRESYNC", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d 1:%d))", st.UIDValidity, st.HighestModSeq, uids[len(uids)-1]))
	start := time.Now()
	n, fetches := 0, 0
	for _, l := range c.until("s") {
		n += len(l) + 2
		if strings.Contains(l, " FETCH ") {
			fetches++
		}
	}
	t.Logf("QRESYNC SELECT after 10 flag changes in 10,000 messages: %d bytes, %d FETCH, %v", n, fetches, time.Since(start))
	if fetches != 10 || n > 5000 {
		t.Errorf("resync sent %d bytes and %d FETCH responses, want 10 FETCH in under 5,000 bytes", n, fetches)
	}
}

// A FETCH MODSEQ after a plain SELECT turns CONDSTORE on (RFC 7162 3.1): the client hears the
// folder's HIGHESTMODSEQ then, once, as it would have from SELECT (CONDSTORE).
func TestCondStoreEnabledBySelectedFetch(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	c := e.rawSelected(t, "", "SELECT INBOX")
	if lines := c.until("s"); hasLine(lines, "* OK [HIGHESTMODSEQ") {
		t.Errorf("plain SELECT reported HIGHESTMODSEQ: %q", lines)
	}
	want := fmt.Sprintf("* OK [HIGHESTMODSEQ %d]", e.folder(alice, "INBOX").Status().HighestModSeq)
	c.send("a FETCH 1 (FLAGS MODSEQ)")
	if lines := c.until("a"); !hasLine(lines, want) {
		t.Errorf("first FETCH MODSEQ: %q, want %s", lines, want)
	}
	c.send("b FETCH 1 (MODSEQ)")
	if lines := c.until("b"); hasLine(lines, "* OK [HIGHESTMODSEQ") {
		t.Errorf("second FETCH MODSEQ reported HIGHESTMODSEQ again: %q", lines)
	}
}
