package imapd

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// Benchmarks run against a real store on disk, over TLS on loopback: what a client on the same
// host would see. Appends are fsynced, so their cost is mostly the disk's.

func TestMain(m *testing.M) {
	code := m.Run()
	prefilled.cleanup()
	os.Exit(code)
}

// prefilled keeps store roots with many messages across a benchmark's runs (the framework
// calls a benchmark several times); filling them costs an fsync per message.
var prefilled = &benchData{roots: map[int]string{}}

type benchData struct {
	mu    sync.Mutex
	roots map[int]string // by message count
}

func (p *benchData) root(b *testing.B, n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.roots[n]; ok {
		return r
	}
	root, err := os.MkdirTemp("", "imapd-bench-")
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(root, nil)
	if err != nil {
		b.Fatal(err)
	}
	box, err := st.Mailbox(alice)
	if err != nil {
		b.Fatal(err)
	}
	inbox := box.Inbox()
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				msg := message(fmt.Sprintf("benchmark message %d", i), strings.Repeat("Lorem ipsum dolor sit amet. ", 40))
				if _, err := inbox.Append(strings.NewReader(msg), nil, time.Time{}); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	st.Close()
	p.roots[n] = root
	return root
}

func (p *benchData) cleanup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.roots {
		os.RemoveAll(r)
	}
}

// BenchmarkAppend is one APPEND of a 1 KiB message, round trip included.
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b)
	c := e.client(alice, nil)
	msg := message("benchmark", strings.Repeat("Lorem ipsum dolor sit amet. ", 30))
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchHeaders1000 is one UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER]) of a folder of
// 1,000 messages.
func BenchmarkFetchHeaders1000(b *testing.B) {
	root := prefilled.root(b, 1000)
	e := newEnv(b, func(o *envOptions) { o.root = root })
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	opts := &imap.FetchOptions{UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) != 1000 {
			b.Fatalf("fetched %d messages", len(msgs))
		}
	}
}

// BenchmarkSelect10000 is one SELECT of a folder of 10,000 messages (the previous selection is
// closed by it).
func BenchmarkSelect10000(b *testing.B) {
	root := prefilled.root(b, 10000)
	e := newEnv(b, func(o *envOptions) { o.root = root })
	c := e.client(alice, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			b.Fatal(err)
		}
		if data.NumMessages != 10000 {
			b.Fatalf("SELECT found %d messages", data.NumMessages)
		}
	}
}
