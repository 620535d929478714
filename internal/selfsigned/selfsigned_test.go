package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"
)

func TestCertificateVerifiesForItsHosts(t *testing.T) {
	hosts := []string{"mail.example.test", "localhost", "127.0.0.1", "::1"}
	certPEM, keyPEM, err := Certificate(hosts, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("certificate and key do not form a pair: %v", err)
	}
	leaf := pair.Leaf

	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	now := time.Now()
	if !leaf.NotBefore.Before(now.Add(-time.Minute)) {
		t.Errorf("NotBefore %v is not in the past; clients with a slow clock would reject it", leaf.NotBefore)
	}
	if d := leaf.NotAfter.Sub(now); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("NotAfter is %v from now, want about 24h", d)
	}

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	verify := func(name string) error {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     name,
			Roots:       roots,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			CurrentTime: now,
		})
		return err
	}
	for _, h := range hosts {
		if err := verify(h); err != nil {
			t.Errorf("does not verify for %q: %v", h, err)
		}
	}
	for _, h := range []string{"other.example.test", "10.0.0.1"} {
		if err := verify(h); err == nil {
			t.Errorf("verifies for %q, which it was not issued for", h)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: hosts[0], Roots: x509.NewCertPool()}); err == nil {
		t.Error("verifies without being trusted")
	}

	certPEM2, keyPEM2, err := Certificate(hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second, err := tls.X509KeyPair(certPEM2, keyPEM2)
	if err != nil {
		t.Fatal(err)
	}
	if second.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	if _, err := tls.X509KeyPair(certPEM2, keyPEM); err == nil {
		t.Error("the second certificate matches the first key; keys are not fresh")
	}
}

func TestCertificateRejectsUnusableRequests(t *testing.T) {
	if _, _, err := Certificate(nil, time.Hour); err == nil {
		t.Error("Certificate with no hosts succeeded")
	}
	if _, _, err := Certificate([]string{"localhost"}, 0); err == nil {
		t.Error("Certificate with zero validity succeeded")
	}
}

// A certificate the CA issued verifies against it alone, for a name its wildcard covers, as
// server and as client.
func TestCAIssuesForBothEnds(t *testing.T) {
	caPEM, caKeyPEM, err := CA("test cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := Issue(caPEM, caKeyPEM, []string{"*.mail-internal.mail.svc", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "mail-2.mail-internal.mail.svc",
			KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
	other, _, err := CA("another", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(other)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: otherPool}); err == nil {
		t.Error("verified against another CA")
	}
	if _, _, err := Issue(caPEM, []byte("not a key"), []string{"x"}, time.Hour); err == nil {
		t.Error("issued with a broken CA key")
	}
}
