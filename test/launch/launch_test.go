package launch

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
)

// script is a stand-in for the mail server: sh logging to stderr as the server does.
func script(lines ...string) []string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("echo '" + l + "' >&2; ")
	}
	b.WriteString("exec sleep 60")
	return []string{"sh", "-c", b.String()}
}

func TestStartWaitsForReadyAndReadsListeners(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "server.log")
	p, err := Start(Options{Name: "fake", LogFile: logFile, Command: script(
		`time=x level=INFO msg=listening listener=smtp addr=127.0.0.1:2525`,
		`{"level":"INFO","msg":"listening","listener":"imaps","addr":"127.0.0.1:2993"}`,
		`time=x level=INFO msg="mailserver started" version=dev`,
		`time=x level=INFO msg=listening listener=late addr=127.0.0.1:9`,
	)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"smtp": "127.0.0.1:2525", "imaps": "127.0.0.1:2993"}
	if len(p.Addrs) != len(want) || p.Addrs["smtp"] != want["smtp"] || p.Addrs["imaps"] != want["imaps"] {
		t.Errorf("Addrs = %v, want %v (only what was announced before the start line)", p.Addrs, want)
	}
	testutil.Eventually(t, "the last line in Logs", func() bool { return strings.Contains(p.Logs(), "listener=late") })
	testutil.Eventually(t, "the last line in the log file", func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "listener=late")
	})
	if err := p.Stop(10 * time.Second); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Stop = %v, want the exit by SIGTERM", err)
	}
	select {
	case <-p.Exited():
	default:
		t.Error("Exited not closed after Stop")
	}
}

func TestStartReportsAnEarlyExitWithTheLog(t *testing.T) {
	_, err := Start(Options{Name: "broken", Command: []string{"sh", "-c", "echo 'config.yaml: no such file' >&2; exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "broken exited at start: exit status 3") ||
		!strings.Contains(err.Error(), "config.yaml: no such file") {
		t.Errorf("Start = %v, want the exit status and the log", err)
	}
}

func TestStartGivesUpAndKills(t *testing.T) {
	start := time.Now()
	_, err := Start(Options{Name: "silent", Command: script("starting"), Ready: "never printed",
		StartTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "silent did not start within 300ms") || !strings.Contains(err.Error(), "starting") {
		t.Errorf("Start = %v", err)
	}
	// Start returns only once the process is gone (Kill waits), long before sleep 60 ends.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("Start took %s", took)
	}
}

func TestKillAfterExit(t *testing.T) {
	p, err := Start(Options{Name: "short", Command: []string{"sh", "-c", `echo 'msg="mailserver started"' >&2`}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	p.Kill() // must not block or fail on a process that is gone
	if p.ExitErr() != nil {
		t.Errorf("ExitErr = %v, want a clean exit", p.ExitErr())
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("Signal to an exited process succeeded")
	}
}
