package mailauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/dkim"
	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
)

// SPF, DKIM and DMARC of an internationalised domain work through its A-labels, the only
// form DNS has (RFC 8616), whichever form the envelope and the From field use.
func TestInternationalisedDomain(t *testing.T) {
	srv, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	srv.AddTXT("xn--bcher-kva.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("_dmarc.xn--bcher-kva.test", "v=DMARC1; p=reject")
	srv.AddTXT("s._domainkey.xn--bcher-kva.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	r, _ := dnsresolve.New(srv.Addr)
	dir, err := directory.FromSpec(&dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "bücher.test",
		DKIM: &dirspec.DKIMSpec{Selector: "s", Algorithm: "ed25519-sha256",
			PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}}}},
		func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	checker := &Checker{Resolver: r, Hostname: "mx.b.test", RejectDMARC: true}
	msg := "From: Jörg <jörg@bücher.test>\r\nTo: bob@b.test\r\nSubject: Grüße\r\n\r\nbody\r\n"
	sig, err := dkim.NewSigner().Sign(dir, []byte(msg))
	if err != nil || !strings.Contains(sig, "d=xn--bcher-kva.test") {
		t.Fatalf("signature %q, %v: want one by d=xn--bcher-kva.test", sig, err)
	}
	good, bad := net.ParseIP("192.0.2.1"), net.ParseIP("198.51.100.7")
	for _, c := range []struct {
		name, mailFrom, msg string
		ip                  net.IP
		want                string
		reject              bool
	}{
		{"signed, U-label sender", "jörg@bücher.test", sig + msg, good, "spf=pass dkim=pass dmarc=pass", false},
		{"DKIM alone", "jörg@bücher.test", sig + msg, bad, "spf=fail dkim=pass dmarc=pass", false},
		{"SPF alone, A-label sender", "jörg@XN--BCHER-KVA.test", msg, good, "spf=pass dkim=none dmarc=pass", false},
		{"forged", "jörg@bücher.test", msg, bad, "spf=fail dkim=none dmarc=fail", true},
	} {
		v := checker.Check(context.Background(), Input{IP: c.ip, Helo: "mx.b.test", MailFrom: c.mailFrom, Message: []byte(c.msg)})
		if v.Summary() != c.want || v.Reject != c.reject || v.FromDomain != "xn--bcher-kva.test" {
			t.Errorf("%s: %s reject=%v from=%s, want %s reject=%v\n%s", c.name, v.Summary(), v.Reject, v.FromDomain, c.want, c.reject, v.Field)
		}
	}
}
