package mailserver_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

// The outbound tests run two servers as two domains on two loopback addresses, with a DNS
// server of their own: a.test is served by mail.a.test at 127.0.0.2, b.test by mail.b.test at
// 127.0.0.3. Both SMTP listeners use the same port, which both servers use as the MX port.

const (
	ipA      = "127.0.0.2"
	ipB      = "127.0.0.3"
	carolPW  = "carol-secret-pw"
	relayPW  = "relay-secret-pw"
	srsKeyA  = "srs-secret-of-a-0123456789"
	srsKeyB  = "srs-secret-of-b-0123456789"
	retryMax = time.Second
)

type world struct {
	t    *testing.T
	dns  *dnstest.Server
	port int
	// DKIM keys of a.test (RSA, selector s1) and b.test (Ed25519, selector s2), PEM.
	keyA, keyB string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	d, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	w := &world{t: t, dns: d, port: sharedPort(t)}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	w.keyA = pemKey(t, rsaKey)
	pubA, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	w.keyB = pemKey(t, edKey)

	if err := d.Add(
		"a.test. MX 10 mail.a.test.", "mail.a.test. A "+ipA,
		"b.test. MX 10 mail.b.test.", "mail.b.test. A "+ipB,
		"nullmx.test. MX 0 .",
	); err != nil {
		t.Fatal(err)
	}
	d.AddTXT("a.test", "v=spf1 ip4:"+ipA+" -all")
	d.AddTXT("mail.a.test", "v=spf1 ip4:"+ipA+" -all")
	d.AddTXT("_dmarc.a.test", "v=DMARC1; p=reject")
	d.AddTXT("s1._domainkey.a.test", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pubA))
	d.AddTXT("b.test", "v=spf1 ip4:"+ipB+" -all")
	d.AddTXT("mail.b.test", "v=spf1 ip4:"+ipB+" -all")
	d.AddTXT("_dmarc.b.test", "v=DMARC1; p=reject")
	d.AddTXT("s2._domainkey.b.test", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(edPub))
	return w
}

func pemKey(t *testing.T, key any) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// sharedPort finds a port free on both loopback addresses.
func sharedPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l1, err := net.Listen("tcp", ipA+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort(ipB, strconv.Itoa(port)))
		l1.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no port free on both loopback addresses")
	return 0
}

