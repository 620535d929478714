package sieve

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// testNow is the delivery time of every table case: a Wednesday, in UTC.
var testNow = time.Date(2026, 12, 9, 10, 30, 0, 0, time.UTC)

// msg builds a message from header lines and a body, joined with CRLF.
func msg(body string, header ...string) string {
	return strings.Join(header, "\r\n") + "\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n")
}

var (
	msgPlain = msg("Hello Bob,\nshall we make money fast?\n-- \nAlice\n",
		"Return-Path: <alice@example.com>",
		"Received: from mx.example.com by mail.example.org; Tue, 08 Dec 2026 21:12:03 +0100",
		"Date: Tue, 08 Dec 2026 21:12:01 +0100",
		"From: Alice Cooper <alice@example.com>",
		"To: Bob <bob@example.org>, carol+lists@example.org",
		"Cc: dave@example.net",
		"Subject: Lunch tomorrow?",
		"Message-ID: <1@example.com>",
		"X-Spam-Score: 7",
		"X-Priority: 1")
	msgList = msg("Weekly digest\n",
		"From: \"Dev List\" <dev-bounces@lists.example.org>",
		"Sender: owner-ietf-mta-filters@imc.org",
		"To: dev@lists.example.org",
		"Subject: [dev] Weekly digest",
		"List-Id: Developers <dev.lists.example.org>",
		"Precedence: list",
		"Date: Mon, 07 Dec 2026 08:00:00 +0000")
	msgNews = msg("Big sale! Unsubscribe at https://example.com/u\n",
		"From: news@shop.example.com",
		"To: bob@example.org",
		"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgZGVtIFNob3A=?=",
		"X-Spam-Flag: YES",
		"Date: Sun, 06 Dec 2026 12:00:00 -0500")
	msgMIME = msg("This is a multi-part message.\n"+
		"--b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nDie Rechnung f=C3=BCr Dezember liegt bei.\n"+
		"--b1\nContent-Type: text/html; charset=utf-8\n\n<p>Die <b>Rechnung</b> liegt bei.</p>\n"+
		"--b1\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"+
		"--b1--\n",
		"From: billing@example.com",
		"To: bob@example.org",
		"Subject: Rechnung",
		"MIME-Version: 1.0",
		"Content-Type: multipart/mixed; boundary=b1")
	msgBig = msg(strings.Repeat("x", 600*1024)+"\n", "From: tim@example.com", "To: bob@example.org", "Subject: big")
)

// describe renders an action the way the table cases spell their expectations.
func describe(a Action) string {
	var b strings.Builder
	switch a.Kind {
	case Keep:
		if a.Implicit {
			b.WriteString("implicit ")
		}
		b.WriteString("keep")
	case FileInto:
		b.WriteString("fileinto " + a.Mailbox)
	case Redirect:
		b.WriteString("redirect " + a.Address)
	case Reject:
		if a.Extended {
			b.WriteString("e")
		}
		b.WriteString("reject " + a.Reason)
	case Discard:
		b.WriteString("discard")
	case VacationReply:
		v := a.Vacation
		fmt.Fprintf(&b, "vacation days=%d subject=%q from=%q reason=%q", v.Days, v.Subject, v.From, v.Reason)
		if len(v.Addresses) > 0 {
			fmt.Fprintf(&b, " addresses=%s", strings.Join(v.Addresses, ","))
		}
		if v.MIME {
			b.WriteString(" mime")
		}
		if !strings.Contains(v.Handle, "\x00") {
			fmt.Fprintf(&b, " handle=%q", v.Handle)
		}
	}
	if a.Copy {
		b.WriteString(" :copy")
	}
	if a.Create {
		b.WriteString(" :create")
	}
	if len(a.Flags) > 0 {
		b.WriteString(" flags=" + strings.Join(a.Flags, ","))
	}
	return b.String()
}

func describeAll(acts []Action) []string {
	out := make([]string, 0, len(acts))
	for _, a := range acts {
		out = append(out, describe(a))
	}
	return out
}

type evalCase struct {
	name   string
	script string
	msg    string // raw message; msgPlain when empty
	env    *Envelope
	want   []string // described actions, in order
	runErr string   // part of the runtime error, if one is expected
}

var defaultEnv = Envelope{From: "alice@example.com", To: "bob@example.org"}

func runCase(t *testing.T, c evalCase) {
	t.Helper()
	s, err := Compile(c.script)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	raw := c.msg
	if raw == "" {
		raw = msgPlain
	}
	env := defaultEnv
	if c.env != nil {
		env = *c.env
	}
	res := s.Evaluate(ParseMessage([]byte(raw)), env, testNow)
	if c.runErr != "" {
		if res.Err == nil || !strings.Contains(res.Err.Error(), c.runErr) {
			t.Fatalf("runtime error = %v, want one containing %q", res.Err, c.runErr)
		}
	} else if res.Err != nil {
		t.Fatalf("runtime error: %v", res.Err)
	}
	got := describeAll(res.Actions)
	if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
		t.Errorf("actions:\n got  %q\n want %q", got, c.want)
	}
}
