package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
)

// pythonCompress is a client of its own over Python's ssl and zlib (imaplib has no COMPRESS):
// it compresses with Z_SYNC_FLUSH, as Thunderbird and K-9 do. It prints IDLING when the
// server has accepted IDLE, waits for the test to deliver a message, and prints what it saw
// as JSON at the end.
const pythonCompress = `
import json, re, socket, ssl, sys, zlib
host, port, user, pw, big = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
PARTIAL = sys.argv[6] == "partial"
ctx = ssl._create_unverified_context()
sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=20), server_hostname=host)

class Conn:
    def __init__(self):
        self.buf, self.z, self.d, self.wire_in = b"", None, None, 0
    def recv(self):
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.wire_in += len(data)
        self.buf += self.d.decompress(data) if self.d else data
    def line(self):
        while b"\r\n" not in self.buf:
            self.recv()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l.decode()
    def read(self, n):
        while len(self.buf) < n:
            self.recv()
        r, self.buf = self.buf[:n], self.buf[n:]
        return r
    def send(self, b):
        sock.sendall(self.z.compress(b) + self.z.flush(zlib.Z_PARTIAL_FLUSH if PARTIAL else zlib.Z_SYNC_FLUSH) if self.z else b)
    def until(self, tag):
        lines, literals = [], []
        while True:
            l = self.line()
            m = re.search(r"\{(\d+)\}$", l)
            if m:
                literals.append(self.read(int(m.group(1))))
                l += self.line()
            lines.append(l)
            if l.startswith(tag + " "):
                return lines, literals
    def cmd(self, tag, text):
        self.send((tag + " " + text + "\r\n").encode())
        return self.until(tag)[0]

c, out = Conn(), {}
c.line()
c.cmd("a1", "LOGIN %s \"%s\"" % (user, pw))
out["compress"] = c.cmd("a2", "COMPRESS DEFLATE")
c.z, c.d = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
out["capability"] = c.cmd("a3", "CAPABILITY")
out["select"] = c.cmd("a4", "SELECT INBOX")
before = c.wire_in
c.send(b"a5 FETCH 1 BODY.PEEK[]\r\n")
lines, literals = c.until("a5")
out["fetch"], out["fetch_size"], out["fetch_wire"] = lines, len(literals[0]), c.wire_in - before
out["fetch_ok"] = literals[0] == b"x" * big
msg = b"Subject: appended compressed\r\n\r\nbody\r\n"
c.send(b"a6 APPEND INBOX {%d}\r\n" % len(msg))
out["continuation"] = c.line()
c.send(msg + b"\r\n")
out["append"] = c.until("a6")[0]
c.send(b"a7 IDLE\r\n")
out["idle"] = [c.line()]
print("IDLING", flush=True)
out["idle"].append(c.line())
c.send(b"DONE\r\n")
out["idle"] += c.until("a7")[0]
out["again"] = c.cmd("a8", "COMPRESS DEFLATE")
out["logout"] = c.cmd("a9", "LOGOUT")
print(json.dumps(out))
`

// A client written with Python's zlib reads compressed responses at once: after each command,
// after the continuation of a synchronising literal, and while idling; whether it ends each
// command with a sync flush (Thunderbird) or a partial one (mbsync), which leaves the end of
// the command in a block that is not byte-aligned.
func TestCompressPythonClient(t *testing.T) {
	for _, flush := range []string{"sync", "partial"} {
		t.Run(flush, func(t *testing.T) { testCompressPythonClient(t, flush) })
	}
}

