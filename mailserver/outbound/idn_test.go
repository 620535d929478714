package outbound

import (
	"slices"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/queue"
)

// An internationalised domain is looked up and named in RCPT TO by its A-labels; only a local
// part in UTF-8 needs SMTPUTF8, and goes out with it.
func TestInternationalisedRecipients(t *testing.T) {
	// Without TLS, so that the test can read the commands off the wire.
	m := startMX(t, "127.0.0.1", 0, "mx.xn--bcher-kva.test", func(m *mx) { m.noTLS = true })
	dns := startDNS(t, "xn--bcher-kva.test. MX 10 mx.xn--bcher-kva.test.", "mx.xn--bcher-kva.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), nil)

	if res := deliver(tr, "a@sender.test", "anna@bücher.test"); len(res) != 1 || !res[0].Delivered {
		t.Fatalf("to anna@bücher.test: %+v", res)
	}
	if res := deliver(tr, "jörg@sender.test", "jürgen@BÜCHER.test", "anna@xn--bcher-kva.test"); len(res) != 2 ||
		!res[0].Delivered || !res[1].Delivered || res[0].Recipient != "jürgen@BÜCHER.test" {
		t.Fatalf("from jörg@sender.test: %+v", res)
	}
	got := m.received()
	if len(got) != 2 || !slices.Equal(got[0].rcpts, []string{"anna@xn--bcher-kva.test"}) ||
		got[1].from != "jörg@sender.test" || !slices.Equal(got[1].rcpts, []string{"jürgen@xn--bcher-kva.test", "anna@xn--bcher-kva.test"}) {
		t.Fatalf("the MX received %+v", got)
	}
	mails := map[string]string{}
	for _, line := range strings.Split(m.sent(), "\r\n") {
		if rest, ok := strings.CutPrefix(line, "MAIL FROM:"); ok {
			addr, params, _ := strings.Cut(rest, " ")
			mails[addr] = params
		}
	}
	if p := mails["<a@sender.test>"]; strings.Contains(p, "SMTPUTF8") {
		t.Errorf("an ASCII envelope went out with SMTPUTF8: %q", p)
	}
	if p, ok := mails["<jörg@sender.test>"]; !ok || !strings.Contains(p, "SMTPUTF8") {
		t.Errorf("a UTF-8 envelope went out without SMTPUTF8: %q (MAIL commands: %q)", p, mails)
	}
}

// A server without SMTPUTF8 gets no mail whose envelope needs it: recipients in UTF-8 fail at
// once with 5.6.7 and a reason a person understands, and so does every recipient of a sender in
// UTF-8. ASCII recipients, at IDN domains too, still get the message, without SMTPUTF8.
func TestNoSMTPUTF8AtTheReceiver(t *testing.T) {
	m := startMX(t, "127.0.0.1", 0, "mx.old.test", func(m *mx) { m.noUTF8, m.noTLS = true, true })
	dns := startDNS(t, "old.test. MX 10 mx.old.test.", "xn--ld-eka.test. MX 10 mx.old.test.", "mx.old.test. A 127.0.0.1")
	tr := newTransport(t, dns, m.port(), nil)
	const why = "the receiving server mx.old.test does not support internationalised addresses (SMTPUTF8)"
	refused := func(r queue.Result) bool {
		return !r.Delivered && r.Permanent && r.Status == "5.6.7" && strings.Contains(r.Text, why) && r.RemoteMTA == "mx.old.test"
	}

	for _, env := range [][]string{{"a@sender.test", "jürgen@old.test"}, {"jörg@sender.test", "b@old.test", "c@öld.test"}} {
		res := deliver(tr, env[0], env[1:]...)
		if len(res) != len(env)-1 || !slices.ContainsFunc(res, refused) || slices.ContainsFunc(res, func(r queue.Result) bool { return !refused(r) }) {
			t.Errorf("%s -> %s: %+v", env[0], env[1:], res)
		}
	}
	if strings.Contains(m.sent(), "MAIL FROM") {
		t.Errorf("a transaction was started for an envelope the server cannot take:\n%s", m.sent())
	}
	res := deliver(tr, "a@sender.test", "jürgen@old.test", "b@öld.test")
	if len(res) != 2 || !refused(res[0]) || res[0].Recipient != "jürgen@old.test" || !res[1].Delivered {
		t.Errorf("one recipient in UTF-8, one in ASCII at an IDN domain: %+v", res)
	}
	if got := m.received(); len(got) != 1 || !slices.Equal(got[0].rcpts, []string{"b@xn--ld-eka.test"}) {
		t.Errorf("the MX received %+v", got)
	}
	if strings.Contains(m.sent(), "SMTPUTF8") {
		t.Errorf("SMTPUTF8 sent to a server that does not offer it:\n%s", m.sent())
	}
}
