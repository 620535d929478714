package imapd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// The fixture under testdata/sort is 21 messages delivered in manifest.txt's order with its
// internal dates: a discussion with replies, a reply to a missing message and a forward; a
// patch series whose cover letter is missing; encoded-word subjects and names; "(fwd)",
// "[fwd: ...]" and "[list]" subjects; a message without sender, subject or date, one with an
// unreadable date; a duplicate Message-ID; two messages that reference each other.
//
// The expected answers marked "Dovecot" are what Dovecot 2.3's imap answered for the same
// messages, appended with the same internal dates (checked by hand when this was written).

// sortFixture delivers the fixture to alice's INBOX and returns a session that selected it.
func sortFixture(t *testing.T) *rawConn {
	t.Helper()
	e := newEnv(t)
	dir := filepath.Join("testdata", "sort")
	manifest, err := os.Open(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer manifest.Close()
	inbox := e.folder(alice, "INBOX")
	sc := bufio.NewScanner(manifest)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, date, _ := strings.Cut(line, " ")
		arrival, err := time.Parse("02-Jan-2006 15:04:05 -0700", date)
		if err != nil {
			t.Fatalf("manifest: %v", err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.ReplaceAll(string(raw), "\n", "\r\n")
		if _, err := inbox.Append(strings.NewReader(msg), nil, arrival); err != nil {
			t.Fatalf("delivering %s: %v", name, err)
		}
	}
	c := e.raw(t)
	c.command("l", fmt.Sprintf("LOGIN %s %q", alice, password))
	c.command("s", "SELECT INBOX")
	return c
}

// command sends one command and returns its untagged responses and its tagged completion.
func (c *rawConn) command(tag, cmd string) (untagged []string, done string) {
	c.t.Helper()
	lines := c.transact(tag, cmd)
	return lines[:len(lines)-1], lines[len(lines)-1]
}

// answer runs a command that must succeed and returns its one untagged response.
func (c *rawConn) answer(cmd string) string {
	c.t.Helper()
	untagged, done := c.command("t", cmd)
	if !strings.HasPrefix(done, "t OK") {
		c.t.Fatalf("%s: %s", cmd, done)
	}
	if len(untagged) != 1 {
		c.t.Fatalf("%s: want one untagged response, got %q", cmd, untagged)
	}
	return untagged[0]
}

func TestSortFixture(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		// Dovecot: base subjects, "" first ([ann] last: titlecase puts "[" after letters).
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 14 15 16 19 20 21 8 10 9 11 12 13 1 2 3 4 5 18 6 7 17"},
		// Dovecot: 8 and 9 arrived at the same second and stay in mailbox order.
		{"SORT (ARRIVAL) UTF-8 ALL", "* SORT 16 6 7 1 2 3 4 14 5 8 9 10 12 11 13 18 20 15 19 17 21"},
		// Dovecot: dates in other zones compared in UTC; 14 (no Date) and 15 (unreadable) by
		// their arrival.
		{"SORT (DATE) UTF-8 ALL", "* SORT 16 6 7 1 2 3 4 14 5 8 9 10 12 11 13 18 20 15 19 17 21"},
		// Dovecot: local parts, case-insensitively ("Carol@" with the others).
		{"SORT (FROM) UTF-8 ALL", "* SORT 14 1 18 6 17 2 3 4 5 8 9 10 11 12 13 16 19 20 21 15 7"},
		// Dovecot: 14's "undisclosed-recipients:;" sorts by the group's name.
		{"SORT (TO) UTF-8 ALL", "* SORT 2 4 15 16 17 7 1 3 11 12 13 18 8 9 10 5 20 21 19 14 6"},
		{"SORT (CC) UTF-8 ALL", "* SORT 2 4 5 6 7 8 9 11 12 14 15 16 17 18 19 20 21 1 3 10 13"},              // Dovecot
		{"SORT (SIZE) UTF-8 ALL", "* SORT 14 17 15 12 11 5 16 18 1 7 13 19 20 2 6 10 8 9 4 3 21"},            // Dovecot
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 14 1 18 6 17 2 3 4 5 8 9 10 11 12 13 16 19 20 21 15 7"},     // Dovecot
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 2 16 4 15 17 7 1 3 11 12 13 18 8 9 10 5 20 21 19 14 6"},       // Dovecot
		{"SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT 21 17 19 15 20 18 13 11 12 10 8 9 5 14 4 3 2 1 7 6 16"}, // Dovecot
		// Dovecot: REVERSE does not reverse ties, which stay in mailbox order.
		{"SORT (REVERSE SUBJECT) UTF-8 ALL", "* SORT 17 6 7 1 2 3 4 5 18 11 12 13 9 8 10 21 19 20 16 14 15"},
		{"SORT (REVERSE CC) UTF-8 ALL", "* SORT 13 10 3 1 21 2 4 5 6 7 8 9 11 12 14 15 16 17 18 19 20"}, // Dovecot
		// Dovecot: several keys, each one breaking the previous one's ties.
		{"SORT (FROM REVERSE DATE) UTF-8 ALL", "* SORT 14 18 1 6 17 2 3 4 5 9 8 10 11 12 13 16 19 20 21 15 7"},
		{"SORT (REVERSE FROM SUBJECT) UTF-8 ALL", "* SORT 7 15 21 20 19 16 13 12 11 10 8 9 5 4 3 2 17 6 1 18 14"},
		{"SORT (CC SIZE) UTF-8 ALL", "* SORT 14 17 15 12 11 5 16 18 7 19 20 2 6 8 9 4 21 1 3 10 13"},
		{"SORT (DISPLAYTO REVERSE SIZE) UTF-8 ALL", "* SORT 2 16 4 15 17 7 3 13 1 18 11 12 9 8 10 5 20 21 19 14 6"},
		// Dovecot: the search criteria choose the messages.
		{"SORT (SUBJECT) UTF-8 1:3 OR FROM bob FROM carol", "* SORT 2 3"},
		{"SORT (ARRIVAL) UTF-8 SUBJECT nothing-matches", "* SORT"},
		{"SORT (ARRIVAL) US-ASCII 2,1", "* SORT 1 2"},
	} {
		if got := c.answer(tc.cmd); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.cmd, got, tc.want)
		}
	}
}

