package server

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kubemail/kubemail/mailserver/queue"
)

// AdminSocketName is the Unix socket in the data directory that `mailserver queue` talks to.
// Only who can read the data directory (the server's user, kubectl exec) can reach it.
const AdminSocketName = "admin.sock"

// QueueEntry is one queued message as the queue endpoints report it.
type QueueEntry struct {
	queue.Message
	// Header is the message's header section (show only).
	Header string `json:"header,omitempty"`
}

// queueHandler serves the outbound queue under prefix:
//
//	GET    {prefix}queue             every queued message
//	GET    {prefix}queue/{id}        one message with its header
//	POST   {prefix}queue/{id}/retry  attempt it now
//	DELETE {prefix}queue/{id}        drop it without a bounce
func (s *Server) queueHandler(prefix string) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		writeJSON(w, v)
	}
	fail := func(w http.ResponseWriter, err error) {
		if errors.Is(err, queue.ErrNotFound) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	mux.HandleFunc("GET "+prefix+"queue", func(w http.ResponseWriter, r *http.Request) {
		out := []QueueEntry{}
		for _, m := range s.queue.List() {
			out = append(out, QueueEntry{Message: m})
		}
		reply(w, out)
	})
	mux.HandleFunc("GET "+prefix+"queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, hdr, err := s.queue.Get(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, QueueEntry{Message: m, Header: hdr})
	})
	mux.HandleFunc("POST "+prefix+"queue/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		if err := s.queue.Retry(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		s.log.Info("queued message retried by an administrator", "id", r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+prefix+"queue/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.queue.Delete(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// startAdminSocket serves the queue endpoints on <dataDir>/admin.sock. A data directory that
// cannot hold a socket (path too long, a file system without sockets) only loses the command.
func (s *Server) startAdminSocket() {
	path := filepath.Join(s.cfg.DataDir, AdminSocketName)
	os.Remove(path) // left by a previous run
	ln, err := net.Listen("unix", path)
	if err != nil {
		s.log.Warn("no admin socket: `mailserver queue` will not reach this server", "path", path, "err", err)
		return
	}
	// The data directory is private already; the socket is made so too.
	os.Chmod(path, 0o600)
	s.log.Info("listening", "listener", "admin", "addr", path)
	hs := &http.Server{Handler: s.queueHandler("/"), ReadHeaderTimeout: 10 * time.Second}
	s.serve("admin", func() error { return hs.Serve(ln) }, hs.Shutdown, hs.Close)
}
