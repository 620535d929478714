package mailserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/dnsresolve/dnstest"
)

// TestInboundChecksKeepToTheirDNSBudget points the server at a resolver that drops every
// query: a message is accepted with temporary errors once the budget is spent, and another
// session meanwhile is answered as usual. With answers, the checks pass as before.
func TestInboundChecksKeepToTheirDNSBudget(t *testing.T) {
	dns, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	dns.AddTXT("good.test", "v=spf1 ip4:127.0.0.1 -all")
	dns.AddTXT("_dmarc.good.test", "v=DMARC1; p=reject")
	s := startServer(t, func(c *config.Config) {
		c.DNS.Resolver = dns.Addr
		c.Inbound.DNSBudget = config.Duration{Duration: 3 * time.Second}
	})
	dns.DropAll(true)

	sent := make(chan error, 1)
	start := time.Now()
	go func() {
		sent <- sendPlain(s.addr("smtp"), "x@blackhole.test", "alice@example.com",
			testMessage("x@blackhole.test", "alice@example.com", "black-holed", "hello"))
	}()
	// The DMARC query arrives once the message's checks are under way.
	testutil.Poll{Within: 15 * time.Second}.Eventually(t, "the checks' DMARC query", func() bool { return dns.Asked("_dmarc.blackhole.test") })
	if err := smtpDialogueOnly(s.addr("smtp")); err != nil {
		t.Fatalf("another session while the checks wait for DNS: %v", err)
	}
	select {
	case err := <-sent:
		t.Fatalf("the message was answered (%v) before the other session had finished: the other session waited for it", err)
	default:
	}
	if err := <-sent; err != nil {
		t.Fatalf("the message whose checks ran out of time: %v, want it accepted", err)
	}
	t.Logf("accepted %v after the first command, with a DNS budget of 3s", time.Since(start).Round(time.Millisecond))
	msgs := s.waitMessages(t, "alice@example.com", 1)
	ar := authResults(msgs[0])
	for _, want := range []string{"spf=temperror", "dmarc=temperror", `reason="DNS lookups unfinished after 3s"`} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lack %q:\n%s", want, ar)
		}
	}
	if !strings.Contains(s.logs(), "ran out of time") {
		t.Error("the exhausted budget was not logged")
	}

	dns.DropAll(false)
	if err := sendPlain(s.addr("smtp"), "y@good.test", "alice@example.com", testMessage("y@good.test", "alice@example.com", "answered", "hello")); err != nil {
		t.Fatal(err)
	}
	msgs = s.waitMessages(t, "alice@example.com", 2)
	var answered string
	for _, m := range msgs {
		if strings.Contains(m, "Subject: answered") {
			answered = authResults(m)
		}
	}
	if !strings.Contains(answered, "spf=pass") || !strings.Contains(answered, "dmarc=pass") {
		t.Errorf("with answers: %s", answered)
	}
}

// smtpDialogueOnly runs a session without a message: EHLO, MAIL, RCPT, RSET, QUIT.
func smtpDialogueOnly(addr string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("other.example.net"); err != nil {
		return err
	}
	if err := c.Mail("z@other.example.net", nil); err != nil {
		return err
	}
	if err := c.Rcpt("bob@example.org", nil); err != nil {
		return err
	}
	if err := c.Reset(); err != nil {
		return err
	}
	return c.Quit()
}
