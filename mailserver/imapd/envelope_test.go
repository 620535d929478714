package imapd

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// encodeTestText is v as the wire writer sends it in a response.
func encodeTestText(t *testing.T, v wire.Value) string {
	t.Helper()
	var b bytes.Buffer
	w := wire.NewWriter(&b)
	if err := w.Untagged(v); err != nil {
		t.Fatalf("writing %+v: %v", v, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(b.String(), "* "), "\r\n")
}

// encodeTestClientFetch answers one FETCH of go-imap's client with "* 1 FETCH (item v)" and
// returns what the client made of it: the check that a real client reads our encoding.
func encodeTestClientFetch(t *testing.T, opts *imap.FetchOptions, items ...wire.Value) *imapclient.FetchMessageBuffer {
	t.Helper()
	srv, cli := net.Pipe()
	defer srv.Close()
	go func() {
		w := wire.NewWriter(srv)
		br := bufio.NewReader(srv)
		srv.Write([]byte("* OK [CAPABILITY IMAP4rev1 BINARY] ready\r\n"))
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if f := strings.Fields(line); len(f) > 1 && strings.EqualFold(f[1], "FETCH") {
				w.Untagged(wire.Number(1), wire.Atom("FETCH"), wire.List(items...))
				w.Tagged(f[0], wire.OK, "", nil, "done")
				w.Flush()
				return
			}
		}
	}()
	c := imapclient.New(cli, nil)
	defer c.Close()
	msgs, err := c.Fetch(imap.SeqSetNum(1), opts).Collect()
	if err != nil {
		t.Fatalf("client reading FETCH: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("client read %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func extractTestHeader(t *testing.T, msg string) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(msg)))
	if err != nil {
		t.Fatalf("reading header: %v", err)
	}
	return h
}

