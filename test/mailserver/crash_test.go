package mailserver_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/store"
)

var tokenRE = regexp.MustCompile(`X-Token: (\S+)\r\n`)

// TestCrashLosesNoAcknowledgedMail streams messages from several clients, kills the server
// with SIGKILL at a random moment, restarts it on the same data, and checks that every message
// that got a 250 is stored exactly once and that the index agrees with the files.
// KUBEMAIL_CRASH_ROUNDS sets the number of rounds (default 3).
func TestCrashLosesNoAcknowledgedMail(t *testing.T) {
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("KUBEMAIL_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	s := startServer(t)
	rcpts := []string{"alice@example.com", "bob@example.org"}
	acked := map[string]string{} // token -> recipient
	uidOf := map[string]string{} // token -> mailbox/uid seen in an earlier round
	var totalAcked, found, lost, dup int
	for round := 0; round < rounds; round++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		addr := s.addr("smtp")
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5000; i++ { // bounded; the kill ends it long before
					select {
					case <-stop:
						return
					default:
					}
					token := fmt.Sprintf("r%d-c%d-%d", round, c, i)
					rcpt := rcpts[(c+i)%len(rcpts)]
					msg := fmt.Sprintf("From: load@elsewhere.net\r\nTo: %s\r\nSubject: crash %s\r\nX-Token: %s\r\n\r\n%s\r\n",
						rcpt, token, token, strings.Repeat("crash-safety body line\r\n", 40))
					if err := sendPlain(addr, "load@elsewhere.net", rcpt, msg); err != nil {
						return // the server died mid-transaction: this one was not acknowledged
					}
					mu.Lock()
					acked[token] = rcpt
					mu.Unlock()
				}
			}()
		}
		// Crash at a random moment once the load is flowing.
		before := len(acked)
		serverPoll.Eventually(t, "the load to flow", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= before+10 })
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		s.proc.Kill()
		close(stop)
		wg.Wait()
		s.start()

		found, lost, dup = verifyTokens(t, s, rcpts, acked, uidOf)
		totalAcked = len(acked)
		t.Logf("round %d: acknowledged %d, found %d, lost %d, duplicated %d", round+1, len(acked), found, lost, dup)
		if lost > 0 || dup > 0 {
			t.Fatalf("round %d lost %d and duplicated %d acknowledged messages", round+1, lost, dup)
		}
	}
	if totalAcked == 0 {
		t.Fatal("no message was acknowledged before the crashes; the test proved nothing")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	verifyIndex(t, s.cfg.DataDir, rcpts)
	t.Logf("after %d rounds: acknowledged %d, found %d, lost %d, duplicated %d; the index agrees with the files",
		rounds, totalAcked, found, lost, dup)
}

// verifyTokens reads every stored message and checks acknowledged tokens: found once, in the
// right mailbox, under the UID it had in earlier rounds.
func verifyTokens(t *testing.T, s *server, rcpts []string, acked, uidOf map[string]string) (found, lost, dup int) {
	t.Helper()
	seen := map[string]int{}
	where := map[string]string{}
	for _, rcpt := range rcpts {
		local, domain, _ := strings.Cut(rcpt, "@")
		dir := filepath.Join(s.cfg.DataDir, "mailboxes", domain, local, "INBOX", "cur")
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			m := tokenRE.FindSubmatch(data)
			if m == nil {
				t.Fatalf("stored message %s has no token (torn write?)", e.Name())
			}
			tok := string(m[1])
			seen[tok]++
			uid, _, _ := strings.Cut(e.Name(), ".")
			where[tok] = rcpt + "/" + uid
		}
	}
	for tok, rcpt := range acked {
		switch n := seen[tok]; {
		case n == 0:
			lost++
			t.Errorf("acknowledged message %s for %s is missing", tok, rcpt)
		case n > 1:
			dup++
		default:
			found++
			if !strings.HasPrefix(where[tok], rcpt+"/") {
				t.Errorf("message %s stored at %s, want mailbox %s", tok, where[tok], rcpt)
			}
			if prev, ok := uidOf[tok]; ok && prev != where[tok] {
				t.Errorf("message %s changed UID across a restart: %s -> %s", tok, prev, where[tok])
			}
			uidOf[tok] = where[tok]
		}
	}
	return found, lost, dup
}

// verifyIndex opens the store as the server would and checks the index against the files.
func verifyIndex(t *testing.T, dataDir string, rcpts []string) {
	t.Helper()
	st, err := store.Open(dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, rcpt := range rcpts {
		mb, err := st.Mailbox(rcpt)
		if err != nil {
			t.Fatal(err)
		}
		msgs, status := mb.Inbox().Messages()
		local, domain, _ := strings.Cut(rcpt, "@")
		entries, err := os.ReadDir(filepath.Join(dataDir, "mailboxes", domain, local, "INBOX", "cur"))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(msgs) {
			t.Fatalf("%s: index has %d messages, %d files", rcpt, len(msgs), len(entries))
		}
		var total int64
		for i, m := range msgs {
			if i > 0 && m.UID <= msgs[i-1].UID {
				t.Fatalf("%s: UIDs not strictly increasing at %d", rcpt, i)
			}
			f, err := mb.Inbox().Open(m.UID)
			if err != nil {
				t.Fatalf("%s: UID %d in the index has no file: %v", rcpt, m.UID, err)
			}
			fi, _ := f.Stat()
			f.Close()
			if fi.Size() != m.Size {
				t.Fatalf("%s: UID %d size %d in the index, %d on disk", rcpt, m.UID, m.Size, fi.Size())
			}
			total += m.Size
		}
		if status.UIDNext <= msgs[len(msgs)-1].UID || mb.Usage() != total {
			t.Fatalf("%s: uidnext %d, usage %d (want %d)", rcpt, status.UIDNext, mb.Usage(), total)
		}
	}
}

// sendPlain sends one message over a plain SMTP connection (no STARTTLS: the test's
// self-signed certificate is beside the point here) and returns nil only on 250.
func sendPlain(addr, from, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("load.example.net"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit() // the 250 for DATA above is the acknowledgement; QUIT may meet the crash
	return nil
}