func hashPW(t *testing.T, pw string) string {
	h, err := passwordhash.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (w *world) specA() *dirspec.Spec {
	return &dirspec.Spec{
		Domains: []dirspec.DomainSpec{{Name: "a.test",
			DKIM: &dirspec.DKIMSpec{Selector: "s1", Algorithm: "rsa-sha256", PrivateKey: w.keyA}}},
		Mailboxes: []dirspec.MailboxSpec{
			{Address: "alice@a.test", PasswordHash: hashPW(w.t, alicePW)},
			{Address: "carol@a.test", PasswordHash: hashPW(w.t, carolPW)},
		},
	}
}

func (w *world) specB() *dirspec.Spec {
	no := false
	return &dirspec.Spec{
		Domains: []dirspec.DomainSpec{{Name: "b.test",
			DKIM: &dirspec.DKIMSpec{Selector: "s2", Algorithm: "ed25519-sha256", PrivateKey: w.keyB}}},
		Mailboxes: []dirspec.MailboxSpec{
			{Address: "bob@b.test", PasswordHash: hashPW(w.t, bobPW)},
			{Address: "fwd@b.test", PasswordHash: hashPW(w.t, "fwd-pw"), ForwardTo: []string{"carol@a.test"}, KeepCopy: &no},
			{Address: "fwd2@b.test", PasswordHash: hashPW(w.t, "fwd2-pw"), ForwardTo: []string{"nobody@a.test"}, KeepCopy: &no},
		},
	}
}

// serverOpts makes a server for one of the two domains on its loopback address.
func (w *world) serverOpts(ip, hostname, srsKey string) serverOption {
	return func(c *config.Config) {
		c.Hostname = hostname
		c.Listeners = config.Listeners{
			SMTP:        config.Listener{Address: net.JoinHostPort(ip, strconv.Itoa(w.port))},
			Submission:  config.Listener{Address: ip + ":0"},
			Submissions: config.Listener{Address: ip + ":0"},
			HTTP:        config.Listener{Address: ip + ":0"},
		}
		c.DNS.Resolver = w.dns.Addr
		c.Outbound.MXPort = w.port
		c.Outbound.SourceAddress = ip
		c.Outbound.RetryInitial = config.Duration{Duration: 200 * time.Millisecond}
		c.Outbound.RetryMax = config.Duration{Duration: retryMax}
		c.Outbound.ConnectTimeout = config.Duration{Duration: 5 * time.Second}
		c.Outbound.CommandTimeout = config.Duration{Duration: 20 * time.Second}
		c.Limits.MaxMessageBytes = 1 << 20
		if srsKey != "" {
			keyFile := filepath.Join(filepath.Dir(c.DataDir), "srs.key")
			if err := os.WriteFile(keyFile, []byte(srsKey+"\n"), 0o600); err != nil {
				w.t.Fatal(err)
			}
			c.SRS.SecretFile = keyFile
		}
	}
}

// startServerSpec starts a mailserver with the given directory.
func startServerSpec(t *testing.T, spec *dirspec.Spec, opts ...serverOption) *server {
	t.Helper()
	dir := t.TempDir()
	cfg, cfgPath := writeConfig(t, dir, spec, opts...)
	s := &server{t: t, dir: dir, cfgPath: cfgPath, dirPath: cfg.Directory.File, cfg: cfg}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (w *world) startA(opts ...serverOption) *server {
	return startServerSpec(w.t, w.specA(), append([]serverOption{w.serverOpts(ipA, "mail.a.test", srsKeyA)}, opts...)...)
}

func (w *world) startB(opts ...serverOption) *server {
	return startServerSpec(w.t, w.specB(), append([]serverOption{w.serverOpts(ipB, "mail.b.test", srsKeyB)}, opts...)...)
}

// submit sends a message through a submission listener with STARTTLS and AUTH PLAIN.
func submit(addr, user, pw, from string, to []string, msg string) error {
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	return sendAuthenticated(c, user, pw, from, to, msg)
}

// sendAuthenticated logs in with AUTH PLAIN on a TLS connection, sends one message and quits.
func sendAuthenticated(c *smtp.Client, user, pw, from string, to []string, msg string) error {
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pw)); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

func testMessage(from, to, subject, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d@test>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", from, to, subject, time.Now().Format(time.RFC1123Z),
		time.Now().UnixNano(), body)
}

func (s *server) waitMessages(t *testing.T, address string, n int) []string {
	t.Helper()
	var msgs []string
	serverPoll.Eventually(t, fmt.Sprintf("%d message(s) in %s's INBOX", n, address), func() bool {
		msgs = s.messages(address, "INBOX")
		return len(msgs) >= n
	})
	return msgs
}

