// Package server runs the mail server: it opens the store and the directory, starts every
// configured listener with its TLS, PROXY protocol and connection limits, serves health and
// metrics over HTTP, and shuts down gracefully.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/dkim"
	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/handoff"
	"github.com/kubemail/kubemail/mailserver/imapd"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/outbound"
	"github.com/kubemail/kubemail/mailserver/pop3"
	"github.com/kubemail/kubemail/mailserver/proxyproto"
	"github.com/kubemail/kubemail/mailserver/queue"
	"github.com/kubemail/kubemail/mailserver/sendlimit"
	"github.com/kubemail/kubemail/mailserver/smtpd"
	"github.com/kubemail/kubemail/mailserver/srs"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
	"github.com/kubemail/kubemail/mailserver/writebatch"
)

// Server is a running mail server.
type Server struct {
	cfg     *config.Config
	log     *slog.Logger
	metrics *metrics.Metrics
	store   *store.Store
	dir     directory.Live
	auth    *login.Authenticator
	tls     *tls.Config
	// cluster is the TLS of the connections between replicas; nil for a replica alone.
	cluster *clusterTLS
	// handoffQueue holds mail for other replicas' mailboxes that they did not take at once.
	handoffQueue *queue.Queue
	// holds admits deliveries to this replica's mailboxes (frozen ones wait; see handoff.Holds).
	holds *handoff.Holds
	// deliver stores accepted mail: here, or in a cluster on each mailbox's replica (see
	// deliverer); everything that stores mail goes through it.
	deliver smtpd.Deliverer
	// sendLimit counts the submissions of the users whose mailboxes live here (nil: no limit).
	sendLimit *sendlimit.Limiter
	// enders end the IMAP and POP3 sessions of chosen mailboxes (see endSessions).
	endersMu sync.Mutex
	enders   []func(match func(address string) bool, text string) int
	limiter  *connLimiter

	resolver  *dnsresolve.Resolver
	signer    *dkim.Signer
	transport *outbound.Transport
	queue     *queue.Queue
	srs       *srs.SRS

	ready    atomic.Bool
	shutdown []func(context.Context) error
	// stopListeners close every listener at once: Close uses them, so a Start that failed half
	// way leaves nothing serving.
	stopListeners []func() error
	closers       []func() error
	wg            sync.WaitGroup
	// Addrs are the bound listener addresses by name, useful when a config asks for port 0.
	Addrs map[string]net.Addr
}

// DirectorySourceFactory builds the Kubernetes directory source; the operator's build sets it.
var DirectorySourceFactory func(cfg *config.KubernetesDirectory, validate directory.PasswordHashValidator, log *slog.Logger) (directory.Source, error)

