package imapd

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/internal/servertest"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

const (
	alice    = servertest.Alice
	bob      = servertest.Bob
	password = "correct horse battery staple"
)

// env is a running server on a real store, with a STARTTLS listener (addr) and an implicit-TLS
// one (tlsAddr), and the directory:
//
//	alice@example.com  no quota
//	bob@example.com    quota 4000 bytes
type env struct {
	t       testing.TB
	root    string
	store   *store.Store
	srv     *Server
	metrics *metrics.Metrics
	addr    string
	tlsAddr string
	// clientTLS trusts the server's self-signed certificate.
	clientTLS *tls.Config
	certFile  string
	// close stops the server and closes the store, as a restart would.
	close func()
}

type envOptions struct {
	limiter  *auth.Limiter
	maxBytes int64
	root     string
	route    func(*directory.Mailbox) Takeover
}

func newEnv(t testing.TB, opts ...func(*envOptions)) *env {
	t.Helper()
	o := envOptions{}
	for _, f := range opts {
		f(&o)
	}
	if o.root == "" {
		o.root = t.TempDir()
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := store.Open(o.root, log)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	_, authn := servertest.Accounts(t, password, 4000, o.limiter, m)

	certs := tlstest.Loopback(t)
	serverTLS := certs.Server
	certFile := t.TempDir() + "/cert.pem"
	if err := os.WriteFile(certFile, certs.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	srv := NewServer(Config{Hostname: "mail.example.com", Store: st, Auth: authn, Metrics: m,
		TLSConfig: serverTLS, MaxMessageBytes: o.maxBytes, Log: log, Route: o.route})
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	implicit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: o.root, store: st, srv: srv, metrics: m,
		addr: plain.Addr().String(), tlsAddr: implicit.Addr().String(),
		clientTLS: certs.Client, certFile: certFile}
	var wg sync.WaitGroup
	for _, ln := range []net.Listener{plain, tls.NewListener(implicit, serverTLS)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && err != ErrServerClosed {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	e.close = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		wg.Wait()
		st.Close()
	})
	t.Cleanup(e.close)
	return e
}

// folder returns a folder of a mailbox, for delivering and inspecting behind IMAP's back.
func (e *env) folder(addr, name string) *store.Folder {
	e.t.Helper()
	m, err := e.store.Mailbox(addr)
	if err != nil {
		e.t.Fatal(err)
	}
	f, err := m.Folder(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// deliver stores a message the way SMTP delivery does.
func (e *env) deliver(addr, folder, msg string, flags ...string) store.Message {
	e.t.Helper()
	m, err := e.folder(addr, folder).Append(strings.NewReader(msg), flags, time.Time{})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// client connects with implicit TLS and logs in.
func (e *env) client(user string, opts *imapclient.Options) *imapclient.Client {
	e.t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = e.clientTLS
	c, err := imapclient.DialTLS(e.tlsAddr, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		e.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// counter reads one counter of a vector.
func counter(t testing.TB, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// message builds a small RFC 5322 message.
func message(subject, body string) string {
	return "From: Carol <carol@example.org>\r\n" +
		"To: Alice <alice@example.com>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" + body + "\r\n"
}

// multipartMessage has a text part and a base64 attachment.
const multipartMessage = "From: carol@example.org\r\n" +
	"To: alice@example.com\r\n" +
	"Subject: Report\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"See the attached report.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream; name=\"r.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"r.bin\"\r\n" +
	"\r\n" +
	"AAECAwQF\r\n" +
	"--b1--\r\n"

func uidSet(uids ...uint32) imap.UIDSet {
	var s imap.UIDSet
	for _, u := range uids {
		s.AddNum(imap.UID(u))
	}
	return s
}
