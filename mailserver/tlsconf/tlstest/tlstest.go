// Package tlstest gives the mail server's package tests a self-signed certificate for
// 127.0.0.1 and localhost, with the TLS configuration of a server that presents it and of a
// client that trusts it and nothing else.
package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/selfsigned"
)

// Pair is a certificate and the two sides of a connection that uses it.
type Pair struct {
	// Server presents the certificate.
	Server *tls.Config
	// Client trusts the certificate only. Its ServerName is empty: dialers fill in the host
	// they dial, 127.0.0.1 or localhost, both of which the certificate names.
	Client *tls.Config
	// CertPEM is the certificate, for outside clients (curl --cacert).
	CertPEM []byte
}

var loopback = sync.OnceValues(func() (Pair, error) {
	certPEM, keyPEM, err := selfsigned.Certificate([]string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return Pair{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return Pair{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return Pair{Server: &tls.Config{Certificates: []tls.Certificate{cert}}, Client: &tls.Config{RootCAs: pool},
		CertPEM: certPEM}, nil
})

// Loopback returns the pair, made once per test binary (making a key is slow). Callers that
// change a configuration clone it first.
func Loopback(t testing.TB) Pair {
	t.Helper()
	p, err := loopback()
	if err != nil {
		t.Fatalf("self-signed certificate: %v", err)
	}
	return p
}