// metricValue returns the value of one sample ("name{labels}") or -1 if absent.
func (s *server) metricValue(sample string) float64 {
	for _, l := range strings.Split(s.metric(sample), "\n") {
		if name, v, ok := strings.Cut(l, " "); ok && name == sample {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// authResults returns the Authentication-Results field of a stored message, unfolded.
func authResults(msg string) string {
	re := regexp.MustCompile(`(?m)^Authentication-Results:([^\r\n]*(\r\n[ \t][^\r\n]*)*)`)
	m := re.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return strings.Join(strings.Fields(m[1]), " ")
}

// a. Submission at A to a user of B: delivered by MX lookup, DKIM-signed, SPF-authorized.
func TestOutboundDeliveryIsSignedAndAuthenticated(t *testing.T) {
	w := newWorld(t)
	a, b := w.startA(), w.startB()
	msg := testMessage("alice@a.test", "bob@b.test", "hello from a", "across domains")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := b.waitMessages(t, "bob@b.test", 1)[0]
	ar := authResults(got)
	for _, want := range []string{"mail.b.test;", "dkim=pass", "header.d=a.test", "spf=pass", "smtp.mailfrom=alice@a.test", "dmarc=pass"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %q: %q", want, ar)
		}
	}
	if !strings.Contains(got, "DKIM-Signature:") || !strings.Contains(got, "Subject: hello from a") ||
		!strings.Contains(got, "Return-Path: <alice@a.test>") {
		t.Errorf("stored message:\n%s", got)
	}
	serverPoll.Eventually(t, "A's queue to empty", func() bool { return a.metricValue("kubemail_queue_messages") == 0 })
	if v := a.metricValue(`kubemail_delivery_attempts_total{result="delivered"}`); v != 1 {
		t.Errorf("delivered attempts metric = %v", v)
	}
}

// b. The destination is down: the message waits, and goes once it is back, untouched by hand.
func TestOutboundDeferredWhileTheDestinationIsDown(t *testing.T) {
	w := newWorld(t)
	a, b := w.startA(), w.startB()
	if err := b.stop(); err != nil {
		t.Fatalf("stopping B: %v", err)
	}
	msg := testMessage("alice@a.test", "bob@b.test", "while you were out", "deferred")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	serverPoll.Eventually(t, "a deferred attempt", func() bool {
		return a.metricValue(`kubemail_delivery_attempts_total{result="deferred"}`) >= 2
	})
	if v := a.metricValue("kubemail_queue_messages"); v != 1 {
		t.Fatalf("queue holds %v messages, want 1", v)
	}
	b.start()
	got := b.waitMessages(t, "bob@b.test", 1)
	if !strings.Contains(got[0], "Subject: while you were out") {
		t.Fatalf("bob got:\n%s", got[0])
	}
	serverPoll.Eventually(t, "A's queue to empty", func() bool { return a.metricValue("kubemail_queue_messages") == 0 })
	if n := len(a.messages("alice@a.test", "INBOX")); n != 0 {
		t.Errorf("alice got %d messages (a bounce?) for a deferred delivery", n)
	}
}

// b. A permanent refusal and a domain with a null MX both come back to the sender as DSNs.
func TestOutboundPermanentFailuresBounce(t *testing.T) {
	w := newWorld(t)
	a, _ := w.startA(), w.startB()
	msg := testMessage("alice@a.test", "nobody@b.test", "to nobody", "bounce me")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"nobody@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	dsn := a.waitMessages(t, "alice@a.test", 1)[0]
	for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status",
		"Final-Recipient: rfc822; nobody@b.test", "Status: 5.1.1", "Remote-MTA: dns; mail.b.test",
		"Diagnostic-Code: smtp; 550 5.1.1", "Subject: to nobody", "Return-Path: <>"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}

	msg = testMessage("alice@a.test", "x@nullmx.test", "to a null MX", "bounce me too")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"x@nullmx.test"}, msg); err != nil {
		t.Fatal(err)
	}
	// A null MX is a permanent failure at the first attempt (Status 5.1.10 below); a retried
	// message would only bounce on expiry, with 4.4.7.
	msgs := a.waitMessages(t, "alice@a.test", 2)
	var nullDSN string
	for _, m := range msgs {
		if strings.Contains(m, "x@nullmx.test") && strings.Contains(m, "multipart/report") {
			nullDSN = m
		}
	}
	if !strings.Contains(nullDSN, "Status: 5.1.10") || !strings.Contains(nullDSN, "null MX") {
		t.Errorf("null MX DSN:\n%s", nullDSN)
	}
	if v := a.metricValue(`kubemail_delivery_attempts_total{result="deferred"}`); v > 0 {
		t.Errorf("%v deferred attempts: permanent failures must not be retried", v)
	}
}

