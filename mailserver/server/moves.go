package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/move"
	"github.com/kubemail/kubemail/mailserver/store"
)

// MoveStats is what one copy of a moving mailbox did, as the admin API reports it.
type MoveStats struct {
	Files   int     `json:"files"`
	Bytes   int64   `json:"bytes"`
	Removed int     `json:"removed"`
	Skipped int     `json:"skipped"`
	Seconds float64 `json:"seconds"`
}

// moves runs the copies of mailboxes coming to this replica, one at a time per mailbox.
type moves struct {
	mu      sync.Mutex
	running map[string]bool
	client  *http.Client // to the other replicas' move service
}

func (m *moves) begin(addr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running[addr] {
		return false
	}
	if m.running == nil {
		m.running = map[string]bool{}
	}
	m.running[addr] = true
	return true
}

func (m *moves) end(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.running, addr)
}

// handleMoves adds the operator's endpoints that move a mailbox to this replica:
//
//	POST /admin/v1/moves/{address}/pull?from=N  copy the mailbox from the replica of shard N
//	                                            (again: only what changed since the last copy)
//	POST /admin/v1/moves/{address}/adopt        make the copy this replica's mailbox
//	POST /admin/v1/moves/{address}/end-sessions on the source: end the mailbox's IMAP and POP3
//	                                            sessions; {"sessions": n} of them and of the
//	                                            deliveries to it still running (poll until 0
//	                                            before the last copy)
func (s *Server) handleMoves(mux *http.ServeMux) {
	m := &moves{}
	if s.cluster != nil {
		m.client = s.peerClient(protoMove, 0)
	}
	mux.HandleFunc("POST /admin/v1/moves/{address}/pull", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := pathAddress(w, r)
		if !ok {
			return
		}
		from, err := strconv.Atoi(r.URL.Query().Get("from"))
		switch {
		case m.client == nil:
			http.Error(w, "this replica is not part of a cluster of several", http.StatusConflict)
			return
		case err != nil || from < 0 || from == s.cfg.Shard:
			http.Error(w, "from must name another replica's shard", http.StatusBadRequest)
			return
		case !m.begin(addr):
			http.Error(w, "a copy of "+addr+" is running already", http.StatusConflict)
			return
		}
		defer m.end(addr)
		staging, err := s.store.StagingDir(addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		st, err := move.Pull(r.Context(), m.client, fmt.Sprintf("http://shard-%d", from), addr, staging)
		if err != nil {
			s.log.Warn("copying a moving mailbox failed", "mailbox", addr, "from", from, "err", err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out := MoveStats{Files: st.Files, Bytes: st.Bytes, Removed: st.Removed, Skipped: st.Skipped, Seconds: time.Since(start).Seconds()}
		s.log.Info("copied a moving mailbox", "mailbox", addr, "from", from, "files", out.Files, "bytes", out.Bytes,
			"removed", out.Removed, "seconds", out.Seconds)
		writeJSON(w, out)
	})
	mux.HandleFunc("POST /admin/v1/moves/{address}/end-sessions", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := pathAddress(w, r)
		if !ok {
			return
		}
		// Deliveries that began before the mailbox froze count as sessions: the last copy
		// must wait for them too.
		n := s.endSessions(func(a string) bool { return a == addr }) + s.holds.InFlight(addr)
		writeJSON(w, map[string]int{"sessions": n})
	})
	mux.HandleFunc("POST /admin/v1/moves/{address}/adopt", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := pathAddress(w, r)
		if !ok {
			return
		}
		if !m.begin(addr) {
			http.Error(w, "a copy of "+addr+" is running", http.StatusConflict)
			return
		}
		defer m.end(addr)
		switch err := s.store.Adopt(addr); {
		case errors.Is(err, store.ErrMailboxExists):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			s.log.Info("adopted a moved mailbox", "mailbox", addr)
			w.WriteHeader(http.StatusNoContent)
		}
	})
}