// Start opens everything and starts serving; it returns once every listener is bound.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log, metrics: metrics.New(), Addrs: map[string]net.Addr{},
		limiter: newConnLimiter(cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerIP)}
	var err error
	if s.store, err = store.Open(cfg.DataDir, log); err != nil {
		return nil, err
	}
	s.store.SetHeaderCacheBytes(cfg.Store.HeaderCacheBudget(store.DefaultHeaderCacheBytes))
	s.metrics.Registry.MustRegister(newHeaderCacheCollector(s.store))
	s.closers = append(s.closers, s.store.Close)
	if err := s.startDirectory(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startTLS(ctx); err != nil {
		s.Close()
		return nil, err
	}
	lf := cfg.Limits.LoginFailures
	limiter := auth.NewLimiter(auth.LimiterConfig{FreeFailures: lf.FreeFailures, BaseDelay: lf.BaseDelay.Duration,
		MaxDelay: lf.MaxDelay.Duration, MaxIPFailures: lf.MaxIPFailures, MaxAccountFailures: lf.MaxAccountFailures,
		Window: lf.Window.Duration, KnownFor: lf.KnownAddressFor.Duration})
	if s.auth, err = login.New(&s.dir, limiter, s.metrics); err != nil {
		s.Close()
		return nil, err
	}
	s.auth.SetLog(log)
	if err := s.startOutbound(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startListeners(); err != nil {
		s.Close()
		return nil, err
	}
	s.startAdminSocket()
	s.queue.Start()
	if s.handoffQueue != nil {
		s.handoffQueue.Start()
	}
	s.ready.Store(true)
	return s, nil
}

type dirEvents struct{ s *Server }

func (e dirEvents) Reloaded(d *directory.Directory) {
	m := e.s.metrics
	m.DirectoryReloads.Inc()
	m.DirectoryValid.Set(1)
	domains, mailboxes, aliases := d.Counts()
	m.DirectoryEntries.WithLabelValues("domains").Set(float64(domains))
	m.DirectoryEntries.WithLabelValues("mailboxes").Set(float64(mailboxes))
	m.DirectoryEntries.WithLabelValues("aliases").Set(float64(aliases))
	e.s.log.Info("directory loaded", "domains", domains, "mailboxes", mailboxes, "aliases", aliases)
	if n := e.s.endSessions(func(addr string) bool { mb, ok := d.Mailbox(addr); return ok && mb.Frozen }); n > 0 {
		e.s.log.Info("ending the sessions of mailboxes that are moving", "sessions", n)
	}
}

// addEnder registers a protocol server's EndSessions with endSessions.
func (s *Server) addEnder(end func(match func(address string) bool, text string) int) {
	s.endersMu.Lock()
	defer s.endersMu.Unlock()
	s.enders = append(s.enders, end)
}

// endSessions ends the IMAP and POP3 sessions served here of the mailboxes match accepts (a
// move's cut-over) and returns how many of them are still running.
func (s *Server) endSessions(match func(address string) bool) int {
	s.endersMu.Lock()
	defer s.endersMu.Unlock()
	n := 0
	for _, end := range s.enders {
		n += end(match, "Mailbox moving between servers, try again in a moment")
	}
	return n
}

func (e dirEvents) Failed(error) {
	e.s.metrics.DirectoryErrors.Inc()
	e.s.metrics.DirectoryValid.Set(0)
}

func (s *Server) startDirectory(ctx context.Context) error {
	var src directory.Source
	switch {
	case s.cfg.Directory.File != "":
		fs := &directory.FileSource{Path: s.cfg.Directory.File, ValidateHash: passwordhash.ValidateHash, Log: s.log}
		d, _, err := fs.LoadOnce()
		if err != nil {
			return fmt.Errorf("directory %s: %w", s.cfg.Directory.File, err)
		}
		s.dir.Store(d)
		src = fs
	case DirectorySourceFactory != nil:
		var err error
		if src, err = DirectorySourceFactory(s.cfg.Directory.Kubernetes, passwordhash.ValidateHash, s.log); err != nil {
			return err
		}
	default:
		return errors.New("directory: the kubernetes source is not available in this build")
	}
	s.background(ctx, func(ctx context.Context) {
		if err := src.Run(ctx, &s.dir, dirEvents{s}); err != nil {
			s.log.Error("directory source stopped", "err", err)
		}
	})
	return nil
}

// background runs fn on a goroutine of its own until the server closes, which cancels its
// context and waits for it (Wait).
func (s *Server) background(ctx context.Context, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
	s.closers = append(s.closers, func() error { cancel(); return nil })
}

func (s *Server) startTLS(ctx context.Context) error {
	if s.cfg.Cluster.Enabled() {
		ct, err := s.startClusterTLS(ctx)
		if err != nil {
			return err
		}
		s.cluster = ct
	}
	if s.cfg.TLS.CertFile == "" {
		s.log.Warn("no TLS certificate configured: STARTTLS and AUTH are unavailable")
		return nil
	}
	r, err := tlsconf.NewReloader(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile, tlsconf.Options{
		OnReload: func(c *x509.Certificate) {
			s.metrics.TLSReloads.Inc()
			s.log.Info("TLS certificate reloaded", "subject", c.Subject.String(), "notAfter", c.NotAfter)
		},
		OnError: func(err error) {
			s.metrics.TLSReloadErrors.Inc()
			s.log.Error("TLS certificate reload failed; keeping the current one", "err", err)
		},
	})
	if err != nil {
		return err
	}
	s.background(ctx, func(ctx context.Context) { r.Run(ctx) })
	s.tls = r.TLSConfig()
	return nil
}

// listen binds one listener with PROXY protocol, connection limits and (implicit) TLS.
func (s *Server) listen(name string, l config.Listener, implicitTLS bool, busy string) (net.Listener, error) {
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", name, err)
	}
	s.Addrs[name] = ln.Addr()
	s.log.Info("listening", "listener", name, "addr", ln.Addr().String(), "proxyProtocol", l.ProxyProtocol, "implicitTLS", implicitTLS)
	if l.ProxyProtocol {
		trusted, err := proxyproto.ParseTrusted(s.cfg.ProxyProtocol.TrustedNetworks)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = proxyproto.NewListener(ln, trusted, proxyproto.Options{OnError: func(remote net.Addr, err error) {
			s.metrics.ConnectionsRejected.WithLabelValues(name, "proxy_header").Inc()
			s.log.Warn("bad PROXY header", "listener", name, "remote", remote.String(), "err", err)
		}})
	}
	limited := &limitedListener{Listener: ln, limiter: s.limiter, name: name, busy: busy,
		active: s.metrics.ConnectionsActive.WithLabelValues(name), total: s.metrics.Connections.WithLabelValues(name),
		refused: s.metrics.ConnectionsRejected}
	if implicitTLS {
		limited.tls = s.tls
	}
	ln = limited
	// Below TLS, so that implicit TLS and STARTTLS alike send the replies to pipelined
	// commands together.
	ln = writebatch.Listener{Listener: ln, FlushTimeout: s.cfg.Limits.WriteTimeout.Duration}
	if implicitTLS {
		ln = tls.NewListener(ln, s.tls)
	}
	// Closed by Close even if its server has not begun to Serve it yet.
	s.stopListeners = append(s.stopListeners, ln.Close)
	return ln, nil
}

