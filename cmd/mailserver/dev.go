package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

// Dev mode's fixed loopback ports: the standard ones plus 2000 (or 8000 for HTTP), so nothing
// needs privileges.
var devListeners = config.Listeners{
	SMTP:        config.Listener{Address: "127.0.0.1:2525"},
	Submission:  config.Listener{Address: "127.0.0.1:2587"},
	Submissions: config.Listener{Address: "127.0.0.1:2465"},
	IMAP:        config.Listener{Address: "127.0.0.1:2143"},
	IMAPS:       config.Listener{Address: "127.0.0.1:2993"},
	POP3:        config.Listener{Address: "127.0.0.1:2110"},
	POP3S:       config.Listener{Address: "127.0.0.1:2995"},
	HTTP:        config.Listener{Address: "127.0.0.1:8080"},
}

const devDomain = "example.test"

// devConfig prepares (once) a data directory with a self-signed certificate, a directory file
// with two accounts and their passwords, and returns the settings and a "try it" text.
func devConfig(dir string) (*config.Config, string, error) {
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "kubemail-dev")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	certFile, keyFile := filepath.Join(dir, "tls", tlsconf.CertFileName), filepath.Join(dir, "tls", tlsconf.KeyFileName)
	if _, err := os.Stat(certFile); err != nil {
		if certFile, keyFile, err = tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "mail." + devDomain, "127.0.0.1", "::1"}); err != nil {
			return nil, "", err
		}
	}
	credsFile := filepath.Join(dir, "credentials.txt")
	dirFile := filepath.Join(dir, "directory.yaml")
	creds, err := os.ReadFile(credsFile)
	if err != nil {
		var spec dirspec.Spec
		spec.Domains = []dirspec.DomainSpec{{Name: devDomain}}
		var lines []string
		for _, user := range []string{"alice", "bob"} {
			pw := randomPassword()
			hash, err := passwordhash.Hash(pw)
			if err != nil {
				return nil, "", err
			}
			addr := user + "@" + devDomain
			spec.Mailboxes = append(spec.Mailboxes, dirspec.MailboxSpec{Address: addr, PasswordHash: hash})
			lines = append(lines, addr+" "+pw)
		}
		data, err := yaml.Marshal(&spec)
		if err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(dirFile, data, 0o600); err != nil {
			return nil, "", err
		}
		creds = []byte(strings.Join(lines, "\n") + "\n")
		if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
			return nil, "", err
		}
	}
	cfg := &config.Config{
		Hostname:  "mail." + devDomain,
		DataDir:   filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirFile},
		TLS:       config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: devListeners,
	}
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return nil, "", err
	}
	var alice, alicePW string
	for _, line := range strings.Split(strings.TrimSpace(string(creds)), "\n") {
		addr, pw, _ := strings.Cut(line, " ")
		if alice == "" {
			alice, alicePW = addr, pw
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nkubemail mailserver (dev mode), data in %s\n\n", dir)
	fmt.Fprintf(&b, "accounts (address password):\n  %s\n", strings.ReplaceAll(strings.TrimSpace(string(creds)), "\n", "\n  "))
	fmt.Fprintf(&b, "\nlisteners: smtp %s, submission %s (STARTTLS), submissions %s (TLS),\n  imap %s (STARTTLS), imaps %s, pop3 %s (STLS), pop3s %s, metrics http://%s/metrics\n",
		devListeners.SMTP.Address, devListeners.Submission.Address, devListeners.Submissions.Address,
		devListeners.IMAP.Address, devListeners.IMAPS.Address, devListeners.POP3.Address, devListeners.POP3S.Address, devListeners.HTTP.Address)
	fmt.Fprintf(&b, "\ntry it:\n")
	fmt.Fprintf(&b, "  swaks --server %s --to %s --from someone@example.net\n", devListeners.SMTP.Address, alice)
	fmt.Fprintf(&b, "  curl --ssl-reqd -k --url smtp://%s --user '%s:%s' --mail-from %s --mail-rcpt bob@%s --upload-file - <<< $'From: %s\\nSubject: hi\\n\\nhello bob'\n",
		devListeners.Submission.Address, alice, alicePW, alice, devDomain, alice)
	fmt.Fprintf(&b, "  curl -k --url 'imaps://%s/INBOX;UID=1' --user '%s:%s'\n\n", devListeners.IMAPS.Address, alice, alicePW)
	return cfg, b.String(), nil
}

func randomPassword() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
