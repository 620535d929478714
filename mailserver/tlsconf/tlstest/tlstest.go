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

// Mutual is the TLS of a cluster's internal connections: a CA of its own, and one certificate
// it signed for 127.0.0.1 and localhost that every replica presents, as server and as client.
type Mutual struct {
	// Server requires and verifies a client certificate from the CA.
	Server *tls.Config
	// Client presents the certificate and trusts the CA only.
	Client *tls.Config
	// Stranger presents a certificate from another CA, which Server refuses.
	Stranger *tls.Config
	// CertPEM, KeyPEM and CAPEM are the replicas' certificate and key and the CA, for
	// settings files.
	CertPEM, KeyPEM, CAPEM []byte
}

var mutual = sync.OnceValues(func() (Mutual, error) {
	hosts := []string{"127.0.0.1", "localhost"}
	caPEM, caKeyPEM, err := selfsigned.CA("kubemail test cluster CA", 24*time.Hour)
	if err != nil {
		return Mutual{}, err
	}
	certPEM, keyPEM, err := selfsigned.Issue(caPEM, caKeyPEM, hosts, 24*time.Hour)
	if err != nil {
		return Mutual{}, err
	}
	otherPEM, otherKeyPEM, err := selfsigned.CA("another CA", 24*time.Hour)
	if err != nil {
		return Mutual{}, err
	}
	strangerPEM, strangerKeyPEM, err := selfsigned.Issue(otherPEM, otherKeyPEM, hosts, 24*time.Hour)
	if err != nil {
		return Mutual{}, err
	}
	leaf, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return Mutual{}, err
	}
	stranger, err := tls.X509KeyPair(strangerPEM, strangerKeyPEM)
	if err != nil {
		return Mutual{}, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return Mutual{
		Server:   &tls.Config{Certificates: []tls.Certificate{leaf}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Client:   &tls.Config{Certificates: []tls.Certificate{leaf}, RootCAs: pool},
		Stranger: &tls.Config{Certificates: []tls.Certificate{stranger}, RootCAs: pool},
		CertPEM:  certPEM, KeyPEM: keyPEM, CAPEM: caPEM,
	}, nil
})

// Cluster returns the cluster's TLS, made once per test binary.
func Cluster(t testing.TB) Mutual {
	t.Helper()
	m, err := mutual()
	if err != nil {
		t.Fatalf("cluster certificates: %v", err)
	}
	return m
}
