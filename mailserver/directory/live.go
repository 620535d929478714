package directory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Live holds the directory in force. Readers call Load on every use; sources call Store. A
// session that loaded a Directory keeps a consistent view even while a new one is swapped in.
type Live struct {
	cur atomic.Pointer[Directory]
}

// Load returns the directory in force, or an empty one before the first Store.
func (l *Live) Load() *Directory {
	if d := l.cur.Load(); d != nil {
		return d
	}
	return empty
}

// Store swaps in a new directory.
func (l *Live) Store(d *Directory) { l.cur.Store(d) }

// Loaded reports whether a directory was ever stored (the server is not ready before).
func (l *Live) Loaded() bool { return l.cur.Load() != nil }

var empty = &Directory{domains: map[string]*Domain{}, mailboxes: map[string]*Mailbox{},
	aliases: map[string][]string{}, owners: map[string]*Mailbox{}}

// Events receives what a source did, for logs and metrics.
type Events interface {
	// Reloaded is called after a new directory was swapped in.
	Reloaded(d *Directory)
	// Failed is called when new input was rejected; the previous directory stays in force.
	Failed(err error)
}

// Source feeds a Live directory until its context ends.
type Source interface {
	Run(ctx context.Context, live *Live, events Events) error
}

// FileSource reads the directory from a YAML or JSON file and reloads it when the file
// changes. It watches the file's folder (so editors' and Kubernetes' rename-into-place updates
// are seen) and also checks the content periodically in case an event is missed.
type FileSource struct {
	Path         string
	ValidateHash PasswordHashValidator
	// Interval between content checks; 0 means 2 seconds.
	Interval time.Duration
	Log      *slog.Logger
}

// LoadOnce parses the file once, for start-up, where a broken file is a fatal error.
func (s *FileSource) LoadOnce() (*Directory, []byte, error) {
	data, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, nil, err
	}
	d, err := Parse(data, s.ValidateHash)
	return d, data, err
}

// Run implements Source. The first load happens before Run returns control to the caller's
// next event, so callers usually call LoadOnce first for a clear start-up error.
func (s *FileSource) Run(ctx context.Context, live *Live, events Events) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	interval := s.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	var lastSum [32]byte
	var lastErr string
	check := func() {
		data, err := os.ReadFile(s.Path)
		if err == nil && len(data) == 0 {
			// A writer that truncates and then writes (os.WriteFile) is caught in between;
			// its write event brings the content. A directory is never empty.
			return
		}
		if err == nil {
			sum := sha256.Sum256(data)
			if sum == lastSum && live.Loaded() {
				return
			}
			var d *Directory
			d, err = Parse(data, s.ValidateHash)
			if err == nil {
				lastSum, lastErr = sum, ""
				live.Store(d)
				if events != nil {
					events.Reloaded(d)
				}
				return
			}
			lastSum = sum // don't re-parse the same broken content every tick
		}
		// Log a broken file once, not on every check; the metric stays raised meanwhile.
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			log.Error("directory file rejected; keeping the last good directory", "path", s.Path, "err", err)
			if events != nil {
				events.Failed(err)
			}
		}
	}
	check()

	w, err := fsnotify.NewWatcher()
	if err == nil {
		defer w.Close()
		if err := w.Add(filepath.Dir(s.Path)); err != nil {
			log.Warn("cannot watch the directory file's folder; relying on periodic checks", "err", err)
		}
	} else {
		log.Warn("cannot watch the directory file; relying on periodic checks", "err", err)
		w = &fsnotify.Watcher{}
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	base := filepath.Base(s.Path)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if ok && (filepath.Base(ev.Name) == base || bytes.HasPrefix([]byte(filepath.Base(ev.Name)), []byte(".."))) {
				check()
			}
		case <-w.Errors:
		case <-tick.C:
			check()
		}
	}
}
