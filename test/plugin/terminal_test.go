package plugin_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// onTerminal runs the plugin on a pseudo-terminal (Python's pty module, as a person at a
// terminal would), answers the two password prompts with first and second, and returns
// everything the terminal showed and the exit code.
const onTerminal = `
import os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
shown = b""
def read_until(want):
    global shown
    while want is None or want not in shown:
        r, _, _ = select.select([fd], [], [], 20)
        if not r:
            sys.exit("no %r on the terminal; it showed %r" % (want, shown))
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            return
        if not chunk:
            return
        shown += chunk
read_until(b"New password: ")
os.write(fd, os.environb[b"FIRST"] + b"\n")
read_until(b"Retype new password: ")
os.write(fd, os.environb[b"SECOND"] + b"\n")
read_until(None)
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(shown)
sys.exit(os.waitstatus_to_exitcode(status))
`

func (p *plugin) runOnTerminal(t *testing.T, first, second string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append([]string{"-c", onTerminal, p.bin, "--kubeconfig", p.env.Kubeconfig}, args...)
	cmd := exec.CommandContext(ctx, "python3", argv...)
	cmd.Env = append(os.Environ(), "FIRST="+first, "SECOND="+second)
	out, err := cmd.Output()
	r := result{stdout: string(out)}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code, r.stderr = exit.ExitCode(), string(exit.Stderr)
	case err != nil:
		t.Fatalf("running kubectl-mail %v on a terminal: %v", args, err)
	}
	t.Logf("kubectl mail %v on a terminal -> exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	return r
}

// testPasswdOnTerminal runs after testPasswd, in its namespace.
func testPasswdOnTerminal(t *testing.T, p *plugin) {
	c := p.env.Client
	r := p.runOnTerminal(t, "typed-Passw0rd", "typed-Passw0rd", "passwd", "alice", "-n", "passwd")
	if r.code != 0 || string(secretData(t, c, "alice-pw")["secret"]) != "typed-Passw0rd" {
		t.Errorf("passwd on a terminal: exit %d, alice-pw holds %q", r.code, secretData(t, c, "alice-pw")["secret"])
	}
	if strings.Contains(r.stdout, "typed-Passw0rd") {
		t.Errorf("the terminal echoed the password:\n%s", r.stdout)
	}
	if strings.Count(r.stdout, "New password: ")+strings.Count(r.stdout, "Retype new password: ") != 2 {
		t.Errorf("passwd on a terminal did not prompt twice:\n%s", r.stdout)
	}

	r = p.runOnTerminal(t, "one-Passw0rd", "other-Passw0rd", "passwd", "alice", "-n", "passwd")
	if r.code == 0 || !strings.Contains(r.stdout, "the two passwords differ") {
		t.Errorf("passwd with two different entries: exit %d\n%s", r.code, r.stdout)
	}
	if got := string(secretData(t, c, "alice-pw")["secret"]); got != "typed-Passw0rd" {
		t.Errorf("two different entries changed alice-pw to %q", got)
	}
}
