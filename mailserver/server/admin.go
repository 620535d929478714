package server

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// MailboxUsage is one stored mailbox as the admin API reports it.
type MailboxUsage struct {
	Address  string `json:"address"`
	Bytes    int64  `json:"bytes"`
	Messages int64  `json:"messages"`
}

// DirectoryMailbox is where the directory a replica has loaded puts a mailbox: the operator
// waits until every replica agrees before each step of a move.
type DirectoryMailbox struct {
	Shard  int  `json:"shard"`
	Frozen bool `json:"frozen"`
}

// HandoffBacklog is what a replica holds for other replicas, as the admin API reports it.
type HandoffBacklog struct {
	Messages int `json:"messages"`
	// Oldest is when the oldest of them was accepted; absent when there are none.
	Oldest *time.Time `json:"oldest,omitempty"`
}

// adminHandler serves the operator's endpoints:
//
//	GET    /admin/v1/mailboxes            usage of every stored mailbox
//	DELETE /admin/v1/mailboxes/{address}  purge a mailbox's stored mail
//	GET    /admin/v1/directory/mailboxes/{address}  where this replica's directory puts it
//	GET    /admin/v1/handoff              the messages waiting for other replicas
//	POST   /admin/v1/handoff/retry        hand them over now (after a move's cut-over)
//	POST   /admin/v1/moves/{address}/...  copy a mailbox here from another replica (see handleMoves)
//	GET, POST, DELETE /admin/v1/queue...  the outbound queue (see queueHandler)
//
// Every request needs "Authorization: Bearer <token>" with the token in the configured file.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/mailboxes", func(w http.ResponseWriter, r *http.Request) {
		addrs, err := s.store.Addresses()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out := []MailboxUsage{}
		for _, a := range addrs {
			// Counted without opening: the operator asks about every mailbox every minute.
			bytes, messages, err := s.store.Usage(a)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out = append(out, MailboxUsage{Address: a, Bytes: bytes, Messages: messages})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("DELETE /admin/v1/mailboxes/{address}", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := pathAddress(w, r)
		if !ok {
			return
		}
		if mb, live := s.dir.Load().Mailbox(addr); live && (mb.Shard == s.cfg.Shard || mb.Frozen) {
			// Purging a mailbox this replica still holds would destroy mail it keeps receiving;
			// the copy a move left behind (the directory names another replica) may go.
			http.Error(w, "mailbox "+addr+" is still in the directory, on this replica", http.StatusConflict)
			return
		}
		if err := s.store.DeleteMailbox(addr); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.log.Info("mailbox purged", "mailbox", addr)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/v1/directory/mailboxes/{address}", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := pathAddress(w, r)
		if !ok {
			return
		}
		mb, found := s.dir.Load().Mailbox(addr)
		if !found {
			http.Error(w, "mailbox "+addr+" is not in this replica's directory", http.StatusNotFound)
			return
		}
		writeJSON(w, DirectoryMailbox{Shard: mb.Shard, Frozen: mb.Frozen})
	})
	mux.HandleFunc("POST /admin/v1/handoff/retry", func(w http.ResponseWriter, r *http.Request) {
		n := 0
		if s.handoffQueue != nil {
			n = s.handoffQueue.RetryAll()
		}
		writeJSON(w, map[string]int{"messages": n})
	})
	mux.HandleFunc("GET /admin/v1/handoff", func(w http.ResponseWriter, r *http.Request) {
		var out HandoffBacklog
		if s.handoffQueue != nil {
			var oldest time.Time
			if out.Messages, oldest = s.handoffQueue.Backlog(); out.Messages > 0 {
				out.Oldest = &oldest
			}
		}
		writeJSON(w, out)
	})
	s.handleMoves(mux)
	queueAPI := s.queueHandler("/admin/v1/")
	mux.Handle("/admin/v1/queue", queueAPI)
	mux.Handle("/admin/v1/queue/", queueAPI)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.adminAuthorized(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// pathAddress is the request's {address}, in the store's normal form; a malformed one is
// answered 400 and ok is false.
func pathAddress(w http.ResponseWriter, r *http.Request) (addr string, ok bool) {
	addr, err := dirspec.NormalizeAddress(r.PathValue("address"))
	if err != nil {
		http.Error(w, "invalid address: "+err.Error(), http.StatusBadRequest)
		return "", false
	}
	return addr, true
}

func (s *Server) adminAuthorized(r *http.Request) bool {
	if s.cfg.Admin.TokenFile == "" {
		return false
	}
	want, err := os.ReadFile(s.cfg.Admin.TokenFile)
	if err != nil || len(strings.TrimSpace(string(want))) < 16 {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(strings.TrimSpace(string(want)))) == 1
}
