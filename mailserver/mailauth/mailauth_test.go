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
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/dkim"
	"github.com/kubemail/kubemail/mailserver/dnsresolve"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
)

type env struct {
	checker *Checker
	dir     *directory.Directory
	signer  *dkim.Signer
}

func setup(t *testing.T) *env {
	t.Helper()
	srv, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	srv.AddTXT("a.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("bounce.a.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("mx.a.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("_dmarc.a.test", "v=DMARC1; p=reject; sp=quarantine")
	srv.AddTXT("s._domainkey.a.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	srv.AddTXT("strict.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("bounce.strict.test", "v=spf1 ip4:192.0.2.1 -all")
	srv.AddTXT("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s")
	srv.AddTXT("lax.test", "v=spf1 -all")
	srv.AddTXT("_dmarc.lax.test", "v=DMARC1; p=none")
	r, _ := dnsresolve.New(srv.Addr)
	dir, err := directory.FromSpec(&dirspec.Spec{Domains: []dirspec.DomainSpec{
		{Name: "a.test", DKIM: &dirspec.DKIMSpec{Selector: "s", Algorithm: "ed25519-sha256", PrivateKey: keyPEM}}}},
		func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return &env{checker: &Checker{Resolver: r, Hostname: "mx.b.test", RejectDMARC: true}, dir: dir, signer: dkim.NewSigner()}
}

func msgFrom(from string) string {
	return "From: " + from + "\r\nTo: bob@b.test\r\nSubject: test\r\n\r\nbody\r\n"
}

func (e *env) sign(t *testing.T, msg string) string {
	sig, err := e.signer.Sign(e.dir, []byte(msg))
	if err != nil || sig == "" {
		t.Fatalf("signing: %q %v", sig, err)
	}
	return sig + msg
}

func TestVerdicts(t *testing.T) {
	e := setup(t)
	good, bad := net.ParseIP("192.0.2.1"), net.ParseIP("198.51.100.7")
	cases := []struct {
		name     string
		ip       net.IP
		mailFrom string
		msg      string
		spf      string
		dkim     string
		dmarc    string
		reject   bool
	}{
		{"all pass", good, "alice@a.test", e.sign(t, msgFrom("alice@a.test")), "pass", "pass", "pass", false},
		{"DKIM alone carries DMARC", bad, "alice@a.test", e.sign(t, msgFrom("alice@a.test")), "fail", "pass", "pass", false},
		{"SPF alone carries DMARC", good, "alice@a.test", msgFrom("alice@a.test"), "pass", "none", "pass", false},
		{"relaxed SPF alignment", good, "x@bounce.a.test", msgFrom("alice@a.test"), "pass", "none", "pass", false},
		{"forged under p=reject", bad, "alice@a.test", msgFrom("alice@a.test"), "fail", "none", "fail", true},
		{"strict SPF alignment fails", good, "x@bounce.strict.test", msgFrom("x@strict.test"), "pass", "none", "fail", true},
		{"p=none never rejects", bad, "x@lax.test", msgFrom("x@lax.test"), "fail", "none", "fail", false},
		{"subdomain policy quarantine", bad, "x@sub.a.test", msgFrom("x@sub.a.test"), "none", "none", "fail", false},
		{"body changed after signing", bad, "alice@a.test", strings.Replace(e.sign(t, msgFrom("alice@a.test")), "body", "b0dy", 1), "fail", "fail", "fail", true},
		{"no DMARC record", bad, "x@nowhere.test", msgFrom("x@nowhere.test"), "none", "none", "none", false},
		{"null sender checks HELO", good, "", msgFrom("MAILER-DAEMON@mx.a.test"), "pass", "none", "pass", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := e.checker.Check(context.Background(), Input{IP: c.ip, Helo: "mx.a.test", MailFrom: c.mailFrom, Message: []byte(c.msg)})
			if v.SPF != c.spf || v.DKIM[0] != c.dkim || v.DMARC != c.dmarc || v.Reject != c.reject {
				t.Errorf("got %s reject=%v, want spf=%s dkim=%s dmarc=%s reject=%v\n%s", v.Summary(), v.Reject,
					c.spf, c.dkim, c.dmarc, c.reject, v.Field)
			}
			if !strings.HasPrefix(v.Field, "Authentication-Results: mx.b.test;\r\n\tspf="+c.spf) || !strings.HasSuffix(v.Field, "\r\n") {
				t.Errorf("field %q", v.Field)
			}
		})
	}
	e.checker.RejectDMARC = false
	v := e.checker.Check(context.Background(), Input{IP: bad, Helo: "x", MailFrom: "alice@a.test", Message: []byte(msgFrom("alice@a.test"))})
	if v.DMARC != "fail" || v.Reject {
		t.Errorf("with rejection off: %s reject=%v", v.Summary(), v.Reject)
	}
}

func TestFieldNamesTheIdentities(t *testing.T) {
	e := setup(t)
	v := e.checker.Check(context.Background(), Input{IP: net.ParseIP("192.0.2.1"), Helo: "mx.a.test",
		MailFrom: "alice@a.test", Message: []byte(e.sign(t, msgFrom("alice@a.test")))})
	for _, want := range []string{"smtp.mailfrom=alice@a.test", "header.d=a.test", "header.from=a.test"} {
		if !strings.Contains(v.Field, want) {
			t.Errorf("field lacks %q:\n%s", want, v.Field)
		}
	}
}

func TestStripForgedKeepsOtherServersResults(t *testing.T) {
	msg := "Authentication-Results: mx.b.test; dkim=pass\r\n header.d=bank.test\r\n" +
		"Authentication-Results: other.test 1; spf=fail\r\n" +
		"authentication-results: MX.B.TEST; spf=pass\r\n" +
		"From: x@y.test\r\n\r\nAuthentication-Results: mx.b.test; in the body\r\n"
	got := string(StripForged([]byte(msg), "mx.b.test"))
	want := "Authentication-Results: other.test 1; spf=fail\r\nFrom: x@y.test\r\n\r\nAuthentication-Results: mx.b.test; in the body\r\n"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	plain := "From: x@y.test\r\n\r\nbody\r\n"
	if got := string(StripForged([]byte(plain), "mx.b.test")); got != plain {
		t.Fatalf("changed a message without such fields: %q", got)
	}
}

// A resolver that answers nothing: the checks end with temporary errors when the budget runs
// out, and the SPF, DKIM and DMARC lookups were all under way at once within it.
func TestBudgetRunsOutIntoTemporaryErrors(t *testing.T) {
	e := setup(t)
	srv, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.DropAll(true)
	r, _ := dnsresolve.New(srv.Addr)
	c := &Checker{Resolver: r, Hostname: "mx.b.test", RejectDMARC: true, Timeout: 500 * time.Millisecond}
	msg := e.sign(t, msgFrom("alice@a.test"))
	v := c.Check(context.Background(), Input{IP: net.ParseIP("198.51.100.7"), Helo: "mx.a.test", MailFrom: "alice@a.test", Message: []byte(msg)})
	if v.SPF != "temperror" || v.DKIM[0] != "temperror" || v.DMARC != "temperror" || v.Reject || !v.OutOfTime {
		t.Errorf("got %s reject=%v outOfTime=%v, want temperror everywhere and no rejection\n%s", v.Summary(), v.Reject, v.OutOfTime, v.Field)
	}
	if strings.Count(v.Field, "reason=\"DNS lookups unfinished after 500ms\"") != 3 {
		t.Errorf("field does not say why each check is unfinished:\n%s", v.Field)
	}
	if strings.Contains(v.Field, srv.Addr) {
		t.Errorf("field names the resolver:\n%s", v.Field)
	}
	// Sequential lookups would have spent the whole budget on the first of them.
	for _, name := range []string{"a.test", "s._domainkey.a.test", "_dmarc.a.test"} {
		if !srv.Asked(name) {
			t.Errorf("%s was not asked within the budget", name)
		}
	}

	// With answers, the same message passes as before.
	v = e.checker.Check(context.Background(), Input{IP: net.ParseIP("192.0.2.1"), Helo: "mx.a.test", MailFrom: "alice@a.test", Message: []byte(msg)})
	if v.Summary() != "spf=pass dkim=pass dmarc=pass" || v.OutOfTime {
		t.Errorf("with answers: %s outOfTime=%v", v.Summary(), v.OutOfTime)
	}
}
