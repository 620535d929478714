package testutil

import (
	"os/exec"
	"testing"
)

// debianPackages names the Debian packages that install the outside clients tests drive, as
// .ci/run installs them.
var debianPackages = map[string]string{
	"curl":    "curl",
	"swaks":   "swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl",
	"python3": "python3",
	"strace":  "strace",
	"openssl": "openssl",
	// fail2ban-regex, the filter tester of fail2ban.
	"fail2ban-regex": "fail2ban",
	"mbsync":         "isync",
	"offlineimap":    "offlineimap3",
	// script(1) gives a program a terminal; Debian always has it.
	"script": "bsdutils",
}

// Program returns the path of an outside client a test drives (curl, swaks, python3, strace,
// openssl), and fails t with how to install it when it is not on PATH. These clients are the
// point of the tests that use them, and CI installs them (.ci/run), so a missing client is a
// machine to fix, never a reason to skip.
func Program(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	pkgs := debianPackages[name]
	if pkgs == "" {
		pkgs = name
	}
	t.Fatalf("%s is needed by this test and is not installed (%v): on Debian, apt-get install %s (.ci/run installs it)", name, err, pkgs)
	return ""
}
