package controllers

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// newDKIMKey generates a DKIM signing key as PKCS#8 PEM.
func newDKIMKey(algorithm string) ([]byte, error) {
	var key any
	switch algorithm {
	case "ed25519-sha256":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		key = k
	case "rsa-sha256", "":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		key = k
	default:
		return nil, fmt.Errorf("unknown DKIM algorithm %q", algorithm)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// newPassword returns a random password of 144 bits, in characters every client accepts.
func newPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// passwordDigest is the SHA-256 of a password the operator generated, recorded next to it so
// that a later reconcile can tell the generated password from one someone put in its place. It
// reveals nothing a reader of the Secret could not read directly.
func passwordDigest(password string) string {
	sum := sha256.Sum256([]byte(password))
	return hex.EncodeToString(sum[:])
}

// fingerprint is a keyed MAC of a password: the operator stores it next to the password hash so
// an unchanged password is recognised without re-hashing, and without the key (kept in a
// Secret the mail servers cannot read) it says nothing about the password.
func fingerprint(key []byte, password string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(password))
	return hex.EncodeToString(m.Sum(nil))
}
