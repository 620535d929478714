package testutil

import (
	"strings"
	"testing"
)

func TestProgram(t *testing.T) {
	if msg := run(t, func(tb testing.TB) {
		if path := Program(tb, "sh"); !strings.HasSuffix(path, "/sh") {
			t.Errorf("Program(sh) = %q", path)
		}
	}); msg != "" {
		t.Errorf("Program(sh) failed: %s", msg)
	}
	t.Setenv("PATH", t.TempDir())
	msg := run(t, func(tb testing.TB) {
		Program(tb, "swaks")
		t.Error("Program returned for a client that is not installed")
	})
	if !strings.Contains(msg, "swaks is needed by this test and is not installed") ||
		!strings.Contains(msg, "apt-get install swaks libnet-ssleay-perl") {
		t.Errorf("failure = %q, want one that says how to install swaks", msg)
	}
}
