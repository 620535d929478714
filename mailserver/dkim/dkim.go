// Package dkim signs mail leaving the server with the DKIM key of the sending domain (RFC 6376),
// as the directory holds it; go-msgauth does the canonicalization and cryptography.
package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
)

// signedFields are the header fields signed when present, after RFC 6376 section 5.4.1. From
// is also signed once more than it occurs ("oversigned"), so no From field can be added later
// without breaking the signature.
var signedFields = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Sender",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID",
	"List-Id", "List-Help", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Subscribe", "List-Post",
	"List-Owner", "List-Archive",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-ID", "Content-Description",
}

// Signer signs messages; it caches parsed keys.
type Signer struct {
	mu   sync.Mutex
	keys map[[32]byte]crypto.Signer
}

// NewSigner returns a Signer.
func NewSigner() *Signer { return &Signer{keys: map[[32]byte]crypto.Signer{}} }

// Sign returns the DKIM-Signature field (with its CRLF) for msg, signed with the key of the
// domain of its From address, or "" when that domain is not local or has no key. msg must be
// in wire form (CRLF line endings).
func (s *Signer) Sign(dir *directory.Directory, msg []byte) (string, error) {
	hdr := headerSection(msg)
	domain, ok := fromDomain(hdr)
	if !ok {
		return "", nil
	}
	dom, ok := dir.Domain(domain)
	if !ok || dom.DKIM == nil {
		return "", nil
	}
	key, err := s.key(dom.DKIM)
	if err != nil {
		return "", fmt.Errorf("DKIM key of %s: %w", dom.Name, err)
	}
	opts := &msgdkim.SignOptions{
		Domain:                 dom.Name,
		Selector:               dom.DKIM.Selector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed,
		BodyCanonicalization:   msgdkim.CanonicalizationRelaxed,
		HeaderKeys:             headerKeys(hdr),
	}
	signer, err := msgdkim.NewSigner(opts)
	if err != nil {
		return "", err
	}
	if _, err := signer.Write(msg); err != nil {
		signer.Close()
		return "", err
	}
	if err := signer.Close(); err != nil {
		return "", err
	}
	return signer.Signature(), nil
}

// key parses (once) a domain's PEM key and checks it fits the algorithm.
func (s *Signer) key(spec *dirspec.DKIMSpec) (crypto.Signer, error) {
	sum := sha256.Sum256([]byte(spec.Algorithm + "\x00" + spec.PrivateKey))
	s.mu.Lock()
	k, ok := s.keys[sum]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := ParseKey(spec.Algorithm, []byte(spec.PrivateKey))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.keys[sum] = k
	s.mu.Unlock()
	return k, nil
}

// ParseKey reads a PEM private key (PKCS#8, or PKCS#1 for RSA) for the algorithm
// rsa-sha256 or ed25519-sha256.
func ParseKey(algorithm string, pemData []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, errors.New("no PEM block in the private key")
	}
	var key any
	var err error
	if block.Type == "RSA PRIVATE KEY" {
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	} else {
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if algorithm != "rsa-sha256" {
			return nil, fmt.Errorf("an RSA key cannot sign with %s", algorithm)
		}
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("RSA key of %d bits is too short (1024 at least, 2048 recommended)", k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		if algorithm != "ed25519-sha256" {
			return nil, fmt.Errorf("an Ed25519 key cannot sign with %s", algorithm)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// headerKeys lists the signed fields: each recommended field as often as it occurs, and From
// once more.
func headerKeys(hdr []byte) []string {
	count := map[string]int{}
	for _, name := range fieldNames(hdr) {
		count[strings.ToLower(name)]++
	}
	var keys []string
	for _, f := range signedFields {
		for i := 0; i < count[strings.ToLower(f)]; i++ {
			keys = append(keys, f)
		}
	}
	return append(keys, "From")
}

// fieldNames returns the names of the header fields in order.
func fieldNames(hdr []byte) []string {
	var names []string
	for _, line := range bytes.Split(hdr, []byte("\n")) {
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			names = append(names, string(bytes.TrimSpace(name)))
		}
	}
	return names
}

// fromDomain returns the domain of the first From address.
func fromDomain(hdr []byte) (string, bool) {
	m, err := mail.ReadMessage(bytes.NewReader(append(append([]byte{}, hdr...), "\r\n"...)))
	if err != nil {
		return "", false
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) == 0 {
		return "", false
	}
	i := strings.LastIndexByte(addrs[0].Address, '@')
	if i < 0 {
		return "", false
	}
	return strings.ToLower(addrs[0].Address[i+1:]), true
}

// headerSection returns the header fields of msg including the CRLF of the last one.
func headerSection(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}
