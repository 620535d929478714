package sieve

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestVacationPolicy(t *testing.T) {
	v := &Vacation{Days: 7, Handle: "h", Addresses: []string{"robert@example.org"}}
	direct := msg("x\n", "From: alice@example.com", "To: bob@example.org", "Subject: hi")
	cases := []struct {
		name, raw, from, to string
		own                 []string
		want                string // part of the reason; "" when a reply is due
	}{
		{"direct mail gets a reply", direct, "alice@example.com", "bob@example.org", nil, ""},
		{"null sender", direct, "", "bob@example.org", nil, "null sender"},
		{"auto-submitted", msg("x\n", "To: bob@example.org", "Auto-Submitted: auto-replied"), "a@example.com", "bob@example.org", nil, "Auto-Submitted"},
		{"auto-submitted no is human", msg("x\n", "To: bob@example.org", "Auto-Submitted: no"), "a@example.com", "bob@example.org", nil, ""},
		{"precedence bulk", msg("x\n", "To: bob@example.org", "Precedence: bulk"), "a@example.com", "bob@example.org", nil, "Precedence"},
		{"precedence junk", msg("x\n", "To: bob@example.org", "Precedence: junk"), "a@example.com", "bob@example.org", nil, "Precedence"},
		{"list-id", msg("x\n", "To: bob@example.org", "List-Id: <l.example.com>"), "a@example.com", "bob@example.org", nil, "mailing list"},
		{"list-unsubscribe", msg("x\n", "To: bob@example.org", "List-Unsubscribe: <mailto:u@example.com>"), "a@example.com", "bob@example.org", nil, "mailing list"},
		{"outlook suppression", msg("x\n", "To: bob@example.org", "X-Auto-Response-Suppress: OOF, AutoReply"), "a@example.com", "bob@example.org", nil, "no automatic replies"},
		{"mailer-daemon", direct, "MAILER-DAEMON@example.com", "bob@example.org", nil, "mail system address"},
		{"owner- sender", direct, "owner-dev@example.com", "bob@example.org", nil, "list or mail system"},
		{"-request sender", direct, "dev-request@example.com", "bob@example.org", nil, "list or mail system"},
		{"-bounces sender", direct, "dev-bounces@example.com", "bob@example.org", nil, "list or mail system"},
		{"sender is me", direct, "bob@example.org", "bob@example.org", nil, "sender is the recipient"},
		{"not addressed to me", msg("x\n", "To: team@example.org"), "a@example.com", "bob@example.org", nil, "none of the recipient's addresses"},
		{"alias counts as mine", msg("x\n", "To: team@example.org"), "a@example.com", "bob@example.org", []string{"team@example.org"}, ""},
		{":addresses count as mine", msg("x\n", "Cc: Robert <robert@example.org>"), "a@example.com", "bob@example.org", nil, ""},
		{"case of my address", msg("x\n", "To: BOB@Example.org"), "a@example.com", "bob@example.org", nil, ""},
	}
	for _, c := range cases {
		got := VacationPolicy(v, ParseMessage([]byte(c.raw)), Envelope{From: c.from, To: c.to}, c.own, &MemoryReplyLog{}, testNow)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.want)
		}
	}
}

func TestVacationOncePerPeriod(t *testing.T) {
	v := &Vacation{Days: 3, Handle: "away"}
	m := ParseMessage([]byte(msg("x\n", "To: bob@example.org")))
	env := Envelope{From: "Alice@example.com", To: "bob@example.org"}
	log := &MemoryReplyLog{}
	if r := VacationPolicy(v, m, env, nil, log, testNow); r != "" {
		t.Fatalf("first message: %s", r)
	}
	log.Record(env.From, v.Handle, testNow)
	if r := VacationPolicy(v, m, env, nil, log, testNow.Add(71*time.Hour)); !strings.Contains(r, "less than 3 days ago") {
		t.Errorf("within the period: %q", r)
	}
	if r := VacationPolicy(&Vacation{Days: 3, Handle: "other"}, m, env, nil, log, testNow.Add(time.Hour)); r != "" {
		t.Errorf("another handle is another reply: %q", r)
	}
	if r := VacationPolicy(v, m, env, nil, log, testNow.Add(72*time.Hour)); r != "" {
		t.Errorf("after the period: %q", r)
	}
}

func TestReplySubject(t *testing.T) {
	m := ParseMessage([]byte(msgNews))
	if got := (&Vacation{}).ReplySubject(m); got != "Auto: Grüße aus dem Shop" {
		t.Errorf("default subject %q", got)
	}
	if got := (&Vacation{Subject: "Away"}).ReplySubject(m); got != "Away" {
		t.Errorf(":subject %q", got)
	}
}

func TestBuildReply(t *testing.T) {
	orig := ParseMessage([]byte(msg("hi\n", "From: Alice <alice@example.com>", "To: bob@example.org",
		"Subject: Grüße", "Message-ID: <1@example.com>", "References: <0@example.com>")))
	env := Envelope{From: "alice@example.com", To: "bob@example.org"}
	v := &Vacation{Days: 7, Reason: "Bin weg bis Montag.\nGrüße, Bob"}
	raw := BuildReply(v, orig, env, "bob@example.org", "<r1@example.org>", testNow)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reply does not parse: %v\n%s", err, raw)
	}
	want := map[string]string{
		"From": "bob@example.org", "To": "<alice@example.com>", "Message-Id": "<r1@example.org>",
		"In-Reply-To": "<1@example.com>", "References": "<0@example.com> <1@example.com>",
		"Auto-Submitted": "auto-replied (vacation)", "Content-Transfer-Encoding": "quoted-printable",
	}
	for k, w := range want {
		if got := m.Header.Get(k); got != w {
			t.Errorf("%s: %q, want %q", k, got, w)
		}
	}
	if subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); subj != "Auto: Grüße" {
		t.Errorf("subject %q", subj)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	if string(body) != "Bin weg bis Montag.\r\nGrüße, Bob\r\n" {
		t.Errorf("body %q", body)
	}
	if strings.Contains(strings.ReplaceAll(string(raw), "\r\n", ""), "\n") {
		t.Errorf("bare LF in reply")
	}
}

func TestBuildReplyMIME(t *testing.T) {
	orig := ParseMessage([]byte(msg("hi\n", "From: alice@example.com", "Subject: x")))
	v := &Vacation{MIME: true, From: "Bob <bob@example.org>", Subject: "Away",
		Reason: "Content-Type: text/html\n\n<p>Away</p>\n"}
	raw := BuildReply(v, orig, Envelope{From: "alice@example.com"}, "bob@example.org", "<r2@example.org>", testNow)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Content-Type") != "text/html" || m.Header.Get("From") != "Bob <bob@example.org>" ||
		m.Header.Get("Subject") != "Away" || m.Header.Get("In-Reply-To") != "" {
		t.Errorf("header %v", m.Header)
	}
	if body, _ := io.ReadAll(m.Body); string(body) != "<p>Away</p>\r\n" {
		t.Errorf("body %q", body)
	}
}

func TestBuildReplyKeepsFieldsOnOneLine(t *testing.T) {
	orig := ParseMessage([]byte(msg("hi\n", "From: alice@example.com")))
	v := &Vacation{Subject: "Away\r\nBcc: victim@example.net", From: "bob@example.org\nX-Evil: 1", Reason: "x"}
	raw := BuildReply(v, orig, Envelope{From: "alice@example.com"}, "bob@example.org", "<r3@example.org>", testNow)
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Bcc") != "" || m.Header.Get("X-Evil") != "" {
		t.Errorf("a script value started a new field:\n%s", raw)
	}
}
