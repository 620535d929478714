package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

const password = "correct horse battery"

var hashOnce = sync.OnceValues(func() (string, error) { return passwordhash.Hash(password) })

// testServer is a Server started in this process on loopback ports.
type testServer struct {
	*Server
	cfg       *config.Config
	clientTLS *tls.Config // trusts the server's self-signed certificate
}

// startServer starts a Server on the settings prepare makes and shuts it down when the test
// ends.
func startServer(t *testing.T, edit func(*config.Config)) *testServer {
	t.Helper()
	cfg, clientTLS := prepare(t, edit)
	s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		done := make(chan struct{})
		go func() { s.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the server's goroutines did not end within 30s of Shutdown")
		}
	})
	return &testServer{Server: s, cfg: cfg, clientTLS: clientTLS}
}

// prepare writes a data folder, certificate and directory (alice and bob at example.com) and
// returns settings for them, changed by edit, with a client TLS configuration that trusts the
// certificate.
func prepare(t *testing.T, edit func(*config.Config)) (*config.Config, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := hashOnce()
	if err != nil {
		t.Fatal(err)
	}
	spec := dirspec.Spec{
		Domains: []dirspec.DomainSpec{{Name: "example.com"}},
		Mailboxes: []dirspec.MailboxSpec{
			{Address: "alice@example.com", PasswordHash: hash},
			{Address: "bob@example.com", PasswordHash: hash},
		},
	}
	data, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	cfg := &config.Config{
		Hostname:  "mail.example.com",
		DataDir:   filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirFile},
		TLS:       config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: config.Listeners{HTTP: config.Listener{Address: "127.0.0.1:0"}},
		// Nothing leaves loopback: DNS goes where nothing answers, and the inbound checks,
		// which would ask it, are off.
		DNS:     config.DNS{Resolver: "127.0.0.1:1"},
		Inbound: config.Inbound{AuthChecks: &off},
	}
	if edit != nil {
		edit(cfg)
	}
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return cfg, &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// addr is the bound address of a listener.
func (s *testServer) addr(t *testing.T, name string) string {
	t.Helper()
	a, ok := s.Addrs[name]
	if !ok {
		t.Fatalf("no %s listener; have %v", name, s.Addrs)
	}
	return a.String()
}

// greeting connects to a listener (over TLS if implicit) and returns the first line.
func (s *testServer) greeting(t *testing.T, name string, implicitTLS bool) string {
	t.Helper()
	var c net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if implicitTLS {
		c, err = tls.DialWithDialer(d, "tcp", s.addr(t, name), s.clientTLS)
	} else {
		c, err = d.Dial("tcp", s.addr(t, name))
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: reading the greeting: %v", name, err)
	}
	return strings.TrimRight(line, "\r\n")
}

// request sends method path to the HTTP listener with the given Authorization header (none if
// empty) and returns the status and body.
func (s *testServer) request(t *testing.T, method, path, authorization string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr(t, "http")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