func TestSortReturnESearch(t *testing.T) {
	c := sortFixture(t)
	for _, tc := range []struct{ cmd, want string }{
		// Dovecot: MIN and MAX are the first and last in sort order, ALL is in sort order
		// with ascending runs as ranges.
		{"SORT RETURN (MIN MAX ALL COUNT) (SUBJECT) UTF-8 ALL",
			`* ESEARCH (TAG "t") MIN 14 MAX 17 ALL 14:16,19:21,8,10,9,11:13,1:5,18,6:7,17 COUNT 21`},
		{"UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 ALL",
			`* ESEARCH (TAG "t") UID ALL 21,17,19,15,20,18,13,11:12,10,8:9,5,14,4,3,2,1,7,6,16`},
		{"SORT RETURN () (ARRIVAL) UTF-8 ALL", `* ESEARCH (TAG "t") ALL 16,6:7,1:4,14,5,8:10,12,11,13,18,20,15,19,17,21`},
		{"SORT RETURN (COUNT) (ARRIVAL) UTF-8 SUBJECT nothing-matches", `* ESEARCH (TAG "t") COUNT 0`},
		{"SORT RETURN (MIN MAX ALL) (ARRIVAL) UTF-8 SUBJECT nothing-matches", `* ESEARCH (TAG "t")`},
		{"SORT RETURN (ALL) (DATE) US-ASCII 16,6,1:4,7", `* ESEARCH (TAG "t") ALL 16,6:7,1:4`},
		// Dovecot: SAVE with MIN alone saves the first in sort order (RFC 5182 2.1).
		{"SORT RETURN (SAVE MIN) (REVERSE SIZE) UTF-8 1:5", `* ESEARCH (TAG "t") MIN 3`},
		{"SEARCH RETURN (ALL) $", `* ESEARCH (TAG "t") ALL 3`},
	} {
		if got := c.answer(tc.cmd); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.cmd, got, tc.want)
		}
	}
	// Dovecot: SAVE alone answers nothing untagged, and saves the whole result.
	if untagged, done := c.command("t", "SORT RETURN (SAVE) (REVERSE SIZE) UTF-8 1:5"); len(untagged) != 0 || !strings.HasPrefix(done, "t OK") {
		t.Errorf("SORT RETURN (SAVE): %q %s", untagged, done)
	}
	if got := c.answer("SEARCH RETURN (ALL) $"); got != `* ESEARCH (TAG "t") ALL 1:5` {
		t.Errorf("after SORT RETURN (SAVE), $ is %s", got)
	}
}

