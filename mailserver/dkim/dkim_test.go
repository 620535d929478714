package dkim

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
)

func pemOf(t *testing.T, key any) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// keys returns a directory with an RSA-signing and an Ed25519-signing domain, and the TXT
// records a verifier finds.
func keys(t *testing.T) (*directory.Directory, map[string]string) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	dir, err := directory.FromSpec(&dirspec.Spec{Domains: []dirspec.DomainSpec{
		{Name: "rsa.test", DKIM: &dirspec.DKIMSpec{Selector: "r", Algorithm: "rsa-sha256", PrivateKey: pemOf(t, rsaKey)}},
		{Name: "ed.test", DKIM: &dirspec.DKIMSpec{Selector: "e", Algorithm: "ed25519-sha256", PrivateKey: pemOf(t, edKey)}},
		{Name: "nokey.test"},
	}}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return dir, map[string]string{
		"r._domainkey.rsa.test": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pubDER),
		"e._domainkey.ed.test":  "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
	}
}

func verify(t *testing.T, txt map[string]string, msg string) []*msgdkim.Verification {
	t.Helper()
	vs, err := msgdkim.VerifyWithOptions(strings.NewReader(msg), &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return []string{txt[name]}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestSignsWithTheFromDomainsKey(t *testing.T) {
	dir, txt := keys(t)
	s := NewSigner()
	for _, dom := range []string{"rsa.test", "ed.test"} {
		msg := "Received: by x\r\nFrom: Alice <alice@" + dom + ">\r\nTo: bob@b.test\r\nSubject: hi\r\n" +
			"Message-ID: <1@x>\r\nX-Unsigned: 1\r\n\r\nbody\r\n"
		sig, err := s.Sign(dir, []byte(msg))
		if err != nil || sig == "" {
			t.Fatalf("%s: %q %v", dom, sig, err)
		}
		signed := sig + msg
		vs := verify(t, txt, signed)
		if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != dom {
			t.Fatalf("%s: verification %+v", dom, vs[0])
		}
		h := strings.Join(vs[0].HeaderKeys, ":")
		if !strings.EqualFold(h, "From:Subject:To:Message-ID:From") {
			t.Errorf("%s: signed fields %s", dom, h)
		}
		// Oversigned From: adding a second one breaks the signature.
		forged := sig + "From: mallory@evil.test\r\n" + msg
		if vs := verify(t, txt, forged); vs[0].Err == nil {
			t.Errorf("%s: an added From field kept the signature valid", dom)
		}
		// Unsigned fields may be added; a changed body breaks it.
		if vs := verify(t, txt, sig+"X-Later: 1\r\n"+msg); vs[0].Err != nil {
			t.Errorf("%s: an added unsigned field broke the signature: %v", dom, vs[0].Err)
		}
		if vs := verify(t, txt, strings.Replace(signed, "body", "b0dy", 1)); vs[0].Err == nil {
			t.Errorf("%s: a changed body kept the signature valid", dom)
		}
	}
}

func TestNoSignatureWithoutAKey(t *testing.T) {
	dir, _ := keys(t)
	for _, from := range []string{"a@nokey.test", "a@other.test", ""} {
		msg := "From: " + from + "\r\nSubject: x\r\n\r\nbody\r\n"
		if sig, err := NewSigner().Sign(dir, []byte(msg)); sig != "" || err != nil {
			t.Errorf("From %q: %q %v", from, sig, err)
		}
	}
}

func TestParseKeyChecksTheAlgorithm(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := ParseKey("rsa-sha256", []byte(pemOf(t, edKey))); err == nil {
		t.Error("an Ed25519 key was accepted for rsa-sha256")
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if _, err := ParseKey("rsa-sha256", pkcs1); err != nil {
		t.Errorf("PKCS#1 RSA key: %v", err)
	}
	if _, err := ParseKey("rsa-sha256", []byte("not pem")); err == nil {
		t.Error("garbage accepted")
	}
}
