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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/handoff"
	"github.com/kubemail/kubemail/mailserver/imapd"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/move"
	"github.com/kubemail/kubemail/mailserver/pop3"
	"github.com/kubemail/kubemail/mailserver/queue"
	"github.com/kubemail/kubemail/mailserver/smtpd"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

// A cluster of several replicas: each serves every mailbox, and proxies the IMAP logins for
// the mailboxes of other shards to the replica that holds them (imapd.Proxy), which accepts
// them on its internal listener (imapd.Server.ServeInternal). Both sides of that connection
// present this replica's cluster certificate and trust the cluster's CA alone.

// clusterTLS is the internal connections' TLS: the listener's, which requires a client
// certificate from the cluster's CA, and the dialer's.
type clusterTLS struct {
	server, client *tls.Config
}

// startClusterTLS loads the cluster's certificate (reloaded when its files change) and CA.
func (s *Server) startClusterTLS(ctx context.Context) (*clusterTLS, error) {
	cc := s.cfg.Cluster
	caPEM, err := os.ReadFile(cc.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA %s: no PEM certificate in it", cc.CAFile)
	}
	r, err := tlsconf.NewReloader(cc.CertFile, cc.KeyFile, tlsconf.Options{
		OnError: func(err error) {
			s.log.Error("cluster certificate reload failed; keeping the current one", "err", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster certificate: %w", err)
	}
	s.background(ctx, func(ctx context.Context) { r.Run(ctx) })
	server := r.TLSConfig()
	server.MinVersion = tls.VersionTLS13
	server.ClientCAs, server.ClientAuth = pool, tls.RequireAndVerifyClientCert
	client := &tls.Config{MinVersion: tls.VersionTLS13,
		// The replica at the other end must hold a certificate from the cluster's CA; its
		// name is not checked: every replica holds the same certificate, so a name would add
		// nothing, and replicas are reached by address as well as by name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, pool, x509.ExtKeyUsageServerAuth)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return r.GetCertificate(nil) }}
	return &clusterTLS{server: server, client: client}, nil
}

// route sends the logins of other shards' mailboxes to their replicas, asking for the
// internal listener's protocol proto. A mailbox whose shard names no replica gets the temporary
// failure of an unreachable one: never a session on an empty mailbox here.
func (s *Server) route(ct *clusterTLS, proto string, mb *directory.Mailbox) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		conn, err := s.dialPeer(ctx, ct, proto, mb.Shard)
		if err != nil {
			return nil, fmt.Errorf("mailbox %s: %w", mb.Address, err)
		}
		return conn, nil
	}
}

// dialPeer connects to the internal listener of the replica of shard, for proto.
func (s *Server) dialPeer(ctx context.Context, ct *clusterTLS, proto string, shard int) (net.Conn, error) {
	addr := s.cfg.Cluster.Peer(shard)
	if addr == "" {
		return nil, fmt.Errorf("shard %d: the cluster's settings name no replica for it", shard)
	}
	cfg := ct.client.Clone()
	cfg.NextProtos = []string{proto}
	d := tls.Dialer{Config: cfg}
	return d.DialContext(ctx, "tcp", addr)
}

// pruneDaily forgets, once a day, the handoffs remembered longer than handoff.SeenFor.
func (s *Server) pruneDaily(seen *handoff.Seen) {
	s.background(context.Background(), func(ctx context.Context) {
		t := time.NewTicker(24 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				seen.Prune(time.Now().Add(-handoff.SeenFor))
			}
		}
	})
}

// verifyPeer checks the other end's certificate chain against the cluster's CA alone.
func verifyPeer(cs tls.ConnectionState, pool *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the replica presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// imapRoute sends the logins of other shards' mailboxes to their replicas.
func (s *Server) imapRoute(ct *clusterTLS) func(*directory.Mailbox) imapd.Takeover {
	return func(mb *directory.Mailbox) imapd.Takeover {
		switch {
		case mb.Frozen:
			return imapd.Proxy(moving(mb))
		case mb.Shard == s.cfg.Shard:
			return nil
		}
		return counted(s.metrics, "imap", imapd.Proxy(s.route(ct, protoIMAP, mb)))
	}
}

func (s *Server) pop3Route(ct *clusterTLS) func(*directory.Mailbox) pop3.Takeover {
	return func(mb *directory.Mailbox) pop3.Takeover {
		switch {
		case mb.Frozen:
			return pop3.Proxy(moving(mb))
		case mb.Shard == s.cfg.Shard:
			return nil
		}
		return counted(s.metrics, "pop3", pop3.Proxy(s.route(ct, protoPOP3, mb)))
	}
}

// moving is the route of a mailbox in the cut-over of a move: nowhere, for the moment. Its
// logins get the temporary failure of an owner that cannot be reached.
func moving(mb *directory.Mailbox) func(context.Context) (net.Conn, error) {
	return func(context.Context) (net.Conn, error) {
		return nil, fmt.Errorf("mailbox %s is moving between replicas", mb.Address)
	}
}

// counted is a login proxy that counts itself in proxied_sessions_total.
func counted[H any](m *metrics.Metrics, protocol string, take func(context.Context, H) error) func(context.Context, H) error {
	return func(ctx context.Context, h H) error {
		m.ProxiedSessions.WithLabelValues(protocol).Inc()
		return take(ctx, h)
	}
}

// The internal listener's protocols, as each replica asks for one in its TLS handshake (ALPN).
const (
	protoIMAP = "imap"
	protoPOP3 = "pop3"
	protoLMTP = "lmtp"
	// protoLimit counts the hourly submission limit at the mailbox's replica (HTTP).
	protoLimit = "limit"
	// protoMove serves the files of this replica's mailboxes to one that copies them (HTTP).
	protoMove = "move"
)

// deliverer is what stores accepted mail: the store, and in a cluster the handoff of other
// replicas' mailboxes to them, with its queue.
func (s *Server) deliverer() (smtpd.Deliverer, error) {
	local := &delivery.Local{Store: s.store}
	if s.cluster == nil {
		return local, nil
	}
	cc := s.cfg.Cluster
	s.holds = &handoff.Holds{Directory: &s.dir, Shard: s.cfg.Shard}
	client := &handoff.Client{Hostname: s.cfg.Hostname, Dial: func(ctx context.Context, shard int) (net.Conn, error) {
		return s.dialPeer(ctx, s.cluster, protoLMTP, shard)
	}}
	s.closers = append(s.closers, func() error { client.Close(); return nil })
	retry := cc.HandoffRetry.Duration
	if retry <= 0 {
		retry = 10 * time.Second
	}
	var err error
	s.handoffQueue, err = queue.Open(queue.Config{
		Dir: filepath.Join(s.cfg.DataDir, "handoff"), Hostname: s.cfg.Hostname,
		Transport: &handoff.Transport{Shard: s.cfg.Shard, Directory: &s.dir, Local: local, Client: client, Holds: s.holds},
		Workers:   4, MaxAge: s.cfg.Outbound.MaxAge.Duration, RetryInitial: retry, RetryMax: max(retry, time.Minute),
		ReturnDSN: s.returnDSN, Handoff: true, Metrics: s.metrics, Log: s.log.With("component", "handoff"),
	})
	if err != nil {
		return nil, fmt.Errorf("handoff queue: %w", err)
	}
	return &handoff.Deliverer{Local: local, Shard: s.cfg.Shard, Client: client, Queue: s.handoffQueue, Holds: s.holds,
		Timeout: cc.HandoffTimeout.Duration, Metrics: s.metrics, Log: s.log.With("component", "handoff")}, nil
}

// startCluster opens the internal listener, where other replicas' proxies log in, and serves
// each protocol there.
func (s *Server) startCluster(imapSrv *imapd.Server, pop3Srv *pop3.Server) error {
	ln, err := net.Listen("tcp", s.cfg.Cluster.Listen)
	if err != nil {
		return fmt.Errorf("cluster listener: %w", err)
	}
	s.Addrs["cluster"] = ln.Addr()
	s.log.Info("listening", "listener", "cluster", "addr", ln.Addr().String())
	cfg := s.cluster.server.Clone()
	protos := []string{protoIMAP, protoPOP3, protoLMTP, protoLimit, protoMove}
	cfg.NextProtos = protos
	mux := newALPNMux(tls.NewListener(ln, cfg), s.log, protos...)
	s.stopListeners = append(s.stopListeners, mux.Close)
	go mux.run()
	s.serve("cluster-imap", func() error { return imapSrv.ServeInternal(mux.listener(protoIMAP)) }, imapSrv.Shutdown, imapSrv.Close)
	s.serve("cluster-pop3", func() error { return pop3Srv.ServeInternal(mux.listener(protoPOP3)) }, pop3Srv.Shutdown, pop3Srv.Close)
	seen, err := handoff.OpenSeen(filepath.Join(s.cfg.DataDir, "handoff-seen"))
	if err != nil {
		return fmt.Errorf("handoffs stored: %w", err)
	}
	s.pruneDaily(seen)
	lmtp := handoff.NewServer(handoff.ServerConfig{Hostname: s.cfg.Hostname, Shard: s.cfg.Shard, Directory: &s.dir,
		Local: &delivery.Local{Store: s.store}, MaxMessageBytes: s.cfg.Limits.MaxMessageBytes, Seen: seen, Holds: s.holds,
		Log: s.log.With("listener", "cluster-lmtp")})
	s.serve("cluster-lmtp", func() error { return lmtp.Serve(mux.listener(protoLMTP)) },
		func(ctx context.Context) error { return handoff.Shutdown(ctx, lmtp) }, lmtp.Close)
	s.serveInternalHTTP("cluster-limit", mux.listener(protoLimit), sendLimitHandler(s.sendLimit))
	s.serveInternalHTTP("cluster-move", mux.listener(protoMove), move.Handler(s.store))
	return nil
}

// serveInternalHTTP serves h to the other replicas on ln, one protocol of the internal listener.
func (s *Server) serveInternalHTTP(name string, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.serve(name, func() error { return srv.Serve(plainConns{ln}) }, srv.Shutdown, srv.Close)
}

// plainConns hides that its connections are TLS from net/http, which would otherwise take
// their negotiated protocol for one of its own and drop them.
type plainConns struct{ net.Listener }

func (l plainConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// peerClient is an HTTP client for proto on the other replicas' internal listeners: a request
// for http://shard-N/... goes to the replica of shard N. Connections are kept for the next
// requests; timeout bounds each request (0: none).
func (s *Server) peerClient(proto string, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		shard, err := strconv.Atoi(strings.TrimPrefix(host, "shard-"))
		if err != nil {
			return nil, fmt.Errorf("no replica named %q", host)
		}
		return s.dialPeer(ctx, s.cluster, proto, shard)
	}
	transport := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute}
	s.closers = append(s.closers, func() error { transport.CloseIdleConnections(); return nil })
	return &http.Client{Transport: transport, Timeout: timeout}
}
