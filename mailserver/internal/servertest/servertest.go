// Package servertest holds what the tests of the mail server's protocol packages share: a
// directory of two accounts with a real password hash, and a self-signed certificate for
// 127.0.0.1. It is for tests only.
package servertest

import (
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// The accounts of Accounts, in the domain example.com.
const (
	Alice = "alice@example.com"
	Bob   = "bob@example.com"
)

var (
	hashesMu sync.Mutex
	hashes   = map[string]string{}
)

// hash is one real argon2id hash of password per test binary: hashing is deliberately slow.
func hash(t testing.TB, password string) string {
	t.Helper()
	hashesMu.Lock()
	defer hashesMu.Unlock()
	if h, ok := hashes[password]; ok {
		return h
	}
	h, err := passwordhash.Hash(password)
	if err != nil {
		t.Fatal(err)
	}
	hashes[password] = h
	return h
}

// Accounts returns a directory of example.com with Alice and Bob, both with password and Bob
// with a quota of bobQuota bytes (0: none), and an Authenticator over it (limiter may be nil).
func Accounts(t testing.TB, password string, bobQuota int64, limiter *auth.Limiter, m *metrics.Metrics) (*directory.Live, *login.Authenticator) {
	t.Helper()
	h := hash(t, password)
	dir, err := directory.Parse([]byte(fmt.Sprintf(`
domains:
  - name: example.com
mailboxes:
  - address: %s
    passwordHash: %q
  - address: %s
    passwordHash: %q
    quota: %d
`, Alice, h, Bob, h, bobQuota)), passwordhash.ValidateHash)
	if err != nil {
		t.Fatal(err)
	}
	var live directory.Live
	live.Store(dir)
	authn, err := login.New(&live, limiter, m)
	if err != nil {
		t.Fatal(err)
	}
	return &live, authn
}

// Certificate returns a self-signed certificate for 127.0.0.1 and localhost, valid for an hour,
// and its PEM for clients that are to trust it.
func Certificate(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Certificate([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}
