package handoff

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Each handoff carries an id in a first header field that the owner removes: a message the
// sending replica hands over again (its answer was lost, or it crashed before it could drop the
// queued copy) is then stored once. The owner remembers the ids it stored, per mailbox, on its
// volume for SeenFor.

// idField names the handoff id; it is the first line of the data a replica hands over.
const idField = "X-Kubemail-Handoff: "

// SeenFor is how long an owner remembers a handoff it stored: longer than any retry of the
// same message (the handoff queue gives up after outbound.maxAge, 5 days by default).
const SeenFor = 7 * 24 * time.Hour

// newID is a handoff id: 128 random bits.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// withID is the id field followed by the parts of the data, in one allocation.
func withID(id string, parts ...[]byte) []byte {
	head := idField + id + "\r\n"
	n := len(head)
	for _, p := range parts {
		n += len(p)
	}
	out := append(make([]byte, 0, n), head...)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// splitID takes the handoff id field off the top of data; "" when there is none (a replica of
// an older version).
func splitID(data []byte) (id string, rest []byte) {
	line, after, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte(idField)) {
		return "", data
	}
	id = strings.TrimSpace(string(line[len(idField):]))
	if len(id) == 0 || len(id) > 64 || strings.ContainsAny(id, "/\\. ") {
		return "", data
	}
	return id, after
}

// Seen remembers the handoffs stored, as empty files named by a hash of id and mailbox.
type Seen struct {
	dir string
	// locks serialise the check and the store of one handoff (striped by its hash), so that
	// two copies arriving at once are not both stored.
	locks [64]sync.Mutex
	prune sync.Mutex
}

// OpenSeen opens (creating it) the folder of remembered handoffs and forgets those older than
// SeenFor.
func OpenSeen(dir string) (*Seen, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Seen{dir: dir}
	s.Prune(time.Now().Add(-SeenFor))
	return s, nil
}

func (s *Seen) path(id, mailbox string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + mailbox))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:16]))
}

// Has reports whether the handoff id was stored for mailbox.
func (s *Seen) Has(id, mailbox string) bool {
	_, err := os.Stat(s.path(id, mailbox))
	return err == nil
}

// Add remembers that the handoff id is stored for mailbox. A crash between storing and Add
// means one duplicate at most, never a loss.
func (s *Seen) Add(id, mailbox string) error {
	f, err := os.OpenFile(s.path(id, mailbox), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// Prune forgets the handoffs remembered before cutoff.
func (s *Seen) Prune(cutoff time.Time) {
	s.prune.Lock()
	defer s.prune.Unlock()
	filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
			os.Remove(p)
		}
		return nil
	})
}

// lock holds the handoff id for mailbox until the returned function is called.
func (s *Seen) lock(id, mailbox string) func() {
	sum := sha256.Sum256([]byte(id + "\x00" + mailbox))
	m := &s.locks[int(sum[0])%len(s.locks)]
	m.Lock()
	return m.Unlock
}
