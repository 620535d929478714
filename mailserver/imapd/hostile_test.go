package imapd

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestHostileInput sends what a broken or malicious client might: every command gets a clear
// BAD or NO (never SERVERBUG), the connection goes on where the protocol allows, memory stays
// bounded, and another client is served throughout.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	other := e.client(bob, nil)

	c := e.raw(t)
	c.send(fmt.Sprintf("a0 LOGIN %s %q", alice, password))
	c.expect("a0 OK")
	c.send("a1 SELECT INBOX")
	c.expect("a1 OK")

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cases := []struct{ send, want string }{
		// A 1 MiB line, a long unknown command: BAD, and the connection goes on.
		{"b1 NOOP " + strings.Repeat("x", 1<<20), "b1 BAD"},
		{"b2 " + strings.Repeat("X", 1<<20), "b2 BAD"},
		// A literal of 4 GiB announced: refused before a byte of it is read.
		{"b3 APPEND INBOX {4294967296}", "b3 NO [TOOBIG]"},
		// Lists nested a thousand deep.
		{"b4 FETCH 1 " + strings.Repeat("(", 1000), "b4 BAD"},
		// Invalid UTF-8 in a quoted string, invalid modified UTF-7 in a name and a pattern.
		{"b5 SELECT \"\xff\xfe\"", "b5 BAD"},
		{"b6 SELECT \"&Jjo\"", "b6 BAD"},
		{"b7 LIST \"\" \"&Jjo\"", "b7 BAD"},
		{"b8 STATUS \"&AGEAYgBj-\" (MESSAGES)", "b8 BAD"},
		// NUL in a quoted string and in an atom.
		{"b9 EXAMINE \"IN\x00BOX\"", "b9 BAD"},
		{"b10 FETCH 1 (FL\x00AGS)", "b10 BAD"},
		// Commands that make no sense here.
		{"b11 UID", "b11 BAD"},
		{"b12 UID LOGIN a b", "b12 BAD"},
		{"b13 FETCH 1:* (BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21]<0.4294967296>)", "b13 "},
		{"b14 SEARCH CHARSET KOI8-R TEXT x", "b14 NO [BADCHARSET"},
		{"b15 STORE 1 +FLAGS (\\Recent)", "b15 BAD"},
		{"b16 LOGIN a b", "b16 BAD"},
	}
	for _, tc := range cases {
		c.send(tc.send)
		got := c.expect(strings.Fields(tc.send)[0] + " ")
		if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "SERVERBUG") {
			t.Errorf("%.60q: got %.120q, want %q", tc.send, got, tc.want)
		}
		if err := other.Noop().Wait(); err != nil {
			t.Fatalf("the other client failed after %.40q: %v", tc.send, err)
		}
	}
	c.send("z1 NOOP")
	c.expect("z1 OK")

	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("the heap grew by %d bytes over the hostile commands; the reader should hold none of them", grew)
	}

	// A non-synchronising literal of 4 GiB is on its way and cannot be skipped: BAD, BYE, and
	// the connection closes, while the other client goes on.
	c.send("c1 APPEND INBOX {4294967296+}")
	c.expect("c1 BAD")
	c.expect("* BYE")
	if err := other.Noop().Wait(); err != nil {
		t.Fatalf("the other client failed: %v", err)
	}
}
