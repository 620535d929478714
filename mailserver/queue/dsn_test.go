package queue

import (
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/testutil"
)

// A DSN about internationalised addresses carries them in UTF-8 in the global report types of
// RFC 6533, and says why the receiving server could not take them.
func TestInternationalisedDSN(t *testing.T) {
	const why = "the receiving server mx.old.test does not support internationalised addresses (SMTPUTF8)"
	tr := &fakeTransport{answer: func(_ int, rcpt string) Result {
		return Result{Permanent: true, Status: "5.6.7", Text: why, RemoteMTA: "mx.old.test"}
	}}
	sink := &dsnSink{}
	q := open(t, t.TempDir(), tr, sink)
	q.Start()
	msg := "From: jörg@bücher.example\r\nTo: jürgen@old.test\r\nSubject: Grüße\r\n\r\nhallo\r\n"
	if err := q.Enqueue("jörg@bücher.example", []string{"jürgen@old.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the bounce", func() bool { return len(sink.get("jörg@bücher.example")) == 1 })
	dsn := sink.get("jörg@bücher.example")[0]
	for _, want := range []string{
		"Content-Type: message/global-delivery-status",
		"Final-Recipient: utf-8; jürgen@old.test\r\nAction: failed\r\nStatus: 5.6.7\r\n",
		"Remote-MTA: dns; mx.old.test",
		"<jürgen@old.test>: 5.6.7 " + why,
		"Content-Type: message/global-headers",
		"Subject: Grüße",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}