// TestSortAnswersUIDs checks that UID SORT answers UIDs, which differ from sequence numbers
// once a message is expunged, and that ties follow mailbox order.
func TestSortAnswersUIDs(t *testing.T) {
	e := newEnv(t)
	gone := e.deliver(alice, "INBOX", message("gone", "x"))
	b := e.deliver(alice, "INBOX", message("b", "x"))
	a := e.deliver(alice, "INBOX", message("a", "x"))
	a2 := e.deliver(alice, "INBOX", message("Re: A", "x"))
	if _, err := e.folder(alice, "INBOX").Expunge([]uint32{gone.UID}); err != nil {
		t.Fatal(err)
	}
	c := e.raw(t)
	c.command("l", fmt.Sprintf("LOGIN %s %q", alice, password))
	c.command("s", "SELECT INBOX")
	if got, want := c.answer("UID SORT (SUBJECT) UTF-8 ALL"), fmt.Sprintf("* SORT %d %d %d", a.UID, a2.UID, b.UID); got != want {
		t.Errorf("UID SORT: got %s, want %s", got, want)
	}
	if got := c.answer("SORT (SUBJECT) UTF-8 ALL"); got != "* SORT 2 3 1" {
		t.Errorf("SORT: got %s, want * SORT 2 3 1", got)
	}
}

func TestSortAndThreadRefuseBadCommands(t *testing.T) {
	e := newEnv(t)
	c := e.raw(t)
	c.command("l", fmt.Sprintf("LOGIN %s %q", alice, password))
	// Without a selected folder.
	for _, cmd := range []string{"SORT (SUBJECT) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL"} {
		if _, done := c.command("t", cmd); !strings.HasPrefix(done, "t BAD") || !strings.Contains(done, "selected") {
			t.Errorf("%s before SELECT: %s", cmd, done)
		}
	}
	c.command("s", "SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"SORT () UTF-8 ALL", "t BAD"},
		{"SORT SUBJECT UTF-8 ALL", "t BAD"},
		{"SORT (SUBJECT) UTF-8", "t BAD"},
		{"SORT (SUBJECT)", "t BAD"},
		{"SORT", "t BAD"},
		{"SORT (SUBJECT REVERSE) UTF-8 ALL", "t BAD"},
		{"SORT (FOO) UTF-8 ALL", "t BAD"},
		{"SORT (SUBJECT) UTF-8 FOO", "t BAD"},
		{"SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL", "t BAD"},
		{"SORT RETURN (PARTIAL 1:2 ALL) (SUBJECT) UTF-8 ALL", "t BAD"},
		// RFC 5256's grammar has one REVERSE per key; Dovecot accepts two and cancels them.
		{"SORT (REVERSE REVERSE SUBJECT) UTF-8 ALL", "t BAD"},
		// Dovecot knows KOI8-R; we search in UTF-8 and US-ASCII only.
		{"SORT (SUBJECT) KOI8-R ALL", "t NO [BADCHARSET (UTF-8 US-ASCII)]"},
		{"SORT (SUBJECT) X-UNKNOWN ALL", "t NO [BADCHARSET (UTF-8 US-ASCII)]"},
		{"THREAD FOO UTF-8 ALL", "t BAD"},
		{"THREAD (REFERENCES) UTF-8 ALL", "t BAD"},
		{"THREAD REFERENCES UTF-8", "t BAD"},
		{"THREAD", "t BAD"},
		{"THREAD REFERENCES X-UNKNOWN ALL", "t NO [BADCHARSET (UTF-8 US-ASCII)]"},
		{"UID THREAD ORDEREDSUBJECT UTF-8 (", "t BAD"},
	} {
		untagged, done := c.command("t", tc.cmd)
		if !strings.HasPrefix(done, tc.want) || len(untagged) != 0 {
			t.Errorf("%s: got %q %s, want %s", tc.cmd, untagged, done, tc.want)
		}
	}
}