func TestEnvelopeEncodesLikeDovecot(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{{
		name: "all fields",
		msg: "Message-ID: <msg@id>\r\nIn-Reply-To: <reply@to.id>\r\n" +
			"Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nSubject: subject header\r\n" +
			"From: From Real <fromuser@fromdomain.org>\r\nTo: To Real <touser@todomain.org>\r\n" +
			"Cc: Cc Real <ccuser@ccdomain.org>\r\nBcc: Bcc Real <bccuser@bccdomain.org>\r\n" +
			"Sender: Sender Real <senderuser@senderdomain.org>\r\n" +
			"Reply-To: ReplyTo Real <replytouser@replytodomain.org>\r\n\r\nbody\r\n",
		want: `("Thu, 15 Feb 2007 01:02:03 +0200" "subject header" ` +
			`(("From Real" NIL "fromuser" "fromdomain.org")) ` +
			`(("Sender Real" NIL "senderuser" "senderdomain.org")) ` +
			`(("ReplyTo Real" NIL "replytouser" "replytodomain.org")) ` +
			`(("To Real" NIL "touser" "todomain.org")) ` +
			`(("Cc Real" NIL "ccuser" "ccdomain.org")) ` +
			`(("Bcc Real" NIL "bccuser" "bccdomain.org")) ` +
			`"<reply@to.id>" "<msg@id>")`,
	}, {
		name: "groups and a comment as name",
		msg: "Date: Thu, 15 Feb 2007 01:02:03 +0200\r\nFrom: user@domain (Real Name)\r\n" +
			"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\nCc: group:;, group2: (foo) ;\r\n\r\n",
		want: `("Thu, 15 Feb 2007 01:02:03 +0200" NIL ` +
			`(("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) ` +
			`(("Real Name" NIL "user" "domain")) ` +
			`((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)` +
			`(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ` +
			`((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)`,
	}, {
		name: "undisclosed recipients and a group with names",
		msg: "From: alice@example.com (Alice Liddell)\r\nTo: Undisclosed recipients:;\r\n" +
			"Cc: friends: \"Bob\" <bob@example.com> (comment), carol@example.org;\r\n\r\n",
		want: `(NIL NIL (("Alice Liddell" NIL "alice" "example.com")) ` +
			`(("Alice Liddell" NIL "alice" "example.com")) (("Alice Liddell" NIL "alice" "example.com")) ` +
			`((NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) ` +
			`((NIL NIL "friends" NIL)("Bob" NIL "bob" "example.com")(NIL NIL "carol" "example.org")(NIL NIL NIL NIL)) ` +
			`NIL NIL NIL)`,
	}, {
		name: "encoded words sent as in the header",
		msg: "Subject: =?UTF-8?Q?caf=C3=A9?= au lait\r\n" +
			"From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n\r\n",
		want: `(NIL "=?UTF-8?Q?caf=C3=A9?= au lait" (("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) ` +
			`(("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) ` +
			`(("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) NIL NIL NIL NIL NIL)`,
	}, {
		name: "folded subject and several message IDs",
		msg: "Subject: a long\r\n\tfolded   subject \r\nIn-Reply-To: <a@x>\r\n <b@y>\r\n" +
			"Message-ID:\r\n <folded@id>\r\n\r\n",
		want: `(NIL "a long folded subject" NIL NIL NIL NIL NIL NIL "<a@x> <b@y>" "<folded@id>")`,
	}, {
		name: "addresses without a domain or a local part",
		msg:  "From: undisclosed\r\nTo: <@example.com>, \"quoted local\"@example.com, <>\r\n\r\n",
		want: `(NIL NIL ((NIL NIL "undisclosed" "MISSING_DOMAIN")) ((NIL NIL "undisclosed" "MISSING_DOMAIN")) ` +
			`((NIL NIL "undisclosed" "MISSING_DOMAIN")) ` +
			`((NIL NIL "MISSING_MAILBOX" "example.com")(NIL NIL "quoted local" "example.com")` +
			`(NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) NIL NIL NIL NIL)`,
	}, {
		name: "empty sender and reply-to fall back to from, route dropped",
		msg:  "From: Joe <@route.example:joe@example.com>\r\nSender: \r\nReply-To:\r\n\r\n",
		want: `(NIL NIL (("Joe" NIL "joe" "example.com")) (("Joe" NIL "joe" "example.com")) ` +
			`(("Joe" NIL "joe" "example.com")) NIL NIL NIL NIL NIL)`,
	}, {
		name: "garbage gives NIL fields, not an error",
		msg:  "Date: yesterday-ish\r\nFrom: <<<>>> ,,, ;;; :::\r\nTo: (only a comment)\r\n\r\n",
		want: `(NIL NIL ((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) ` +
			`((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN")) NIL NIL NIL NIL NIL)`,
	}, {
		name: "display name with quoted specials and obsolete dotted local part",
		msg:  "From: \"Doe, John \\\"JD\\\"\" <john . doe@example.com>\r\n\r\n",
		want: `(NIL NIL (("Doe, John \"JD\"" NIL "john.doe" "example.com")) ` +
			`(("Doe, John \"JD\"" NIL "john.doe" "example.com")) ` +
			`(("Doe, John \"JD\"" NIL "john.doe" "example.com")) NIL NIL NIL NIL NIL)`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeTestText(t, encodeEnvelope(extractEnvelope(extractTestHeader(t, tt.msg))))
			if want := tt.want; got != want {
				t.Errorf("ENVELOPE\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEnvelopeKeeps8BitText(t *testing.T) {
	env := extractEnvelope(extractTestHeader(t, "Subject: Grüße aus Köln\r\nFrom: Jürgen <j@example.de>\r\n\r\n"))
	got := encodeTestText(t, encodeEnvelope(env))
	// Without UTF8=ACCEPT the writer sends 8-bit strings as literals, bytes unchanged.
	subj := "Grüße aus Köln"
	if !strings.Contains(got, "{"+strconv.Itoa(len(subj))+"}\r\n"+subj) || !strings.Contains(got, "Jürgen") {
		t.Errorf("ENVELOPE = %q, want the 8-bit subject and name as literals", got)
	}
	if env.Subject != subj || env.From[0].Name != "Jürgen" {
		t.Errorf("envelope = %+v", env)
	}
}

func TestEnvelopeNULBecomes0x80(t *testing.T) {
	env := extractEnvelope(extractTestHeader(t, "Subject: a\x00b\r\nMessage-ID: <x\x00y@z>\r\n\r\n"))
	if env.Subject != "a\x80b" || env.MessageID != "<x\x80y@z>" {
		t.Errorf("envelope = %q %q, want NUL replaced by 0x80", env.Subject, env.MessageID)
	}
	encodeTestText(t, encodeEnvelope(env)) // fails the test if the writer refuses it
}

func TestEncodeEnvelopeNilAndEmpty(t *testing.T) {
	want := "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
	if got := encodeTestText(t, encodeEnvelope(nil)); got != want {
		t.Errorf("nil envelope = %s, want %s", got, want)
	}
	if got := encodeTestText(t, encodeEnvelope(extractEnvelope(textproto.Header{}))); got != want {
		t.Errorf("empty header = %s, want %s", got, want)
	}
	if got := encodeTestText(t, encodeAddressList(nil)); got != "NIL" {
		t.Errorf("empty address list = %s, want NIL", got)
	}
}

// TestEnvelopeReadByGoIMAPClient checks that a real client reads the groups, names and IDs
// back: the envelope is only useful if clients parse it.
func TestEnvelopeReadByGoIMAPClient(t *testing.T) {
	env := extractEnvelope(extractTestHeader(t, "Date: Thu, 15 Feb 2007 01:02:03 +0200\r\n"+
		"Subject: =?UTF-8?Q?caf=C3=A9?=\r\nFrom: alice@example.com (Alice Liddell)\r\n"+
		"To: friends: a@x.org, b@y.org;\r\nMessage-ID: <id@example.com>\r\nIn-Reply-To: <p@example.com>\r\n\r\n"))
	got := encodeTestClientFetch(t, &imap.FetchOptions{Envelope: true},
		wire.Atom("ENVELOPE"), encodeEnvelope(env)).Envelope
	if got == nil {
		t.Fatal("client read no envelope")
	}
	wantDate := time.Date(2007, 2, 14, 23, 2, 3, 0, time.UTC)
	if !got.Date.Equal(wantDate) || got.Subject != "café" || got.MessageID != "id@example.com" ||
		len(got.InReplyTo) != 1 || got.InReplyTo[0] != "p@example.com" {
		t.Errorf("client envelope = %+v", got)
	}
	if len(got.From) != 1 || got.From[0].Name != "Alice Liddell" || got.From[0].Addr() != "alice@example.com" {
		t.Errorf("client From = %+v", got.From)
	}
	if len(got.To) != 4 || !got.To[0].IsGroupStart() || got.To[0].Mailbox != "friends" ||
		got.To[1].Addr() != "a@x.org" || !got.To[3].IsGroupEnd() {
		t.Errorf("client To = %+v, want the group friends with its markers", got.To)
	}
}
