package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/durable"
)

// fsyncResult is what the data disk allows: writers each doing one durable write after another.
type fsyncResult struct {
	writers int
	// dirSync: each write is a whole Maildir delivery (file written and fsynced, renamed, the
	// directory fsynced), as kubemail's store does per message; otherwise one file fsync.
	dirSync bool
	ops     int
	elapsed time.Duration
	lat     []time.Duration // sorted
}

func (r fsyncResult) perSec() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r fsyncResult) label() string {
	what := "write 10 KiB + fsync"
	if r.dirSync {
		what = "write 10 KiB + fsync + rename + dir fsync"
	}
	if r.writers == 1 {
		return what + ", 1 writer"
	}
	return fmt.Sprintf("%s, %d writers", what, r.writers)
}

// probeFsync measures durable 10 KiB writes in dir (on the filesystem of the mail data) for
// about d, with writers concurrent writers, each in its own directory as each mailbox has its
// own. It removes what it wrote.
func probeFsync(dir string, writers int, dirSync bool, d time.Duration) (fsyncResult, error) {
	root, err := os.MkdirTemp(dir, "fsync-probe-")
	if err != nil {
		return fsyncResult{}, err
	}
	defer os.RemoveAll(root)
	payload := make([]byte, 10<<10)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	const maxOpsPerWriter = 200000 // bounds the loop whatever the disk
	lats := make([][]time.Duration, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wdir := filepath.Join(root, fmt.Sprint(w))
		for _, sub := range []string{"tmp", "cur"} {
			if err := os.MkdirAll(filepath.Join(wdir, sub), 0o755); err != nil {
				return fsyncResult{}, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < maxOpsPerWriter && time.Now().Before(deadline); n++ {
				t := time.Now()
				if err := durableWrite(wdir, n, payload, dirSync); err != nil {
					errs[w] = err
					return
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	res := fsyncResult{writers: writers, dirSync: dirSync, elapsed: time.Since(start)}
	for w := range writers {
		if errs[w] != nil {
			return res, errs[w]
		}
		res.lat = append(res.lat, lats[w]...)
	}
	res.ops = len(res.lat)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res, nil
}

func durableWrite(dir string, n int, payload []byte, dirSync bool) error {
	tmp := filepath.Join(dir, "tmp", fmt.Sprint(n))
	err := durable.WriteNew(tmp, 0o600, func(w *bufio.Writer) error {
		_, err := w.Write(payload)
		return err
	})
	if err != nil {
		return err
	}
	if !dirSync {
		return nil
	}
	if err := os.Rename(tmp, filepath.Join(dir, "cur", fmt.Sprint(n))); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Join(dir, "cur"))
}