func (s *Server) startListeners() error {
	ls := s.cfg.Listeners
	local, err := s.deliverer()
	if err != nil {
		return err
	}
	s.deliver = local
	smtpBusy := "421 4.7.0 Too many connections, try again later\r\n"
	type smtpListener struct {
		name     string
		l        config.Listener
		role     smtpd.Role
		implicit bool
	}
	checks := s.newInboundChecks()
	s.sendLimit = sendlimit.New(sendlimit.Config{Limit: s.cfg.Limits.MaxMessagesPerHour})
	if s.sendLimit != nil {
		s.log.Info("submission is limited per user", "maxMessagesPerHour", s.sendLimit.Limit())
	}
	sendLimit := s.sendLimiter()
	for _, sl := range []smtpListener{
		{"smtp", ls.SMTP, smtpd.RoleMX, false},
		{"submission", ls.Submission, smtpd.RoleSubmission, false},
		{"submissions", ls.Submissions, smtpd.RoleSubmission, true},
	} {
		if sl.l.Address == "" {
			continue
		}
		ln, err := s.listen(sl.name, sl.l, sl.implicit, smtpBusy)
		if err != nil {
			return err
		}
		var slChecks smtpd.InboundChecker
		var returnPaths smtpd.ReturnPaths
		if sl.role == smtpd.RoleMX {
			slChecks, returnPaths = checks, s.srs
		}
		srv := smtpd.NewServer(smtpd.Config{
			Role: sl.role, Name: sl.name, Hostname: s.cfg.Hostname, Checks: slChecks, ReturnPaths: returnPaths,
			MaxMessageBytes: s.cfg.Limits.MaxMessageBytes, MaxRecipients: s.cfg.Limits.MaxRecipients,
			ReadTimeout: s.cfg.Limits.ReadTimeout.Duration, WriteTimeout: s.cfg.Limits.WriteTimeout.Duration,
			Directory: &s.dir, Local: local, Outbound: outboundAdapter{s}, Auth: s.auth, SendLimit: sendLimit, Metrics: s.metrics,
			Log: s.log.With("listener", sl.name),
		}, s.tls)
		s.serve(sl.name, func() error { return srv.Serve(ln) }, srv.Shutdown, srv.Close)
	}
	if err := s.startMailAccess(); err != nil {
		return err
	}
	if ls.HTTP.Address != "" {
		ln, err := net.Listen("tcp", ls.HTTP.Address)
		if err != nil {
			return fmt.Errorf("listener http: %w", err)
		}
		s.Addrs["http"] = ln.Addr()
		s.stopListeners = append(s.stopListeners, ln.Close)
		s.log.Info("listening", "listener", "http", "addr", ln.Addr().String())
		hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
		s.serve("http", func() error { return hs.Serve(ln) }, hs.Shutdown, hs.Close)
	}
	return s.startAutoconfig()
}