func TestSortCapabilities(t *testing.T) {
	checkCapabilities(t, "SORT", "SORT=DISPLAY", "ESORT")
}

// checkCapabilities fails unless a logged-in session is offered every one of want.
func checkCapabilities(t *testing.T, want ...string) {
	t.Helper()
	e := newEnv(t)
	c := e.raw(t)
	c.command("l", fmt.Sprintf("LOGIN %s %q", alice, password))
	caps := " " + c.answer("CAPABILITY") + " "
	for _, w := range want {
		if !strings.Contains(caps, " "+w+" ") {
			t.Errorf("CAPABILITY lacks %s: %s", w, caps)
		}
	}
}

// TestSortWithGoIMAPClient checks that go-imap's client reads our SORT answer.
func TestSortWithGoIMAPClient(t *testing.T) {
	e := newEnv(t)
	for _, s := range []string{"Re: b", "a", "c"} {
		e.deliver(alice, "INBOX", message(s, "x"))
	}
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	nums, err := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{},
		SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeySubject, Reverse: true}}}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(nums, []uint32{3, 1, 2}) {
		t.Errorf("SORT (REVERSE SUBJECT) gave %v, want [3 1 2]", nums)
	}
}

// BenchmarkSort10k is one SORT (SUBJECT REVERSE DATE) of a folder of 10,000 messages, round
// trip included, with the header cache filled by a SORT before the timer starts.
func BenchmarkSort10k(b *testing.B) {
	root := prefilled.root(b, 10000)
	e := newEnv(b, func(o *envOptions) { o.root = root })
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	opts := &imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{},
		SortCriteria: []imapclient.SortCriterion{{Key: imapclient.SortKeySubject}, {Key: imapclient.SortKeyDate, Reverse: true}}}
	if _, err := c.Sort(opts).Wait(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nums, err := c.Sort(opts).Wait()
		if err != nil {
			b.Fatal(err)
		}
		if len(nums) != 10000 {
			b.Fatalf("SORT answered %d numbers", len(nums))
		}
	}
}

func TestReadFields(t *testing.T) {
	raw := "Received: from a\r\n\tby b\r\nsubject: first\r\n line\r\nSubject: second\r\nTO:\r\n  bob@example.net\r\n\r\nFrom: in the body\r\n"
	var f [numFields]string
	readFields([]byte(raw), fieldSubject|fieldTo|fieldFrom, &f)
	if f[fieldIndexSubject] != "first line" || f[fieldIndexTo] != "bob@example.net" || f[fieldIndexFrom] != "" {
		t.Errorf("readFields: subject %q, to %q, from %q", f[fieldIndexSubject], f[fieldIndexTo], f[fieldIndexFrom])
	}
}

func TestSentDate(t *testing.T) {
	arrival := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		date string
		want time.Time
	}{
		{"Mon, 2 Mar 2026 04:30:00 -0500", time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)},
		{"Mon, 02 Mar 2026 04:30:00 -0500 (EST)", time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)},
		{"2 Mar 2026 04:30 GMT", time.Date(2026, 3, 2, 4, 30, 0, 0, time.UTC)},
		{"sometime last week", arrival},
		{"", arrival},
	} {
		m := &sortMsg{arrival: arrival}
		m.fields[fieldIndexDate] = tc.date
		if got := m.sentDate(); !got.Equal(tc.want) {
			t.Errorf("sent date of %q: got %v, want %v", tc.date, got, tc.want)
		}
	}
}

func TestSortedSetWritesAscendingRuns(t *testing.T) {
	var msgs []*sortMsg
	for _, n := range []uint32{5, 1, 2, 3, 4, 9, 8, 10} {
		msgs = append(msgs, &sortMsg{seq: n, uid: n + 100})
	}
	if got := sortedSet(msgs, false); got != "5,1:4,9,8,10" {
		t.Errorf("sortedSet by sequence number: %s", got)
	}
	if got := sortedSet(msgs, true); got != "105,101:104,109,108,110" {
		t.Errorf("sortedSet by UID: %s", got)
	}
}