// c. A smarthost that requires STARTTLS and AUTH: here our own server's submission port.
func TestOutboundThroughSmarthostWithAuth(t *testing.T) {
	w := newWorld(t)
	// The smarthost knows alice@a.test as an account of its own, so its submission port lets
	// her send; its certificate names its address, which the sender verifies.
	relaySpec := w.specB()
	relaySpec.Domains = append(relaySpec.Domains, dirspec.DomainSpec{Name: "a.test"})
	relaySpec.Mailboxes = append(relaySpec.Mailboxes, dirspec.MailboxSpec{Address: "alice@a.test", PasswordHash: hashPW(t, relayPW)})
	certDir := t.TempDir()
	certFile, keyFile, err := tlsconf.WriteSelfSigned(certDir, []string{ipB, "mail.b.test"})
	if err != nil {
		t.Fatal(err)
	}
	relay := startServerSpec(t, relaySpec, w.serverOpts(ipB, "mail.b.test", srsKeyB), func(c *config.Config) {
		c.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	})
	_, relayPort, _ := net.SplitHostPort(relay.addr("submission"))
	port, _ := strconv.Atoi(relayPort)
	secrets := t.TempDir()
	os.WriteFile(filepath.Join(secrets, "username"), []byte("alice@a.test\n"), 0o600)
	os.WriteFile(filepath.Join(secrets, "password"), []byte(relayPW+"\n"), 0o600)
	a := w.startA(func(c *config.Config) {
		c.Outbound.Relay = &config.Relay{Host: ipB, Port: port, TLS: "starttls", CAFile: certFile,
			UsernameFile: filepath.Join(secrets, "username"), PasswordFile: filepath.Join(secrets, "password")}
		c.DNS.Resolver = "127.0.0.1:1" // the smarthost needs no DNS at all
	})
	msg := testMessage("alice@a.test", "bob@b.test", "via the smarthost", "relayed")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := relay.waitMessages(t, "bob@b.test", 1)[0]
	if !strings.Contains(got, "by mail.b.test (kubemail) with ESMTPSA") || !strings.Contains(got, "Subject: via the smarthost") {
		t.Fatalf("the smarthost should have taken the message on authenticated submission:\n%s", got)
	}
	if !strings.Contains(got, "by mail.a.test (kubemail) with ESMTPSA") {
		t.Errorf("the message lacks A's own Received field:\n%s", got)
	}
	if !strings.Contains(a.logs(), "outbound mail goes through a smarthost") {
		t.Error("A did not log its smarthost")
	}
}

// A smarthost on a trusted network without TLS: here B's MX listener, which offers STARTTLS
// but must not be asked for it.
func TestOutboundThroughSmarthostWithoutTLS(t *testing.T) {
	w := newWorld(t)
	b := w.startB()
	a := w.startA(func(c *config.Config) {
		c.Outbound.Relay = &config.Relay{Host: ipB, Port: w.port, TLS: "none"}
		c.DNS.Resolver = "127.0.0.1:1" // the smarthost needs no DNS at all
	})
	msg := testMessage("alice@a.test", "bob@b.test", "via a plain smarthost", "relayed in plain text")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := b.waitMessages(t, "bob@b.test", 1)[0]
	if !strings.Contains(got, "by mail.b.test (kubemail) with ESMTP id") || !strings.Contains(got, "Subject: via a plain smarthost") {
		t.Fatalf("the smarthost should have taken the message without STARTTLS:\n%s", got)
	}
	serverPoll.Eventually(t, "A's queue to empty", func() bool { return a.metricValue("kubemail_queue_messages") == 0 })
	if v := a.metricValue(`kubemail_outbound_sessions_total{tls="none"}`); v < 1 {
		t.Errorf("plain-text sessions metric = %v", v)
	}
	if !strings.Contains(a.logs(), "outbound mail goes to the smarthost without TLS") {
		t.Error("A did not warn that its smarthost is reached without TLS")
	}
}

