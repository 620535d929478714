package imapd

import (
	"fmt"
	"strings"
	"testing"
)

// contextEnv is alice's INBOX with n messages, selected in a raw session, and a second
// session of hers with INBOX selected too.
func contextEnv(t *testing.T, n int) (e *env, c, other *rawConn) {
	e = newEnv(t)
	for i := 1; i <= n; i++ {
		e.deliver(alice, "INBOX", message(fmt.Sprintf("message %d", i), "body"))
	}
	c = e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	other = e.rawLogin(t, alice)
	other.transact("o0", "SELECT INBOX")
	return e, c, other
}

func (c *rawConn) ok(tag, cmd string) {
	c.t.Helper()
	if lines := c.transact(tag, cmd); !strings.HasPrefix(lines[len(lines)-1], tag+" OK") {
		c.t.Fatalf("%s: %q", cmd, lines)
	}
}

func TestContextSearchUpdatesByUID(t *testing.T) {
	e, c, other := contextEnv(t, 3)
	checkLines(t, "UID SEARCH RETURN (UPDATE) UNSEEN", c.transact("u", "UID SEARCH RETURN (UPDATE) UNSEEN"),
		`* ESEARCH (TAG "u") UID`, "u OK*")

	// Another session reads message 2: it leaves the result.
	other.ok("o1", `STORE 2 +FLAGS.SILENT (\Seen)`)
	checkLines(t, "NOOP after another session's STORE", c.transact("n1", "NOOP"),
		`* 2 FETCH (UID 2 FLAGS (\Seen))`, `* ESEARCH (TAG "u") UID REMOVEFROM (0 2)`, "n1 OK*")

	// This session's own change counts as well, reported after its FETCH.
	checkLines(t, "own STORE", c.transact("s1", `STORE 2 -FLAGS (\Seen)`),
		`* 2 FETCH (UID 2 FLAGS ())`, `* ESEARCH (TAG "u") UID ADDTO (0 2)`, "s1 OK*")

	// New mail joins while idling.
	c.send("i IDLE")
	c.expect("+ ")
	e.deliver(alice, "INBOX", message("message 4", "body"))
	if got := c.expect("* "); got != "* 4 EXISTS" {
		t.Errorf("delivery while idling: %q", got)
	}
	if got := c.expect("* ESEARCH"); got != `* ESEARCH (TAG "u") UID ADDTO (0 4)` {
		t.Errorf("delivery while idling: %q, want ADDTO (0 4)", got)
	}
	c.send("DONE")
	c.until("i")

	// An expunged member leaves, before its EXPUNGE.
	other.ok("o2", `STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("o3", "EXPUNGE")
	checkLines(t, "NOOP after an expunge", c.transact("n2", "NOOP"),
		`* ESEARCH (TAG "u") UID REMOVEFROM (0 1)`, "* 1 EXPUNGE", "n2 OK*")
	// Nothing changed: nothing more is said.
	checkLines(t, "NOOP with nothing new", c.transact("n3", "NOOP"), "n3 OK*")

	// A cancelled search is no longer kept up to date.
	checkLines(t, "CANCELUPDATE", c.transact("c1", `CANCELUPDATE "u"`), "c1 OK*")
	other.ok("o4", `STORE 1 +FLAGS.SILENT (\Seen)`)
	checkLines(t, "NOOP after CANCELUPDATE", c.transact("n4", "NOOP"), `* 1 FETCH (UID 2 FLAGS (\Seen))`, "n4 OK*")
	checkLines(t, "CANCELUPDATE again", c.transact("c2", `CANCELUPDATE "u"`), "c2 NO*")
	checkLines(t, "CANCELUPDATE of an atom", c.transact("c3", `CANCELUPDATE u`), "c3 BAD*")
	checkLines(t, "CANCELUPDATE without a tag", c.transact("c4", `CANCELUPDATE`), "c4 BAD*")
}

// With sequence numbers, REMOVEFROM names messages by the numbers the client knows before the
// EXPUNGEs renumber them, and ADDTO by those after the EXISTS.
func TestContextSearchUpdatesBySequenceNumber(t *testing.T) {
	e, c, other := contextEnv(t, 4)
	checkLines(t, "SEARCH RETURN (UPDATE COUNT) ALL", c.transact("q", "SEARCH RETURN (UPDATE COUNT) ALL"),
		`* ESEARCH (TAG "q") COUNT 4`, "q OK*")
	other.ok("o1", `STORE 2:3 +FLAGS.SILENT (\Deleted)`)
	other.ok("o2", "EXPUNGE")
	e.deliver(alice, "INBOX", message("message 5", "body"))
	checkLines(t, "NOOP", c.transact("n1", "NOOP"),
		`* ESEARCH (TAG "q") REMOVEFROM (0 2:3)`, "* 3 EXPUNGE", "* 2 EXPUNGE", "* 3 EXISTS", "* 0 RECENT",
		`* ESEARCH (TAG "q") ADDTO (0 3)`, "n1 OK*")

	// During FETCH no EXPUNGE may be sent; the expunged message leaves the result at once,
	// under the number the client still knows it by.
	other.ok("o3", `STORE 1 +FLAGS.SILENT (\Deleted)`)
	other.ok("o4", "EXPUNGE")
	checkLines(t, "FETCH", c.transact("f", "FETCH 2 UID"),
		"* 2 FETCH (UID 4)", `* ESEARCH (TAG "q") REMOVEFROM (0 1)`, "f OK*")
	checkLines(t, "NOOP", c.transact("n2", "NOOP"), "* 1 EXPUNGE", "n2 OK*")
}

func TestContextSearchWithQResync(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(alice, "INBOX", message(fmt.Sprintf("message %d", i), "body"))
	}
	c := e.rawSelected(t, "QRESYNC", "SELECT INBOX")
	c.until("s")
	other := e.rawLogin(t, alice)
	other.transact("o0", "SELECT INBOX")
	c.ok("q", "SEARCH RETURN (UPDATE) ALL")
	c.ok("u", "UID SEARCH RETURN (UPDATE) ALL")
	other.ok("o1", `STORE 2 +FLAGS.SILENT (\Deleted)`)
	other.ok("o2", "EXPUNGE")
	lines := c.transact("n", "NOOP")
	checkLines(t, "NOOP with VANISHED", lines[len(lines)-4:],
		`* ESEARCH (TAG "q") REMOVEFROM (0 2)`, `* ESEARCH (TAG "u") UID REMOVEFROM (0 2)`, "* VANISHED 2", "n OK*")
}

func TestContextPartialResults(t *testing.T) {
	_, c, _ := contextEnv(t, 5)
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (PARTIAL 2:3) ALL", `* ESEARCH (TAG "t") PARTIAL (2:3 2:3)`},
		{"SEARCH RETURN (PARTIAL 4:1 MIN COUNT) ALL", `* ESEARCH (TAG "t") MIN 1 PARTIAL (1:4 1:4) COUNT 5`},
		{"UID SEARCH RETURN (PARTIAL 5:9) ALL", `* ESEARCH (TAG "t") UID PARTIAL (5:9 5)`},
		{"SEARCH RETURN (PARTIAL 6:9) ALL", `* ESEARCH (TAG "t") PARTIAL (6:9 NIL)`},
		{"SEARCH RETURN (PARTIAL 1:2) 3:5", `* ESEARCH (TAG "t") PARTIAL (1:2 3:4)`},
		// Positions in sort order, the numbers written in that order.
		{"SORT RETURN (PARTIAL 2:3) (REVERSE ARRIVAL) UTF-8 ALL", `* ESEARCH (TAG "t") PARTIAL (2:3 4,3)`},
		{"SEARCH RETURN (CONTEXT COUNT) ALL", `* ESEARCH (TAG "t") COUNT 5`},
	} {
		if got := c.answer(tc.cmd); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// SAVE keeps the part returned.
	c.ok("p", "SEARCH RETURN (PARTIAL 2:3 SAVE) ALL")
	checkLines(t, "FETCH $", c.transact("f", "FETCH $ UID"), "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "f OK*")
}

// A session keeps a bounded number of searches up to date; past that, the search is answered
// and NOUPDATE says it will not be.
func TestContextLimit(t *testing.T) {
	_, c, _ := contextEnv(t, 1)
	for i := range maxContexts {
		c.ok(fmt.Sprintf("k%d", i), "SEARCH RETURN (UPDATE) ALL")
	}
	checkLines(t, "one search too many", c.transact("x", "SEARCH RETURN (UPDATE COUNT) ALL"),
		`* ESEARCH (TAG "x") COUNT 1`, `* NO [NOUPDATE "x"] *`, "x OK*")
	// A closed folder ends them all.
	c.ok("cl", "UNSELECT")
	checkLines(t, "CANCELUPDATE after UNSELECT", c.transact("c", `CANCELUPDATE "k0"`), "c NO*")
}

func TestContextCapability(t *testing.T) {
	checkCapabilities(t, "CONTEXT=SEARCH")
}
