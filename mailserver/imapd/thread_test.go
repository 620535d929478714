package imapd

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestThreadFixture(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		// Dovecot: 4 answers a missing message (a dummy, pruned); 5 forwards 1 by subject;
		// 18 reuses 1's Message-ID, so is a thread of its own that the subject joins to 1's
		// under a dummy; 8 and 9 share a missing cover letter; 12 and 11 are forwards of 13;
		// 19 and 20 refer to each other, and the loop is not closed.
		{"THREAD REFERENCES UTF-8 ALL",
			"* THREAD (16)(6 7)((1 (2 3)(4)(5))(18))(14)((8 10)(9))(13 (12)(11))(20 19)(15)(17)(21)"},
		// Dovecot: without 1, the first message with its Message-ID (18) takes its place.
		{"THREAD REFERENCES UTF-8 2:21",
			"* THREAD (16)(6 7)(14)((8 10)(9))(13 (12)(11))(18 (2 3)(4)(5))(20 19)(15)(17)(21)"},
		{"UID THREAD REFERENCES UTF-8 SINCE 4-Mar-2026", "* THREAD ((8 10)(9))(13 (12)(11))(18)(20 19)(15)(17)(21)"}, // Dovecot
		{"THREAD REFERENCES UTF-8 OR 8 OR 9 10", "* THREAD ((8 10)(9))"},                                             // Dovecot
		{"THREAD REFERENCES UTF-8 19", "* THREAD (19)"},                                                              // Dovecot
		{"THREAD REFERENCES UTF-8 11:13", "* THREAD (13 (12)(11))"},                                                  // Dovecot
		// Dovecot: one thread per base subject, the empty one included (14 and 15).
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (16)(6 7)(1 (2)(3)(4)(5)(18))(14 15)(8 10)(9)(12 (11)(13))(20 19)(17)(21)"},
		{"THREAD ORDEREDSUBJECT UTF-8 NOT 1", "* THREAD (16)(6 7)(2 (3)(4)(5)(18))(14 15)(8 10)(9)(12 (11)(13))(20 19)(17)(21)"}, // Dovecot
		// RFC 5256 5: "THREAD" [SP 1*thread-list]; Dovecot sends a space after THREAD.
		{"THREAD REFERENCES UTF-8 SUBJECT nothing-matches", "* THREAD"},
		{"THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing-matches", "* THREAD"},
	} {
		if got := c.answer(tc.cmd); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.cmd, got, tc.want)
		}
	}
}

// threadMsgs builds messages for the algorithms alone: seq i+1 for headers[i], dated in
// order unless a Date field says otherwise.
func threadMsgs(headers ...string) []*sortMsg {
	msgs := make([]*sortMsg, len(headers))
	for i, h := range headers {
		m := &sortMsg{seq: uint32(i + 1), uid: uint32(i + 1)}
		readFields([]byte(strings.ReplaceAll(h, "|", "\r\n")+"\r\n\r\n"),
			fieldSubject|fieldDate|fieldMessageID|fieldReferences|fieldInReplyTo, &m.fields)
		msgs[i] = m
	}
	return msgs
}

func renderThreads(threads []*threadNode) string {
	var b strings.Builder
	for _, t := range threads {
		b.WriteByte('(')
		writeThread(&b, t, false)
		b.WriteByte(')')
	}
	return b.String()
}

