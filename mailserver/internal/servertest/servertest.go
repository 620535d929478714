// Package servertest holds what the tests of the mail server's protocol packages share: a
// directory of two accounts with a real password hash, and a login over it (their certificate
// comes from tlsconf/tlstest). It is for tests only.
package servertest

import (
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store"
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

// Inbox returns the messages stored in the INBOX of address, each as its file's bytes.
func Inbox(t testing.TB, st *store.Store, address string) []string {
	t.Helper()
	box, err := st.Mailbox(address)
	if err != nil {
		t.Fatal(err)
	}
	f := box.Inbox()
	msgs, _ := f.Messages()
	var out []string
	for _, m := range msgs {
		r, err := f.Open(m.UID)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}
