package imapd

import (
	"strings"
	"testing"
)

func TestMatchList(t *testing.T) {
	cases := []struct {
		name, ref, pattern string
		want               bool
	}{
		{"INBOX", "", "*", true},
		{"INBOX", "", "%", true},
		{"a/b", "", "%", false},
		{"a/b", "", "*", true},
		{"a/b", "", "a/%", true},
		{"a/b/c", "", "a/%", false},
		{"a/b/c", "", "a/%/c", true},
		{"a/b", "a", "%", true},
		{"a/b", "a/", "b", true},
		{"b", "a", "/b", true},
		{"a/b", "x", "%", false},
		{"Sent", "", "S*t", true},
		{"Sent", "", "S%x", false},
		{"Sent", "", "Sent", true},
		{"Sent", "", "sent", false},
		{"", "", "", true},
		{"abc", "", "a**%*c", true},
	}
	for _, c := range cases {
		if got := matchList(c.name, '/', c.ref, c.pattern); got != c.want {
			t.Errorf("matchList(%q, ref %q, pattern %q) = %v, want %v", c.name, c.ref, c.pattern, got, c.want)
		}
	}
}

// A pattern of many wildcards against a long name that does not match ends at once; naive
// backtracking would take exponential time and hang the test.
func TestMatchListHostilePattern(t *testing.T) {
	name := strings.Repeat("a", 2000)
	pattern := strings.Repeat("*%", 500) + "b"
	if matchList(name, '/', "", pattern) {
		t.Error("matched a name without b")
	}
}
