package mailserver_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
)

// TestAcknowledgedOnlyWhenDurable runs the real server under strace while a message arrives and
// checks the order of its system calls: the message file is fsynced, renamed from tmp/ into
// cur/, and cur/ is fsynced, all before the reply to the final dot ("250 … OK: queued") is
// written to the client. A SIGKILL cannot show a missing fsync (the kernel keeps what a killed
// process wrote); this order is what makes an acknowledged message survive a power cut.
func TestAcknowledgedOnlyWhenDurable(t *testing.T) {
	strace := testutil.Program(t, "strace")
	dir := t.TempDir()
	trace := filepath.Join(dir, "strace.out")
	cfg, cfgPath := writeConfig(t, dir, testDirectory(t))
	s := &server{t: t, dir: dir, cfgPath: cfgPath, dirPath: cfg.Directory.File, cfg: cfg, wrapper: []string{
		strace, "-f", "-qq", "-y", "-s", "80", "-o", trace,
		"-e", "trace=fsync,fdatasync,rename,renameat,renameat2,write,writev,sendto,sendmsg"}}
	s.start()
	t.Cleanup(s.kill)

	token := "durable-" + fmt.Sprint(os.Getpid())
	msg := fmt.Sprintf("From: a@elsewhere.net\r\nTo: alice@example.com\r\nSubject: %s\r\nX-Token: %s\r\n\r\nbody\r\n", token, token)
	if err := sendPlain(s.addr("smtp"), "a@elsewhere.net", "alice@example.com", msg); err != nil {
		t.Fatal(err)
	}
	// SIGTERM goes to the server itself (strace's child); strace exits with it, its trace complete.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.proc.Pid(), s.proc.Pid()))
	if err != nil || len(strings.Fields(string(children))) != 1 {
		t.Fatalf("the mailserver process under strace: %q, %v", children, err)
	}
	if out, err := exec.Command("kill", "-TERM", strings.TrimSpace(string(children))).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	select {
	case <-s.proc.Exited():
	case <-time.After(time.Minute):
		t.Fatal("mailserver under strace did not stop within a minute of SIGTERM")
	}
	if n := len(s.messages("alice@example.com", "INBOX")); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}

	events, err := readTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(cfg.DataDir, "mailboxes", "example.com", "alice", "INBOX")
	renameIdx, fileSyncIdx, dirSyncIdx, ackIdx := -1, -1, -1, -1
	var tmpPath string
	for i, e := range events {
		switch {
		case strings.HasPrefix(e.call, "rename") && strings.Contains(e.args, `"`+inbox+`/tmp/`) &&
			strings.Contains(e.args, `"`+inbox+`/cur/`):
			if m := regexp.MustCompile(`"(` + regexp.QuoteMeta(inbox) + `/tmp/[^"]+)"`).FindStringSubmatch(e.args); m != nil {
				tmpPath, renameIdx = m[1], i
			}
		case e.call == "write" || e.call == "writev" || e.call == "sendto" || e.call == "sendmsg":
			if ackIdx < 0 && strings.Contains(e.args, `"250 2.0.0 OK: queued`) {
				ackIdx = i
			}
		}
	}
	if renameIdx < 0 || ackIdx < 0 {
		t.Fatalf("trace has no rename into %s/cur (%d) or no 250 reply to the final dot (%d):\n%s", inbox, renameIdx, ackIdx, dumpEvents(events))
	}
	for i, e := range events {
		if e.call != "fsync" && e.call != "fdatasync" {
			continue
		}
		switch {
		case i < renameIdx && strings.Contains(e.args, "<"+tmpPath+">"):
			fileSyncIdx = i
		case i > renameIdx && dirSyncIdx < 0 && strings.Contains(e.args, "<"+inbox+"/cur>"):
			dirSyncIdx = i
		}
	}
	switch {
	case fileSyncIdx < 0:
		t.Errorf("the message file %s was not fsynced before its rename into cur/", tmpPath)
	case dirSyncIdx < 0:
		t.Errorf("%s/cur was not fsynced after the rename", inbox)
	case ackIdx < dirSyncIdx:
		t.Errorf("the 250 reply (event %d) was written before cur/ was fsynced (event %d)", ackIdx, dirSyncIdx)
	}
	if t.Failed() {
		t.Logf("trace:\n%s", dumpEvents(events))
	}
}

// traceEvent is one completed system call from strace's output, in completion order.
type traceEvent struct {
	call, args string
}

var (
	straceLineRE    = regexp.MustCompile(`^(\d+)\s+(\w+)\((.*)$`)
	straceResumedRE = regexp.MustCompile(`^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$`)
)

// readTrace reads strace -f output. A call another thread interrupted is split into an
// "<unfinished ...>" line and a "<... resumed>" line; it counts where it completed.
func readTrace(path string) ([]traceEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pending := map[string]string{} // pid+call -> arguments so far
	var events []traceEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := straceResumedRE.FindStringSubmatch(line); m != nil {
			key := m[1] + m[2]
			events = append(events, traceEvent{call: m[2], args: pending[key] + m[3]})
			delete(pending, key)
			continue
		}
		m := straceLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if rest, ok := strings.CutSuffix(m[3], " <unfinished ...>"); ok {
			pending[m[1]+m[2]] = rest
			continue
		}
		events = append(events, traceEvent{call: m[2], args: m[3]})
	}
	return events, sc.Err()
}

func dumpEvents(events []traceEvent) string {
	var b strings.Builder
	for i, e := range events {
		if e.call == "write" && !strings.Contains(e.args, "TCP") {
			continue // log lines
		}
		fmt.Fprintf(&b, "%4d %s(%s\n", i, e.call, e.args)
	}
	return b.String()
}