func testCompressPythonClient(t *testing.T, flush string) {
	python := testutil.Program(t, "python3")
	e := newEnv(t)
	const big = 200_000
	body := strings.Repeat("x", big)
	e.deliver(alice, "INBOX", body)

	host, port := hostPort(t, e.tlsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pythonCompress, host, port, alice, password, fmt.Sprint(big), flush)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	if !lines.Scan() || lines.Text() != "IDLING" {
		cmd.Wait()
		t.Fatalf("python did not reach IDLE: %q\n%s", lines.Text(), stderr.String())
	}
	e.deliver(alice, "INBOX", message("during idle", "compressed"))
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("python printed nothing after IDLE\n%s", stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(lines.Bytes(), &out); err != nil {
		t.Fatalf("python output %q: %v\n%s", lines.Text(), err, stderr.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	checkPythonCompress(t, imaplibOutput{t: t, out: out}, big)
}

func checkPythonCompress(t *testing.T, o imaplibOutput, big int) {
	o.contains("compress", "a2 OK DEFLATE active")
	o.contains("capability", "COMPRESS=DEFLATE", "a3 OK")
	o.contains("select", "* 1 EXISTS", "a4 OK [READ-WRITE]")
	o.contains("fetch", "a5 OK")
	if o.str("fetch_size") != fmt.Sprint(big) || o.str("fetch_ok") != "true" {
		t.Errorf("FETCH BODY[] brought %s bytes (intact: %s), want %d", o.str("fetch_size"), o.str("fetch_ok"), big)
	}
	t.Logf("FETCH of %d bytes: %v bytes on the wire", big, o.out["fetch_wire"])
	// 200 kB of one letter crosses the wire in a few kB.
	if wire, _ := o.out["fetch_wire"].(float64); wire <= 0 || wire > float64(big)/20 {
		t.Errorf("FETCH of %d bytes took %v bytes on the wire", big, o.out["fetch_wire"])
	}
	o.contains("continuation", "+ ")
	o.contains("append", "a6 OK [APPENDUID ")
	o.contains("idle", "+ idling", "* 3 EXISTS", "a7 OK")
	o.contains("again", "a8 NO [COMPRESSIONACTIVE] DEFLATE is already active")
	o.contains("logout", "* BYE", "a9 OK")
}

func TestCompressRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.raw(t)
	checkLines(t, "COMPRESS before login", c.transact("b1", "COMPRESS DEFLATE"),
		"b1 BAD COMPRESS is not allowed before LOGIN")
	c.send(fmt.Sprintf("l1 LOGIN %s %q", alice, password))
	c.expect("l1 OK")
	for _, tc := range []struct{ command, want string }{
		{"COMPRESS", "BAD COMPRESS takes a mechanism: COMPRESS DEFLATE"},
		{"COMPRESS DEFLATE extra", "BAD COMPRESS takes a mechanism: COMPRESS DEFLATE"},
		{`COMPRESS "DEFLATE"`, "BAD COMPRESS takes a mechanism: COMPRESS DEFLATE"},
		{"COMPRESS GZIP", `NO Unknown compression mechanism "GZIP"; DEFLATE is offered`},
	} {
		checkLines(t, tc.command, c.transact("a1", tc.command), "a1 "+tc.want)
	}
	// The session still speaks plain text.
	checkLines(t, "NOOP", c.transact("a2", "NOOP"), "a2 OK NOOP completed")

	// A command sent behind COMPRESS, before its answer, ends the session.
	c.send("a3 COMPRESS DEFLATE\r\na4 NOOP")
	checkLines(t, "pipelined COMPRESS", []string{c.expect("a3 "), c.expect("* BYE")},
		"a3 BAD Commands sent after COMPRESS before its answer are refused", "* BYE Protocol violation")
	if _, err := c.r.ReadString('\n'); err != io.EOF {
		t.Errorf("after the refusal the connection gave %v, want EOF", err)
	}
}

// dialLoggedIn logs in over implicit TLS, without failing the test from another goroutine.
func dialLoggedIn(e *env, user string) (net.Conn, *bufio.Reader, error) {
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "l1 LOGIN %s %q\r\n", user, password)
	for {
		line, err := br.ReadString('\n')
		switch {
		case err != nil:
			conn.Close()
			return nil, nil, err
		case strings.HasPrefix(line, "l1 OK"):
			return conn, br, nil
		case strings.HasPrefix(line, "l1 "):
			conn.Close()
			return nil, nil, fmt.Errorf("LOGIN answered %q", line)
		}
	}
}

// compressedNoop is "n1 NOOP" from a client's fresh compressor, ended by a sync flush: what
// any client sends first after COMPRESS.
func compressedNoop(t testing.TB) []byte {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	zw.Write([]byte("n1 NOOP\r\n"))
	if err := zw.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressSession switches a logged-in connection to DEFLATE and sends one compressed NOOP,
// keeping nothing of the client's compressor.
func compressSession(t testing.TB, conn net.Conn, br *bufio.Reader, noop []byte) {
	fmt.Fprintf(conn, "c1 COMPRESS DEFLATE\r\n")
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "c1 OK") {
		t.Fatalf("COMPRESS answered %q, %v", line, err)
	}
	conn.Write(noop)
	zr := bufio.NewReader(flate.NewReader(br))
	if line, err := zr.ReadString('\n'); err != nil || !strings.HasPrefix(line, "n1 OK") {
		t.Fatalf("compressed NOOP answered %q, %v", line, err)
	}
}

// memInUse is the heap and stack in use after garbage collection. Twice: a sync.Pool lets go
// of its objects over two collections.
func memInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// An idle compressed session holds its inflater (the client's 32 KiB window), not a
// compressor (about 1.2 MB at BestSpeed): the compressor goes back to the pool at each flush.
// The number goes in docs/imap.md.
func TestCompressIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("200 logins")
	}
	const n = 200
	e := newEnv(t)
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 4 { // logins verify argon2id hashes: a few at a time
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				conns[i], readers[i], errs[i] = dialLoggedIn(e, alice)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer conns[i].Close()
	}
	noop := compressedNoop(t)
	plain := memInUse()
	for i := range conns {
		compressSession(t, conns[i], readers[i], noop)
	}
	compressed := memInUse()
	perConn := (compressed - plain) / n
	t.Logf("COMPRESS=DEFLATE adds %d bytes per idle session (%d sessions: %d bytes in use before, %d after)",
		perConn, n, plain, compressed)
	if perConn > 128<<10 {
		t.Errorf("an idle compressed session costs %d bytes more than a plain one, want under 128 KiB", perConn)
	}
}
