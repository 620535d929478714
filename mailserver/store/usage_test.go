package store

import (
	"strings"
	"testing"
	"time"
)

// Usage counts a mailbox that is not open from its files, without opening it, and agrees with
// the counters of the same mailbox once it is open.
func TestUsageWithoutOpening(t *testing.T) {
	root := t.TempDir()
	first := openStore(t, root)
	var want int64
	for i, body := range []string{"one\r\n", "two, a little longer\r\n", "three\r\n"} {
		m, err := inbox(t, first, "Alice@example.com").Append(strings.NewReader("Subject: "+body+"\r\n"+body), nil, time.Time{})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		want += m.Size
	}
	sent, err := first.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	sentFolder, err := sent.Folder("Sent")
	if err != nil {
		t.Fatal(err)
	}
	m, err := sentFolder.Append(strings.NewReader("Subject: sent\r\n\r\nbody\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want += m.Size
	first.Close()

	s := openStore(t, root) // as after a restart: nothing open
	bytes, messages, err := s.Usage("alice@EXAMPLE.com")
	if err != nil || bytes != want || messages != 4 {
		t.Fatalf("Usage = %d bytes, %d messages, %v; want %d, 4", bytes, messages, err, want)
	}
	if _, open := s.boxes["alice@example.com"]; open {
		t.Fatal("Usage opened the mailbox")
	}
	if b, n, err := s.Usage("nobody@example.com"); b != 0 || n != 0 || err != nil {
		t.Errorf("Usage of a mailbox never stored = %d, %d, %v", b, n, err)
	}

	// Once open, the live counters answer, and they agree with the count.
	f := inbox(t, s, "alice@example.com")
	if got := f.mbox.Usage(); got != want {
		t.Errorf("open mailbox usage %d, counted %d", got, want)
	}
	added, err := f.Append(strings.NewReader("Subject: later\r\n\r\nlater\r\n"), nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes, messages, _ := s.Usage("alice@example.com"); bytes != want+added.Size || messages != 5 {
		t.Errorf("after a delivery Usage = %d, %d; want %d, 5", bytes, messages, want+added.Size)
	}
}