// startMailAccess serves IMAP and POP3 on their listeners and, in a cluster, the internal
// listener where the other replicas reach this one's mailboxes.
func (s *Server) startMailAccess() error {
	ls := s.cfg.Listeners
	imapCfg := imapd.Config{Hostname: s.cfg.Hostname, Store: s.store, Auth: s.auth, Metrics: s.metrics,
		TLSConfig: s.tls, MaxMessageBytes: s.cfg.Limits.MaxMessageBytes, Log: s.log.With("listener", "imap")}
	if s.cluster != nil {
		imapCfg.Route = s.imapRoute(s.cluster)
	}
	imapSrv := imapd.NewServer(imapCfg)
	s.addEnder(imapSrv.EndSessions)
	for _, il := range []struct {
		name     string
		l        config.Listener
		implicit bool
	}{{"imap", ls.IMAP, false}, {"imaps", ls.IMAPS, true}} {
		if il.l.Address == "" {
			continue
		}
		ln, err := s.listen(il.name, il.l, il.implicit, "* BYE Too many connections, try again later\r\n")
		if err != nil {
			return err
		}
		s.serve(il.name, func() error { return imapSrv.Serve(ln) }, imapSrv.Shutdown, imapSrv.Close)
	}
	pop3Cfg := pop3.Config{Hostname: s.cfg.Hostname, Store: s.store, Auth: s.auth, Metrics: s.metrics,
		TLSConfig: s.tls, Log: s.log.With("listener", "pop3"), WriteTimeout: s.cfg.Limits.WriteTimeout.Duration}
	if s.cluster != nil {
		pop3Cfg.Route = s.pop3Route(s.cluster)
	}
	pop3Srv := pop3.NewServer(pop3Cfg)
	s.addEnder(pop3Srv.EndSessions)
	for _, pl := range []struct {
		name     string
		l        config.Listener
		implicit bool
	}{{"pop3", ls.POP3, false}, {"pop3s", ls.POP3S, true}} {
		if pl.l.Address == "" {
			continue
		}
		ln, err := s.listen(pl.name, pl.l, pl.implicit, "-ERR [SYS/TEMP] Too many connections, try again later\r\n")
		if err != nil {
			return err
		}
		s.serve(pl.name, func() error { return pop3Srv.Serve(ln) }, pop3Srv.Shutdown, pop3Srv.Close)
	}
	if s.cluster != nil {
		if err := s.startCluster(imapSrv, pop3Srv); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) serve(name string, run func() error, shutdown func(context.Context) error, closeFn func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := run(); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) &&
			!errors.Is(err, net.ErrClosed) && !errors.Is(err, pop3.ErrServerClosed) {
			s.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
	closeOnce := sync.OnceValue(closeFn)
	s.shutdown = append(s.shutdown, func(ctx context.Context) error {
		if err := shutdown(ctx); err != nil {
			return closeOnce()
		}
		return nil
	})
	s.stopListeners = append(s.stopListeners, closeOnce)
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/admin/", s.adminHandler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() || !s.dir.Loaded() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Shutdown stops accepting, lets transactions in flight finish within the configured bound,
// then closes everything. With limits.drainDelay it first reports itself not ready and goes
// on serving for that long, until the Service's endpoints have dropped it; meanwhile the
// messages it holds for other replicas are handed over without waiting for their next turn.
func (s *Server) Shutdown() {
	s.ready.Store(false)
	if d := s.cfg.Limits.DrainDelay.Duration; d > 0 {
		handoffs := 0
		if s.handoffQueue != nil {
			handoffs = s.handoffQueue.RetryAll()
		}
		s.log.Info("draining: not ready, still serving", "for", d, "handoffsDue", handoffs)
		time.Sleep(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.ShutdownTimeout.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, fn := range s.shutdown {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(ctx)
		}()
	}
	wg.Wait()
	// Nothing new arrives now; attempts in flight get what is left of the time.
	s.shutdownOutbound(ctx)
	s.Close()
}

// Close stops everything at once: the listeners first, then what they use.
func (s *Server) Close() {
	for _, stop := range s.stopListeners {
		stop()
	}
	s.stopListeners = nil
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// Wait blocks until every listener goroutine has ended.
func (s *Server) Wait() { s.wg.Wait() }
