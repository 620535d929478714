package builders

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

type testKey struct {
	pem    []byte
	public crypto.PublicKey
}

var (
	rsaKeyOnce sync.Once
	rsaKey     testKey
)

// rsaTestKey is generated once: 2048-bit generation is slow under -race.
func rsaTestKey(t *testing.T) testKey {
	t.Helper()
	rsaKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = testKey{pkcs8PEM(t, k), k.Public()}
	})
	return rsaKey
}

func ed25519TestKey(t *testing.T) testKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{pkcs8PEM(t, priv), pub}
}

func pkcs8PEM(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// parseP reads a DKIM p= value back the way a verifier does (RFC 6376 for rsa, RFC 8463 for
// ed25519).
func parseP(t *testing.T, keyType, p string) crypto.PublicKey {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatalf("p= is not base64: %v", err)
	}
	switch keyType {
	case "rsa":
		pub, err := x509.ParsePKIXPublicKey(raw)
		if err != nil {
			t.Fatalf("p= is not a SubjectPublicKeyInfo: %v", err)
		}
		return pub
	case "ed25519":
		if len(raw) != ed25519.PublicKeySize {
			t.Fatalf("ed25519 p= has %d bytes, want the raw %d-byte key", len(raw), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(raw)
	}
	t.Fatalf("unknown key type %q", keyType)
	return nil
}

func TestDKIMPublicRecordRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name    string
		key     testKey
		keyType string
	}{
		{"rsa 2048", rsaTestKey(t), "rsa"},
		{"ed25519", ed25519TestKey(t), "ed25519"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kt, p, err := DKIMPublicRecord(tt.key.pem)
			if err != nil {
				t.Fatal(err)
			}
			if kt != tt.keyType {
				t.Errorf("key type = %q, want %q", kt, tt.keyType)
			}
			got := parseP(t, kt, p)
			if !tt.key.public.(interface{ Equal(crypto.PublicKey) bool }).Equal(got) {
				t.Error("p= does not hold the key's public half; receivers would fail every signature")
			}
		})
	}
}

func TestDKIMPublicRecordRejects(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS1 := func() []byte {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	}
	for _, tt := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"not PEM", []byte("not a key"), "no PEM block"},
		{"PEM that is not a key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), "DKIM key"},
		{"ECDSA key", pkcs8PEM(t, ec), "unsupported key type"},
		{"PKCS#1 instead of PKCS#8", rsaPKCS1(), "DKIM key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DKIMPublicRecord(tt.pem)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestDNSRecords(t *testing.T) {
	type rec = mailv1alpha1.DNSRecord
	mx := rec{Purpose: "mx", Type: "MX", Name: "example.com.", Priority: ptr.To(int32(10)), Value: "mx.example.net."}
	spf := rec{Purpose: "spf", Type: "TXT", Name: "example.com.", Value: "v=spf1 mx -all",
		Note: "allows the MX host's addresses; if mail leaves the cluster from another address (a NAT gateway), add ip4:/ip6: terms for it"}
	tests := []struct {
		name       string
		dkim       mailv1alpha1.DKIMSpec
		dmarc      mailv1alpha1.DMARCSpec
		key        *testKey
		wantDKIM   *rec // Value without p=, checked by parsing
		wantKey    string
		wantDMARCV string
	}{
		{
			name: "rsa key, defaults",
			dkim: mailv1alpha1.DKIMSpec{Selector: "kubemail", Algorithm: "rsa-sha256"},
			key:  ptr.To(rsaTestKey(t)), wantKey: "rsa",
			wantDKIM:   &rec{Purpose: "dkim", Type: "TXT", Name: "kubemail._domainkey.example.com."},
			wantDMARCV: "v=DMARC1; p=none",
		},
		{
			name: "ed25519 key, own selector, reject with reports",
			dkim: mailv1alpha1.DKIMSpec{Selector: "mail2026", Algorithm: "ed25519-sha256"},
			key:  ptr.To(ed25519TestKey(t)), wantKey: "ed25519",
			dmarc:      mailv1alpha1.DMARCSpec{Policy: "reject", ReportAddress: "dmarc-reports@example.com"},
			wantDKIM:   &rec{Purpose: "dkim", Type: "TXT", Name: "mail2026._domainkey.example.com."},
			wantDMARCV: "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com",
		},
		{
			name:       "no key: no DKIM record",
			dkim:       mailv1alpha1.DKIMSpec{Enabled: ptr.To(false), Selector: "kubemail"},
			dmarc:      mailv1alpha1.DMARCSpec{Policy: "quarantine"},
			wantDMARCV: "v=DMARC1; p=quarantine",
		},
		{
			name:       "reports without a policy",
			dmarc:      mailv1alpha1.DMARCSpec{ReportAddress: "postmaster@example.com"},
			wantDMARCV: "v=DMARC1; p=none; rua=mailto:postmaster@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := &mailv1alpha1.MailDomain{Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", DKIM: tt.dkim, DMARC: tt.dmarc}}
			var keyPEM []byte
			if tt.key != nil {
				keyPEM = tt.key.pem
			}
			got, err := DNSRecords(md, DNSContext{Hostname: "mx.example.net"}, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			want := []rec{mx, spf}
			if tt.wantDKIM != nil {
				if len(got) != 4 {
					t.Fatalf("records = %+v, want mx, spf, dkim, dmarc", got)
				}
				d := got[2]
				prefix := "v=DKIM1; k=" + tt.wantKey + "; p="
				if !strings.HasPrefix(d.Value, prefix) {
					t.Fatalf("dkim value %q, want it to start %q", d.Value, prefix)
				}
				if pub := parseP(t, tt.wantKey, strings.TrimPrefix(d.Value, prefix)); !tt.key.public.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
					t.Error("dkim record does not hold the domain's public key")
				}
				w := *tt.wantDKIM
				w.Value = d.Value
				want = append(want, w)
			}
			want = append(want, rec{Purpose: "dmarc", Type: "TXT", Name: "_dmarc.example.com.", Value: tt.wantDMARCV})
			if !reflect.DeepEqual(got, want) {
				t.Errorf("records:\n got %+v\nwant %+v", got, want)
			}
		})
	}

	t.Run("a broken key is an error, not a wrong record", func(t *testing.T) {
		md := &mailv1alpha1.MailDomain{Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", DKIM: mailv1alpha1.DKIMSpec{Selector: "kubemail"}}}
		if recs, err := DNSRecords(md, DNSContext{Hostname: "mx.example.net"}, []byte("garbage")); err == nil {
			t.Errorf("records %+v from a key that is not PEM", recs)
		}
	})
}

