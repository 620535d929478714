package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/kubemail/kubemail/mailserver/autoconfig"
)

// httpBusy refuses an HTTP client over the connection limits.
const httpBusy = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

// startAutoconfig serves client autoconfiguration and the MTA-STS policy when the settings
// ask for it, through the same PROXY protocol, connection limits and certificate as the mail
// listeners.
func (s *Server) startAutoconfig() error {
	l := s.cfg.Listeners.Autoconfig
	if l.Address == "" {
		return nil
	}
	a := s.cfg.Autoconfig
	ln, err := s.listen("autoconfig", l, !a.PlainHTTP, httpBusy)
	if err != nil {
		return err
	}
	h := autoconfig.New(autoconfig.Config{
		Hostname: s.cfg.Hostname,
		Ports: autoconfig.Ports{IMAPS: a.Ports.IMAPS, POP3S: a.Ports.POP3S,
			Submissions: a.Ports.Submissions, Submission: a.Ports.Submission},
		Directory:    &s.dir,
		MTASTSMode:   a.MTASTS.Mode,
		MTASTSMaxAge: a.MTASTS.MaxAge.Duration,
	})
	// The documents are small and public: short timeouts keep idle clients from holding
	// connection slots the mail listeners share. net/http's own errors are mostly failed TLS
	// handshakes of scanners, worth seeing only when looking for them.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.With("listener", "autoconfig").Handler(), slog.LevelDebug)}
	s.serve("autoconfig", func() error { return hs.Serve(ln) }, hs.Shutdown, hs.Close)
	return nil
}
