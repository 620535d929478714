package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSelfSignedVerifiesForItsHosts(t *testing.T) {
	hosts := []string{"mail.example.test", "localhost", "127.0.0.1", "::1"}
	certPEM, keyPEM, err := SelfSigned(hosts, 24*time.Hour)
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

	certPEM2, keyPEM2, err := SelfSigned(hosts, time.Hour)
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

func TestSelfSignedRejectsUnusableRequests(t *testing.T) {
	if _, _, err := SelfSigned(nil, time.Hour); err == nil {
		t.Error("SelfSigned with no hosts succeeded")
	}
	if _, _, err := SelfSigned([]string{"localhost"}, 0); err == nil {
		t.Error("SelfSigned with zero validity succeeded")
	}
}

func TestWriteSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev-tls")
	certFile, keyFile, err := WriteSelfSigned(dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "tls.crt") || keyFile != filepath.Join(dir, "tls.key") {
		t.Errorf("wrote %s and %s, want tls.crt and tls.key in %s", certFile, keyFile, dir)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}

	r, err := NewReloader(certFile, keyFile, Options{})
	if err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	first := servedSerial(t, r)

	// Writing again replaces the pair, and leaves no temporary files behind.
	if _, _, err := WriteSelfSigned(dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("rewritten pair does not load: %v", err)
	}
	if servedSerial(t, r).Cmp(first) == 0 {
		t.Error("second WriteSelfSigned did not replace the certificate")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"tls.crt", "tls.key"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}
