package imapd

import (
	"fmt"
	"testing"
)

// SEARCH FROM and TO match addresses as RFC 5322 reads them: comments, spaces inside the
// address and encoded names do not hide them.
func TestSearchAddressesWithComments(t *testing.T) {
	e := newEnv(t)
	for i, from := range []string{
		"alice@example.com (Alice Liddell)",
		"Bob <bob(the builder)@example.org>",
		"carol @ example . net",
		"=?UTF-8?Q?Dani=C3=ABl?= <dan@example.com>",
		"Eve <eve@example.com>",
	} {
		e.deliver(alice, "INBOX", fmt.Sprintf("From: %s\r\nTo: friends: a@x.org, b@y.org;\r\nSubject: m%d\r\n\r\nbody\r\n", from, i))
	}
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	for i, tc := range []struct{ query, want string }{
		{`FROM "alice@example.com"`, "* SEARCH 1"},
		{`FROM "Alice Liddell"`, "* SEARCH 1"},
		{`FROM "bob@example.org"`, "* SEARCH 2"},
		{`FROM "carol@example.net"`, "* SEARCH 3"},
		{`FROM "Daniël"`, "* SEARCH 4"},
		{`FROM "eve"`, "* SEARCH 5"},
		{`FROM "example.com"`, "* SEARCH 1 4 5"},
		{`TO "b@y.org"`, "* SEARCH 1 2 3 4 5"},
		{`FROM "nobody@example.com"`, "* SEARCH"},
	} {
		tag := fmt.Sprint("q", i)
		c.send(fmt.Sprintf("%s SEARCH CHARSET UTF-8 %s", tag, tc.query))
		if got := c.until(tag); got[0] != tc.want {
			t.Errorf("SEARCH %s = %q, want %s", tc.query, got, tc.want)
		}
	}
}
