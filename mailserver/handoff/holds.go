package handoff

import (
	"sync"

	"github.com/kubemail/kubemail/mailserver/directory"
)

// Holds counts the deliveries into this replica's store in flight, by mailbox, and lets one
// begin only while the directory in force says the mailbox lives here and is not frozen. A
// move's cut-over freezes the mailbox, then waits until InFlight is 0 before its last copy: a
// delivery that looked at the directory before the freeze arrived is then stored already,
// and one that looks after it sees the freeze (and queues the message instead).
type Holds struct {
	Directory *directory.Live
	Shard     int

	mu sync.Mutex
	n  map[string]int
}

// Begin registers a delivery to the mailbox of address and reports whether it may be stored
// here now; release ends it (a no-op when ok is false).
func (h *Holds) Begin(address string) (release func(), ok bool) {
	h.mu.Lock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[address]++
	h.mu.Unlock()
	release = func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.n[address]--; h.n[address] <= 0 {
			delete(h.n, address)
		}
	}
	// Counted before the look: a freeze that lands after the look finds this delivery counted.
	mb, found := h.Directory.Load().Mailbox(address)
	if !found || mb.Frozen || mb.Shard != h.Shard {
		release()
		return func() {}, false
	}
	return release, true
}

// InFlight is the number of deliveries to the mailbox of address under way.
func (h *Holds) InFlight(address string) int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[address]
}
