package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/dkim"
	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/durable"
	"github.com/kubemail/kubemail/mailserver/outbound"
	"github.com/kubemail/kubemail/mailserver/queue"
	"github.com/kubemail/kubemail/mailserver/srs"
)

// startOutbound opens the queue and its transport; the queue starts delivering once the
// listeners are up (in Start).
func (s *Server) startOutbound() error {
	if err := s.startSRS(); err != nil {
		return err
	}
	var err error
	if s.resolver, err = dnsresolve.New(s.cfg.DNS.Resolver); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	o := s.cfg.Outbound
	tcfg := outbound.Config{
		Hostname: s.cfg.Hostname, Resolver: s.resolver, MXPort: o.MXPort,
		ConnectTimeout: o.ConnectTimeout.Duration, CommandTimeout: o.CommandTimeout.Duration,
		MaxConnectionsPerDestination: o.MaxConnectionsPerDomain,
		Metrics:                      s.metrics, Log: s.log.With("component", "outbound"),
	}
	if o.SourceAddress != "" {
		tcfg.SourceIP = net.ParseIP(o.SourceAddress)
	}
	if r := o.Relay; r != nil {
		relay := &outbound.Relay{Host: r.Host, Port: r.Port, ImplicitTLS: r.TLS == "implicit", PlainText: r.TLS == "none",
			UsernameFile: r.UsernameFile, PasswordFile: r.PasswordFile}
		if r.CAFile != "" {
			pem, err := os.ReadFile(r.CAFile)
			if err != nil {
				return fmt.Errorf("outbound.relay.caFile: %w", err)
			}
			relay.RootCAs = x509.NewCertPool()
			if !relay.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("outbound.relay.caFile %s: no PEM certificates in it", r.CAFile)
			}
		}
		tcfg.Relay = relay
		s.log.Info("outbound mail goes through a smarthost", "host", r.Host, "port", r.Port, "tls", r.TLS,
			"auth", r.UsernameFile != "")
		if relay.PlainText {
			s.log.Warn("outbound mail goes to the smarthost without TLS: use this only on a trusted network",
				"host", r.Host, "port", r.Port)
		}
	}
	s.signer = dkim.NewSigner()
	s.transport = outbound.New(tcfg)
	s.closers = append(s.closers, func() error { s.transport.Close(); return nil })
	s.queue, err = queue.Open(queue.Config{
		Dir: filepath.Join(s.cfg.DataDir, "queue"), Hostname: s.cfg.Hostname, Transport: s.transport,
		Workers: o.Workers, MaxAge: o.MaxAge.Duration, RetryInitial: o.RetryInitial.Duration, RetryMax: o.RetryMax.Duration,
		Sign: s.dkimSign, ReturnDSN: s.returnDSN, Metrics: s.metrics, Log: s.log.With("component", "queue"),
	})
	return err
}

// dkimSign signs a message entering the queue with the key of its From domain, if local.
// A broken key is logged and the message goes unsigned rather than not at all.
func (s *Server) dkimSign(msg []byte) string {
	sig, err := s.signer.Sign(s.dir.Load(), msg)
	if err != nil {
		s.log.Error("DKIM signing failed; sending unsigned", "err", err)
		return ""
	}
	return sig
}

// returnDSN delivers a bounce to the original sender: into the mailbox when the sender is
// local, otherwise through the queue from the null sender.
func (s *Server) returnDSN(to string, msg []byte) error {
	if orig, ours, err := s.srs.Reverse(to); ours {
		if err != nil {
			s.log.Warn("dropping a delivery status notification to an invalid SRS address", "to", to, "err", err)
			return nil
		}
		to = orig
	}
	res, err := s.dir.Load().Resolve(to)
	switch {
	case errors.Is(err, directory.ErrNotLocal):
		return s.queue.Enqueue("", []string{to}, msg)
	case errors.Is(err, directory.ErrUnknownUser), errors.Is(err, directory.ErrBadAddress):
		s.log.Warn("dropping a delivery status notification: the local sender no longer exists", "to", to)
		return nil
	case err != nil:
		return err
	}
	if len(res.Local) > 0 {
		// Through the deliverer, as any accepted mail: in a cluster the mailbox may live on
		// another replica, or be moving.
		received := fmt.Sprintf("Received: by %s (kubemail) with local id bounce;\r\n\t%s\r\n", s.cfg.Hostname, nowRFC1123())
		if err := s.deliver.Deliver(delivery.Envelope{From: "", Received: received}, res.Local, msg); err != nil {
			return err
		}
	}
	if len(res.External) > 0 {
		return s.queue.Enqueue("", res.External, msg)
	}
	return nil
}

// outboundAdapter is what the SMTP listeners queue remote recipients through.
type outboundAdapter struct{ s *Server }

// Enqueue rewrites the envelope sender of forwarded mail (a sender outside our domains) with
// SRS, so the destination's SPF check applies to us, then queues the message.
func (a outboundAdapter) Enqueue(from string, rcpts []string, msg []byte) error {
	if from != "" && a.s.srs != nil && !a.s.dir.Load().IsLocalDomain(domainOf(from)) {
		rewritten, err := a.s.srs.Forward(from)
		if err != nil {
			a.s.log.Warn("cannot rewrite the sender of forwarded mail; sending it as it is", "from", from, "err", err)
		} else {
			from = rewritten
		}
	}
	return a.s.queue.Enqueue(from, rcpts, msg)
}

// startSRS loads the SRS secrets, or makes one in the data directory.
func (s *Server) startSRS() error {
	path := s.cfg.SRS.SecretFile
	if path == "" {
		path = filepath.Join(s.cfg.DataDir, "srs.key")
		if _, err := os.Stat(path); os.IsNotExist(err) {
			b := make([]byte, 32)
			rand.Read(b)
			if err := durable.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
				return fmt.Errorf("srs: writing a new secret: %w", err)
			}
			s.log.Warn("generated an SRS secret in the data directory; replicas of one cluster need a shared srs.secretFile", "file", path)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("srs.secretFile: %w", err)
	}
	domain := s.cfg.SRS.Domain
	if domain == "" {
		domain = s.cfg.Hostname
	}
	if s.srs, err = srs.New(domain, strings.Split(string(data), "\n")); err != nil {
		return fmt.Errorf("srs.secretFile %s: %w", path, err)
	}
	return nil
}

func (s *Server) shutdownOutbound(ctx context.Context) {
	if s.queue != nil {
		s.queue.Shutdown(ctx)
	}
	if s.handoffQueue != nil {
		s.handoffQueue.Shutdown(ctx)
	}
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func nowRFC1123() string { return time.Now().Format(time.RFC1123Z) }
