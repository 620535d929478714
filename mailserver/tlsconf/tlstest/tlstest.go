// Package tlstest gives the mail server's package tests a self-signed certificate for
// 127.0.0.1 and localhost, with the TLS configuration of a server that presents it and of a
// client that trusts it and nothing else.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
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
	ca, caKey, err := newCA("kubemail test cluster CA")
	if err != nil {
		return Mutual{}, err
	}
	leaf, err := newLeaf(ca, caKey)
	if err != nil {
		return Mutual{}, err
	}
	other, otherKey, err := newCA("another CA")
	if err != nil {
		return Mutual{}, err
	}
	stranger, err := newLeaf(other, otherKey)
	if err != nil {
		return Mutual{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		return Mutual{}, err
	}
	return Mutual{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		Server:   &tls.Config{Certificates: []tls.Certificate{leaf}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Client:   &tls.Config{Certificates: []tls.Certificate{leaf}, RootCAs: pool},
		Stranger: &tls.Config{Certificates: []tls.Certificate{stranger}, RootCAs: pool},
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

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "replica"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