// Once the client Service has addresses, the MX host's A/AAAA and PTR records are listed; with a
// smarthost, SPF allows the smarthost rather than the MX.
func TestDNSRecordsHostAndRelay(t *testing.T) {
	md := &mailv1alpha1.MailDomain{Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com"}}
	got, err := DNSRecords(md, DNSContext{Hostname: "mx.example.net", RelayHost: "smtp.relay.example",
		Addresses: []string{"203.0.113.7", "2001:db8::25", "lb.cloud.example"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]mailv1alpha1.DNSRecord{}
	for _, r := range got {
		byKey[r.Type+" "+r.Name] = r
	}
	want := map[string]string{
		"A mx.example.net.":             "203.0.113.7",
		"AAAA mx.example.net.":          "2001:db8::25",
		"PTR 7.113.0.203.in-addr.arpa.": "mx.example.net.",
		"PTR 5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.": "mx.example.net.",
		"TXT example.com.": "v=spf1 a:smtp.relay.example -all",
	}
	for k, v := range want {
		if byKey[k].Value != v {
			t.Errorf("%s = %q, want %q (all: %+v)", k, byKey[k].Value, v, got)
		}
	}
	if n := len(got); n != 7 {
		t.Errorf("%d records, want mx, 2 host, 2 ptr, spf, dmarc: %+v", n, got)
	}
	if byKey["PTR 7.113.0.203.in-addr.arpa."].Note == "" {
		t.Error("the PTR record says nothing about who sets it")
	}
}

// A cluster that serves client autoconfiguration publishes what finds it: SRV records, the
// autoconfig, autodiscover and mta-sts names, and an MTA-STS id that changes with the policy.
func TestDNSRecordsForClientAutoconfig(t *testing.T) {
	md := &mailv1alpha1.MailDomain{Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com"}}
	dc := DNSContext{Hostname: "mx.example.net", Autoconfig: true}
	got, err := DNSRecords(md, dc, nil)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]mailv1alpha1.DNSRecord{}
	for _, r := range got {
		byName[r.Type+" "+r.Name] = r
	}
	for key, want := range map[string]string{
		"SRV _imaps._tcp.example.com.":        "1 993 mx.example.net.",
		"SRV _submissions._tcp.example.com.":  "1 465 mx.example.net.",
		"SRV _submission._tcp.example.com.":   "1 587 mx.example.net.",
		"SRV _pop3s._tcp.example.com.":        "1 995 mx.example.net.",
		"SRV _autodiscover._tcp.example.com.": "1 443 mx.example.net.",
		"CNAME autoconfig.example.com.":       "mx.example.net.",
		"CNAME autodiscover.example.com.":     "mx.example.net.",
		"CNAME mta-sts.example.com.":          "mx.example.net.",
	} {
		if byName[key].Value != want {
			t.Errorf("%s = %q, want %q", key, byName[key].Value, want)
		}
	}
	sts := byName["TXT _mta-sts.example.com."].Value
	if !regexp.MustCompile(`^v=STSv1; id=[0-9a-f]{20}$`).MatchString(sts) {
		t.Errorf("_mta-sts record %q", sts)
	}
	md.Spec.MTASTS.Mode = "enforce"
	again, _ := DNSRecords(md, dc, nil)
	for _, r := range again {
		if r.Name == "_mta-sts.example.com." && r.Value == sts {
			t.Error("the MTA-STS id did not change with the policy's mode")
		}
	}
	plain, _ := DNSRecords(md, DNSContext{Hostname: "mx.example.net"}, nil)
	for _, r := range plain {
		if r.Type == "SRV" || r.Type == "CNAME" {
			t.Errorf("without autoconfig: %+v", r)
		}
	}
}