var tokenHeaderRE = regexp.MustCompile(`X-Token: (\S+)\r\n`)

func tokensIn(msgs []string) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		if sm := tokenHeaderRE.FindStringSubmatch(m); sm != nil {
			out[sm[1]]++
		}
	}
	return out
}

// d. SIGKILL while the queue holds messages: after a restart every one is delivered.
func TestOutboundQueueSurvivesSIGKILL(t *testing.T) {
	w := newWorld(t)
	a, b := w.startA(), w.startB()
	send := func(token string) error {
		msg := testMessage("alice@a.test", "bob@b.test", "crash "+token, "queued across a crash")
		msg = strings.Replace(msg, "\r\n\r\n", "\r\nX-Token: "+token+"\r\n\r\n", 1)
		return submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg)
	}

	// Round 1: the destination is down, so everything acknowledged is in the queue at the kill.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	const n1 = 15
	for i := 0; i < n1; i++ {
		if err := send(fmt.Sprintf("r1-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	a.proc.Kill()
	b.start()
	a.start()
	serverPoll.Eventually(t, "all queued messages after the restart", func() bool {
		return len(tokensIn(b.messages("bob@b.test", "INBOX"))) >= n1
	})
	for tok, n := range tokensIn(b.messages("bob@b.test", "INBOX")) {
		if n != 1 {
			t.Errorf("round 1: %s delivered %d times", tok, n)
		}
	}

	// Round 2: kill while deliveries are in flight. Every acknowledged message must arrive;
	// a message handed over just before the kill but not yet recorded may arrive twice.
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("r2-%d-%d", c, i)
				if send(tok) != nil {
					return
				}
				mu.Lock()
				acked[tok] = true
				mu.Unlock()
			}
		}()
	}
	serverPoll.Eventually(t, "deliveries in flight", func() bool {
		return len(tokensIn(b.messages("bob@b.test", "INBOX"))) >= n1+30
	})
	a.proc.Kill()
	close(stop)
	wg.Wait()
	a.start()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	serverPoll.Eventually(t, "every acknowledged message after the second restart", func() bool {
		got := tokensIn(b.messages("bob@b.test", "INBOX"))
		for tok := range acked {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for tok, n := range tokensIn(b.messages("bob@b.test", "INBOX")) {
		if strings.HasPrefix(tok, "r2-") && n > 1 {
			dups += n - 1
		}
	}
	t.Logf("round 2: %d acknowledged messages all delivered after SIGKILL; %d duplicate deliveries", want, dups)
	serverPoll.Eventually(t, "A's queue to empty", func() bool { return a.metricValue("kubemail_queue_messages") == 0 })
}

// Inbound: mail claiming to be from a.test, from an address a.test's SPF does not list and
// without its DKIM signature, is refused under a.test's p=reject.
func TestInboundDMARCRejectsForgery(t *testing.T) {
	w := newWorld(t)
	b := w.startB()
	forged := testMessage("alice@a.test", "bob@b.test", "forged", "not really alice")
	err := sendPlain(b.addr("smtp"), "alice@a.test", "bob@b.test", forged)
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "DMARC") {
		t.Fatalf("forged mail: %v", err)
	}
	// A domain without DMARC is only annotated.
	plain := testMessage("someone@elsewhere.test", "bob@b.test", "unauthenticated", "hi")
	if err := sendPlain(b.addr("smtp"), "someone@elsewhere.test", "bob@b.test", plain); err != nil {
		t.Fatal(err)
	}
	got := b.waitMessages(t, "bob@b.test", 1)
	if len(got) != 1 || !strings.Contains(got[0], "Subject: unauthenticated") {
		t.Fatalf("bob has %d messages", len(got))
	}
	if ar := authResults(got[0]); !strings.Contains(ar, "spf=none") || !strings.Contains(ar, "dmarc=none") {
		t.Errorf("Authentication-Results: %q", ar)
	}
	if v := b.metricValue(`kubemail_inbound_auth_results_total{method="dmarc",result="fail"}`); v != 1 {
		t.Errorf("dmarc fail metric = %v", v)
	}
}

var returnPathRE = regexp.MustCompile(`Return-Path: <([^>]*)>`)

// e. A mailbox of B forwards to a user of A: the forwarded copy carries an SRS sender of
// B's, passes SPF as B and DKIM as a.test; a bounce of forwarded mail finds its way back to
// the original sender through the SRS address.
func TestForwardingRewritesTheSenderWithSRS(t *testing.T) {
	w := newWorld(t)
	a, b := w.startA(), w.startB()
	msg := testMessage("alice@a.test", "fwd@b.test", "please forward", "to carol")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"fwd@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := a.waitMessages(t, "carol@a.test", 1)[0]
	rp := returnPathRE.FindStringSubmatch(got)
	if rp == nil || !regexp.MustCompile(`^SRS0=[^=@]{4}=[A-Z2-7]{2}=a\.test=alice@mail\.b\.test$`).MatchString(rp[1]) {
		t.Fatalf("forwarded copy's envelope sender %v is not an SRS address of mail.b.test:\n%s", rp, got)
	}
	srsAddr := rp[1]
	ar := authResults(got)
	for _, want := range []string{"spf=pass", `smtp.mailfrom="` + srsAddr + `"`, "dkim=pass", "header.d=a.test", "dmarc=pass"} {
		if !strings.Contains(ar, want) {
			t.Errorf("carol's Authentication-Results lack %q: %q", want, ar)
		}
	}
	if n := len(b.messages("fwd@b.test", "INBOX")); n != 0 {
		t.Errorf("fwd@b.test keeps no copy, but has %d messages", n)
	}

	// A forwarding target that does not exist: B's bounce goes to the SRS address, which B
	// maps back to alice.
	msg = testMessage("alice@a.test", "fwd2@b.test", "forward to nobody", "bounce back")
	if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"fwd2@b.test"}, msg); err != nil {
		t.Fatal(err)
	}
	dsn := a.waitMessages(t, "alice@a.test", 1)[0]
	for _, want := range []string{"multipart/report", "Final-Recipient: rfc822; nobody@a.test", "Status: 5.1.1",
		"Reporting-MTA: dns; mail.b.test", "Subject: forward to nobody"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("bounce of forwarded mail lacks %q:\n%s", want, dsn)
		}
	}

	// A bounce from elsewhere to the SRS address is accepted on B's MX and relayed to alice;
	// a tampered one is refused.
	tampered := strings.Replace(srsAddr, "=alice@", "=mallory@", 1)
	if err := sendPlain(b.addr("smtp"), "", tampered, "Subject: x\r\n\r\nx\r\n"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("bounce to a tampered SRS address: %v", err)
	}
	bounce := "From: MAILER-DAEMON@elsewhere.test\r\nTo: " + srsAddr + "\r\nSubject: remote bounce\r\n\r\nyour mail bounced\r\n"
	if err := sendPlain(b.addr("smtp"), "", srsAddr, bounce); err != nil {
		t.Fatalf("bounce to the SRS address: %v", err)
	}
	msgs := a.waitMessages(t, "alice@a.test", 2)
	found := false
	for _, m := range msgs {
		if strings.Contains(m, "Subject: remote bounce") && strings.Contains(m, "Return-Path: <>") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the bounce to the SRS address did not reach alice:\n%s", strings.Join(msgs, "\n-----\n"))
	}
}

