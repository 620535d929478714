package tlsconf

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/mailserver/durable"
)

// Names of the files WriteSelfSigned writes; they match the keys of a
// kubernetes.io/tls Secret so dev mode and production read the same layout.
const (
	CertFileName = "tls.crt"
	KeyFileName  = "tls.key"
)

// selfSignedValidity is how long certificates from WriteSelfSigned are valid.
const selfSignedValidity = 365 * 24 * time.Hour

// WriteSelfSigned generates a certificate with selfsigned.Certificate, valid for a year,
// and writes it to dir as tls.crt (mode 0644) and tls.key (mode 0600),
// replacing any existing pair. Each file is replaced atomically, so a reader
// sees either the old or the new file, never a partial one. It returns the
// paths of the two files, ready for NewReloader.
func WriteSelfSigned(dir string, hosts []string) (certFile, keyFile string, err error) {
	certPEM, keyPEM, err := selfsigned.Certificate(hosts, selfSignedValidity)
	if err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	certFile = filepath.Join(dir, CertFileName)
	keyFile = filepath.Join(dir, KeyFileName)
	// Key first: until the certificate follows, a Reloader sees a mismatched
	// pair and keeps serving the old one, which is what we want.
	if err := durable.WriteFileNoDirSync(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := durable.WriteFileNoDirSync(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return "", "", fmt.Errorf("self-signed certificate: %w", err)
	}
	return certFile, keyFile, nil
}
