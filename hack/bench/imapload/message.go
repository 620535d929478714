package imapload

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Words for subjects, bodies and searches. Searches pick from the same lists, so they match
// some messages and not others.
var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
		"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda"}
	lastNames    = []string{"Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Silva", "Novak"}
	domains      = []string{"example.com", "example.org", "example.net", "mail.example", "corp.example"}
	subjectWords = []string{"invoice", "meeting", "report", "budget", "release", "lunch", "travel", "contract",
		"review", "update", "question", "schedule", "deadline", "proposal", "feedback", "holiday", "newsletter",
		"order", "shipment", "password", "workshop", "minutes", "draft", "agenda", "quarterly"}
	bodyWords = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so no what up can out
more them some could into time other than then only its two may first also after any work new just because
should people please thanks regards attached find below meeting tomorrow week report project team review`)
)

// messageMaker writes realistic messages: a few Received lines and the usual headers, a plain
// text body of a few hundred bytes to a few KiB, and now and then an HTML alternative or a
// base64 attachment. Sizes average about 8 KiB.
type messageMaker struct {
	rng *rand.Rand
	n   int
}

func newMessageMaker(r *rand.Rand) *messageMaker { return &messageMaker{rng: r} }

func (m *messageMaker) person() (name, addr string) {
	first, last := pick(m.rng, firstNames), pick(m.rng, lastNames)
	return first + " " + last, strings.ToLower(first) + "." + strings.ToLower(strings.ReplaceAll(last, "ü", "ue")) + "@" + pick(m.rng, domains)
}

func (m *messageMaker) sentence() string {
	n := 6 + m.rng.IntN(14)
	words := make([]string, n)
	for i := range words {
		words[i] = pick(m.rng, bodyWords)
	}
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	return strings.Join(words, " ") + "."
}

// text is a body of about size bytes, wrapped at 72 columns, in paragraphs.
func (m *messageMaker) text(size int) string {
	var b strings.Builder
	line := 0
	for b.Len() < size {
		s := m.sentence()
		if line+len(s)+1 > 72 {
			b.WriteString("\r\n")
			line = 0
			if m.rng.IntN(5) == 0 {
				b.WriteString("\r\n")
			}
		} else if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(s)
		line += len(s)
	}
	b.WriteString("\r\n")
	return b.String()
}

// message returns a new message and its Message-ID.
func (m *messageMaker) message() (string, []byte) {
	m.n++
	fromName, from := m.person()
	toName, to := m.person()
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(m.rng.IntN(90*24*3600)) * time.Second)
	id := fmt.Sprintf("<%x.%d@%s>", m.rng.Uint64(), m.n, pick(m.rng, domains))
	subject := pick(m.rng, subjectWords) + " " + pick(m.rng, subjectWords)
	if m.rng.IntN(3) == 0 {
		subject = "Re: " + subject
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", from)
	for i := 0; i < 2+m.rng.IntN(3); i++ {
		fmt.Fprintf(&b, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.example.com with ESMTPS id %x\r\n\tfor <%s>; %s\r\n",
			i, pick(m.rng, domains), i, pick(m.rng, domains), 1+m.rng.IntN(250), m.rng.Uint32(), to, date.Format(time.RFC1123Z))
	}
	fmt.Fprintf(&b, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=mail;\r\n\th=from:to:subject:date:message-id;\r\n\tbh=%s;\r\n\tb=%s\r\n",
		pick(m.rng, domains), m.b64(32), m.b64(256))
	fmt.Fprintf(&b, "From: %s <%s>\r\nTo: %s <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n",
		fromName, from, toName, to, subject, date.Format(time.RFC1123Z), id)
	body := m.text(300 + m.rng.IntN(4000))
	switch r := m.rng.IntN(10); {
	case r < 6:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(body)
	case r < 9:
		boundary := fmt.Sprintf("b%x", m.rng.Uint64())
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", boundary, body)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>%s</p></body></html>\r\n",
			boundary, strings.ReplaceAll(body, "\r\n\r\n", "</p>\r\n<p>"))
		fmt.Fprintf(&b, "--%s--\r\n", boundary)
	default:
		boundary := fmt.Sprintf("b%x", m.rng.Uint64())
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", boundary, body)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/pdf; name=\"%s.pdf\"\r\nContent-Disposition: attachment; filename=\"%s.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
			boundary, pick(m.rng, subjectWords), pick(m.rng, subjectWords))
		att := m.b64(8<<10 + m.rng.IntN(40<<10))
		for len(att) > 76 {
			b.WriteString(att[:76])
			b.WriteString("\r\n")
			att = att[76:]
		}
		fmt.Fprintf(&b, "%s\r\n--%s--\r\n", att, boundary)
	}
	return id, b.Bytes()
}

// b64 is n random bytes in base64.
func (m *messageMaker) b64(n int) string {
	raw := make([]byte, n)
	for i := range raw {
		raw[i] = byte(m.rng.Uint32())
	}
	return base64.StdEncoding.EncodeToString(raw)
}
