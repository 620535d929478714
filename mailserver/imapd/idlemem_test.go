package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
)

// idleSessions is how many IDLE sessions TestIdleMemory holds.
const idleSessions = 200

// TestIdleMemory measures what an idle IMAP session costs the server: the clients run in a
// child process (this test binary again), so that only the server's heap and stacks are in
// the process measured. The goal is at most 16 KiB per session (docs/benchmarks.md).
func TestIdleMemory(t *testing.T) {
	if addr := os.Getenv("KUBEMAIL_IDLE_CLIENT_ADDR"); addr != "" {
		idleClients(t, addr)
		return
	}
	if testing.Short() {
		t.Skip("200 logins")
	}
	if os.Getenv("KUBEMAIL_IDLE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	var msBefore, msAfter runtime.MemStats
	before := memInUse()
	runtime.ReadMemStats(&msBefore)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleMemory$", "-test.count=1")
	cmd.Env = append(os.Environ(), "KUBEMAIL_IDLE_CLIENT_ADDR="+e.tlsAddr, "KUBEMAIL_IDLE_PASSWORD="+password)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	ready := false
	for lines.Scan() {
		if lines.Text() == "IDLING" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("the client process did not get its sessions into IDLE")
	}
	// Every session has had its "+ idling": each is in IDLE, waiting.
	after := memInUse()
	runtime.ReadMemStats(&msAfter)
	if f := os.Getenv("KUBEMAIL_IDLE_HEAPPROFILE"); f != "" {
		out, _ := os.Create(f)
		pprof.Lookup("heap").WriteTo(out, 0)
		out.Close()
	}
	// Live objects and stacks: heap in use also counts the unused rest of partly filled spans,
	// which varies from run to run.
	heap := (int64(msAfter.HeapAlloc) - int64(msBefore.HeapAlloc)) / idleSessions
	stacks := (int64(msAfter.StackInuse) - int64(msBefore.StackInuse)) / idleSessions
	t.Logf("an idle IMAP session (TLS, INBOX selected, in IDLE) costs the server %d bytes: %d of heap, %d of stack (heap and stacks in use: %d bytes per session)",
		heap+stacks, heap, stacks, (after-before)/idleSessions)
	// The stack is the waiting goroutine's: 2 to 8 KiB, as the runtime sizes new goroutines
	// from the stacks it has seen, so only the heap is held to a bound; the 16 KiB goal for
	// the whole is reported in docs/benchmarks.md.
	limit := int64(12 << 10)
	if raceEnabled {
		limit = 16 << 10 // the race detector's own share
	}
	if heap > limit {
		t.Errorf("an idle session holds %d bytes of heap, want at most %d", heap, limit)
	}
}

// idleClients is the child process: it opens the sessions, prints IDLING, and holds them until
// its stdin closes.
func idleClients(t *testing.T, addr string) {
	pw := os.Getenv("KUBEMAIL_IDLE_PASSWORD")
	var conns []*tls.Conn
	for i := range idleSessions {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n", alice, strconv.Quote(pw))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("session %d: %v", i, err)
			}
			if strings.HasPrefix(line, "+ ") {
				break
			}
		}
	}
	fmt.Println("IDLING")
	os.Stdin.Read(make([]byte, 1))
	for _, c := range conns {
		c.Close()
	}
}
