package writebatch

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingConn counts the writes that reach the network.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// pair returns a wrapped server end over a counting TCP connection on loopback, and the
// client end.
func pair(t *testing.T) (*Conn, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: raw}
	server := New(counted)
	t.Cleanup(func() { server.Close(); client.Close() })
	client.SetDeadline(time.Now().Add(30 * time.Second))
	raw.SetDeadline(time.Now().Add(30 * time.Second))
	return server, counted, client
}

func TestRepliesToPipelinedCommandsLeaveInOneWrite(t *testing.T) {
	server, counted, client := pair(t)
	if _, err := io.WriteString(client, "a NOOP\r\nb NOOP\r\nc NOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(server)
	for _, tag := range []string{"a", "b", "c"} {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		io.WriteString(server, tag+" OK NOOP\r\n")
	}
	if n := counted.count(); n != 0 {
		t.Fatalf("%d writes reached the network before the session waited for input", n)
	}
	done := make(chan error, 1)
	go func() { _, err := br.ReadString('\n'); done <- err }()
	got := make([]byte, len("a OK NOOP\r\nb OK NOOP\r\nc OK NOOP\r\n"))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "a OK NOOP\r\nb OK NOOP\r\nc OK NOOP\r\n" {
		t.Errorf("client got %q", got)
	}
	if n := counted.count(); n != 1 {
		t.Errorf("three replies took %d writes, want 1", n)
	}
	client.Write([]byte("d LOGOUT\r\n"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWritesWhileAReadWaitsGoOutAtOnce(t *testing.T) {
	server, _, client := pair(t)
	readDone := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 64))
		readDone <- err
	}()
	waitReading(t, server)
	// An IDLE push from another goroutine: it must reach the client while the session still
	// waits for the client's next line.
	if _, err := io.WriteString(server, "* 1 EXISTS\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || line != "* 1 EXISTS\r\n" {
		t.Fatalf("client read %q, %v while the server was reading", line, err)
	}
	client.Write([]byte("DONE\r\n"))
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
}

func waitReading(t *testing.T, c *Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		r := c.reading
		c.mu.Unlock()
		if r > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Read did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseSendsWhatIsHeld(t *testing.T) {
	server, _, client := pair(t)
	io.WriteString(server, "* BYE shutting down\r\n")
	server.Close()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "* BYE shutting down\r\n" {
		t.Fatalf("client read %q, %v", got, err)
	}
}

func TestLongAnswersStream(t *testing.T) {
	server, counted, client := pair(t)
	chunk := strings.Repeat("x", 1000) + "\r\n"
	go io.Copy(io.Discard, client)
	for range 3 * MaxBuffered / len(chunk) {
		if _, err := io.WriteString(server, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.count(); n < 2 {
		t.Errorf("%d bytes reached the network in %d writes: held beyond MaxBuffered", 3*MaxBuffered, n)
	}
}

// A peer that pipelines and never reads fills the socket; the replies held for it must not
// keep the session's next Read waiting forever once the session has cleared its deadline.
func TestHeldRepliesToAPeerThatDoesNotReadTimeOut(t *testing.T) {
	server, counted, client := pair(t)
	// Fixed small socket buffers: no autotuning makes room while the test fills them.
	counted.Conn.(*net.TCPConn).SetWriteBuffer(4096)
	client.(*net.TCPConn).SetReadBuffer(4096)
	server.FlushTimeout = 200 * time.Millisecond
	chunk := []byte(strings.Repeat("x", MaxBuffered+1)) // larger than held: goes out at once
	server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		if _, err := server.Write(chunk); err != nil {
			break // the socket buffers are full
		}
	}
	server.SetWriteDeadline(time.Time{}) // as go-imap does once a reply is in its buffer
	server.Write(chunk[:MaxBuffered])    // held: more than a full socket takes
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(make([]byte, 64))
		done <- err
	}()
	select {
	case err := <-done:
		// The read deadline of pair is 30s away: the error must be the flush's.
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read: %v, want the held replies' write to time out", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Read still waiting to send held replies to a peer that does not read")
	}
}