// Each case was also put to Dovecot 2.3 as messages of their own, and answered the same.
func TestThreadReferencesAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"chain", []string{
			"Message-ID: <a@x>|Subject: a",
			"Message-ID: <b@x>|References: <a@x>|Subject: b",
			"Message-ID: <c@x>|References: <a@x> <b@x>|Subject: c",
		}, "(1 2 3)"},
		{"In-Reply-To when References has no ID", []string{
			"Message-ID: <a@x>|Subject: a",
			"Message-ID: <b@x>|References: garbage|In-Reply-To: Alice's message <a@x> of Monday|Subject: b",
		}, "(1 2)"},
		// A message's own References are trusted over another's guess: 3 says 2's parent is
		// 1 only in passing, 2 itself says it has none.
		{"truncated references", []string{
			"Message-ID: <a@x>|Subject: a",
			"Message-ID: <c@x>|References: <a@x> <b@x>|Subject: c",
			"Message-ID: <b@x>|Subject: b",
		}, "(1)(3 2)"},
		{"dummy root with one child is promoted", []string{
			"Message-ID: <b@x>|References: <gone@x>|Subject: b",
		}, "(1)"},
		{"self reference", []string{
			"Message-ID: <a@x>|References: <a@x>|Subject: a",
		}, "(1)"},
		{"dummy at the top is dated by its first child", []string{
			"Message-ID: <z@x>|Subject: z|Date: Mon, 02 Mar 2026 12:00:00 +0000",
			"Message-ID: <b@x>|References: <gone@x>|Subject: b|Date: Mon, 02 Mar 2026 11:00:00 +0000",
			"Message-ID: <c@x>|References: <gone@x>|Subject: c|Date: Mon, 02 Mar 2026 10:00:00 +0000",
		}, "((3)(2))(1)"},
		{"two replies by subject join under a dummy", []string{
			"Message-ID: <a@x>|Subject: Re: lunch",
			"Message-ID: <b@x>|Subject: Fwd: lunch",
		}, "((1)(2))"},
		{"empty subjects are not merged", []string{
			"Message-ID: <a@x>|Subject: Re:",
			"Message-ID: <b@x>",
		}, "(1)(2)"},
		{"a subject's dummy takes the other threads", []string{
			"Message-ID: <a@x>|Subject: plan",
			"Message-ID: <b@x>|References: <gone@x>|Subject: Re: plan",
			"Message-ID: <c@x>|References: <gone@x>|Subject: Re: plan",
			"Message-ID: <d@x>|Subject: plan",
		}, "((1)(2)(3)(4))"},
	} {
		if got := renderThreads(threadByReferences(threadMsgs(tc.headers...))); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestWriteThreadNesting(t *testing.T) {
	// RFC 5256 5's example: 3 has one child, 6, which has two, 4 (with child 23) and 44.
	m := func(n uint32, children ...*threadNode) *threadNode {
		return &threadNode{msg: &threadMsg{sortMsg: &sortMsg{seq: n}}, children: children}
	}
	threads := []*threadNode{m(2), m(3, m(6, m(4, m(23)), m(44, m(7, m(96)))))}
	if got, want := renderThreads(threads), "(2)(3 6 (4 23)(44 7 96))"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	dummy := &threadNode{children: []*threadNode{m(3), m(5)}}
	if got, want := renderThreads([]*threadNode{dummy}), "((3)(5))"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestThreadCapabilities(t *testing.T) {
	checkCapabilities(t, "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES")
}

// TestThreadWithGoIMAPClient checks that go-imap's client reads our THREAD answer: thread
// lists side by side, with nesting.
func TestThreadWithGoIMAPClient(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{"a", "b", "Re: a", "Re: a"} {
		e.deliver(alice, "INBOX", message(s, "x"))
	}
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	threads, err := c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadOrderedSubject, SearchCriteria: &imap.SearchCriteria{}}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	// (1 (3)(4))(2)
	want := []imapclient.ThreadData{
		{Chain: []uint32{1}, SubThreads: []imapclient.ThreadData{{Chain: []uint32{3}}, {Chain: []uint32{4}}}},
		{Chain: []uint32{2}},
	}
	if !reflect.DeepEqual(threads, want) {
		t.Errorf("THREAD ORDEREDSUBJECT gave %+v, want %+v", threads, want)
	}
}

// BenchmarkThread10k is one THREAD REFERENCES of a folder of 10,000 messages, round trip
// included, with the header cache filled by a THREAD before the timer starts.
func BenchmarkThread10k(b *testing.B) {
	root := prefilled.root(b, 10000)
	e := newEnv(b, func(o *envOptions) { o.root = root })
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	opts := &imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: &imap.SearchCriteria{}}
	if _, err := c.Thread(opts).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Thread(opts).Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