// Queue operations through `mailserver queue`, against a running server.
func TestQueueCommand(t *testing.T) {
	w := newWorld(t)
	// Only the operator's retry brings a deferred message out before an hour has passed.
	a := w.startA(func(c *config.Config) {
		c.Outbound.RetryInitial = config.Duration{Duration: time.Hour}
		c.Outbound.RetryMax = config.Duration{Duration: time.Hour}
	})
	for _, subject := range []string{"first", "second"} {
		msg := testMessage("alice@a.test", "bob@b.test", subject, "waiting")
		if err := submit(a.addr("submission"), "alice@a.test", alicePW, "alice@a.test", []string{"bob@b.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	serverPoll.Eventually(t, "two deferred attempts", func() bool {
		return a.metricValue(`kubemail_delivery_attempts_total{result="deferred"}`) == 2
	})
	queueCmd := func(args ...string) (string, error) {
		return run(t, "", binary, append([]string{"queue", "--config", a.cfgPath}, args...)...)
	}
	out, err := queueCmd("list", "--json")
	if err != nil {
		t.Fatalf("queue list: %v\n%s", err, out)
	}
	var entries []struct {
		ID         string `json:"id"`
		From       string `json:"from"`
		Attempts   int    `json:"attempts"`
		Recipients []struct {
			Address, Status, LastResult string
		} `json:"recipients"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("queue list --json: %v\n%s", err, out)
	}
	first, second := entries[0].ID, entries[1].ID
	if entries[0].From != "alice@a.test" || entries[0].Attempts != 1 || entries[0].Recipients[0].Status != "pending" ||
		!strings.Contains(entries[0].Recipients[0].LastResult, "4.4.1") {
		t.Errorf("first entry: %+v", entries[0])
	}
	out, err = queueCmd("list")
	if err != nil || !strings.Contains(out, first) || !strings.Contains(out, second) || !strings.Contains(out, "1/1") {
		t.Errorf("queue list: %v\n%s", err, out)
	}
	out, err = queueCmd("show", first)
	if err != nil || !strings.Contains(out, "bob@b.test  pending  4.4.1") || !strings.Contains(out, "Subject: first") ||
		strings.Contains(out, "waiting") {
		t.Errorf("queue show: %v\n%s", err, out)
	}
	if v := a.metricValue("kubemail_queue_oldest_message_age_seconds"); v <= 0 {
		serverPoll.Eventually(t, "the oldest-message gauge", func() bool { return a.metricValue("kubemail_queue_oldest_message_age_seconds") > 0 })
	}

	if out, err := queueCmd("delete", first); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("queue delete: %v\n%s", err, out)
	}
	if out, err := queueCmd("show", first); err == nil || !strings.Contains(out, "no such message") {
		t.Errorf("show after delete: %v\n%s", err, out)
	}
	if v := a.metricValue("kubemail_queue_messages"); v != 1 {
		t.Errorf("queue gauge after delete: %v", v)
	}

	b := w.startB()
	if out, err := queueCmd("retry", second); err != nil {
		t.Fatalf("queue retry: %v\n%s", err, out)
	}
	got := b.waitMessages(t, "bob@b.test", 1)
	if len(got) != 1 || !strings.Contains(got[0], "Subject: second") {
		t.Fatalf("bob got %d messages", len(got))
	}
	serverPoll.Eventually(t, "the queue to empty", func() bool { return a.metricValue("kubemail_queue_messages") == 0 })
	if out, err := queueCmd("list"); err != nil || !strings.Contains(out, "The queue is empty.") {
		t.Errorf("queue list at the end: %v\n%s", err, out)
	}
	if n := len(a.messages("alice@a.test", "INBOX")); n != 0 {
		t.Errorf("a deleted message was bounced: alice has %d messages", n)
	}
	// The HTTP admin API does not serve the queue without its token.
	resp, err := http.Get("http://" + a.addr("http") + "/admin/v1/queue")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/admin/v1/queue without a token: %s", resp.Status)
	}
}
