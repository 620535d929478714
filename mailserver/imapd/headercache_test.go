package imapd

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/store"
)

// headerFetch is the message list's request: what the header cache serves.
var headerFetch = &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true,
	BodySection: []*imap.FetchItemBodySection{
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject", "Message-ID"}},
		{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received"}},
		{Peek: true, Specifier: imap.PartSpecifierHeader},
	}}

var headerSearches = []*imap.SearchCriteria{
	{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "report"}}},
	{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "CAROL"}}},
	{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "grüße"}}},
	{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "ärger"}}},
	{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Label", Value: ""}}},
	{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "alice"}}, Body: []string{"attached"}},
	{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "week"}}}}},
}

var cacheTestMessages = []string{
	message("weekly report", "numbers"),
	message("lunch", "at noon"),
	multipartMessage,
	"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\r\nX-Label: x\r\n\r\nhi\r\n",
	"From: Dave <dave@example.com>\r\nSubject: " + strings.Repeat("long ", 2000) + "ÄRGER\r\n\r\nbody\r\n",
	"Subject: no body and no blank line\r\n",
}

// listAndSearch returns the answers of a header FETCH and of headerSearches, as text.
func listAndSearch(t *testing.T, c *imapclient.Client) string {
	t.Helper()
	var b strings.Builder
	for _, m := range fetch(t, c, imap.SeqSet{{Start: 1, Stop: 0}}, headerFetch) {
		fmt.Fprintf(&b, "%d %v %d %+v\n", m.UID, m.Flags, m.RFC822Size, m.Envelope)
		for _, s := range m.BodySection {
			fmt.Fprintf(&b, "  %q\n", s.Bytes)
		}
	}
	for _, cr := range headerSearches {
		data, err := c.UIDSearch(cr, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%+v -> %v\n", *cr, data.AllUIDs())
	}
	return b.String()
}

// TestHeaderCacheAnswersLikeTheFiles compares every answer the cache serves with the answers
// of a server without it, cold and warm.
func TestHeaderCacheAnswersLikeTheFiles(t *testing.T) {
	e := newEnv(t)
	for _, m := range cacheTestMessages {
		e.deliver(alice, "INBOX", m)
	}
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.store.SetHeaderCacheBytes(0)
	want := listAndSearch(t, c)
	if st := e.store.HeaderCacheStats(); st.Entries != 0 {
		t.Fatalf("a cache with no budget kept entries: %+v", st)
	}
	e.store.SetHeaderCacheBytes(1 << 20)
	for _, round := range []string{"cold", "warm"} {
		if got := listAndSearch(t, c); got != want {
			t.Errorf("%s cache answered\n%s\nwithout the cache\n%s", round, got, want)
		}
	}
	st := e.store.HeaderCacheStats()
	if st.Entries != len(cacheTestMessages) || st.Hits == 0 {
		t.Errorf("after two rounds: %+v, want every message cached and hits", st)
	}
	if !strings.Contains(want, "weekly report") || !strings.Contains(want, "Value:report}] Body:[] Text:[] Flag:[] NotFlag:[] Larger:0 Smaller:0 Not:[] Or:[] ModSeq:<nil>} -> [1 3]") {
		t.Errorf("the answers look wrong:\n%s", want)
	}
}

// TestHeaderCacheSharedAndInvalidated: sessions share the cache; a message appended by one is
// found by another's search, and one expunged is gone from every answer.
func TestHeaderCacheSharedAndInvalidated(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		e.deliver(alice, "INBOX", message(fmt.Sprintf("note %d", i), "text"))
	}
	clients := make([]*imapclient.Client, 4)
	for i := range clients {
		clients[i] = e.client(alice, nil)
		if _, err := clients[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	fetch(t, clients[0], imap.SeqSet{{Start: 1, Stop: 0}}, headerFetch)
	misses := e.store.HeaderCacheStats().Misses
	search := func(c *imapclient.Client, word string) []imap.UID {
		t.Helper()
		data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: word}}}, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return data.AllUIDs()
	}
	var wg sync.WaitGroup
	for _, c := range clients[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if got := search(c, "note 7"); !reflect.DeepEqual(got, []imap.UID{8}) {
					t.Errorf("SEARCH SUBJECT \"note 7\" = %v, want [8]", got)
				}
				fetch(t, c, imap.SeqSet{{Start: 1, Stop: 0}}, headerFetch)
			}
		}()
	}
	wg.Wait()
	if st := e.store.HeaderCacheStats(); st.Misses != misses {
		t.Errorf("other sessions read files again: misses %d -> %d (%+v)", misses, st.Misses, st)
	}

	data := appendMsg(t, clients[0], "INBOX", message("fresh arrival", "new"), nil)
	if err := clients[1].Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if got := search(clients[1], "arrival"); !reflect.DeepEqual(got, []imap.UID{data.UID}) {
		t.Errorf("SEARCH for an appended message = %v, want [%d]", got, data.UID)
	}

	if err := clients[0].Store(imap.UIDSetNum(data.UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := clients[0].UIDExpunge(imap.UIDSetNum(data.UID)).Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients[:2] {
		if got := search(c, "arrival"); len(got) != 0 {
			t.Errorf("SEARCH found the expunged message: %v", got)
		}
		if msgs := fetch(t, c, imap.UIDSetNum(data.UID), headerFetch); len(msgs) != 0 {
			t.Errorf("FETCH of the expunged message answered %d messages", len(msgs))
		}
	}
	if st := e.store.HeaderCacheStats(); st.Entries != 20 {
		t.Errorf("after the expunge: %+v, want the 20 delivered messages cached", st)
	}
}

func TestContainsFoldASCII(t *testing.T) {
	hay := []byte("Subject: Quarterly REPORT\r\nFrom: Zed <z@EXAMPLE.com>\r\n\r\n")
	for _, pat := range []string{"report", "quarterly report", "z@example.com", "zed", "subject: q", "\r\n\r\n",
		"reports", "exampl", "", "x", "[", "@", "from: zed <z@example.com>\r\n\r\n!"} {
		want := bytes.Contains(bytes.ToLower(hay), []byte(pat))
		if got := containsFoldASCII(hay, pat); got != want {
			t.Errorf("containsFoldASCII(%q) = %v, want %v", pat, got, want)
		}
	}
}

// containsFoldASCII and mayContain against what they stand for, on random short texts over a
// small alphabet (so that near misses are common), 8-bit ones included.
func TestContainsFoldASCIIRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "A", "b", "B", "@", ":", " ", "é", "\u212a", "k", "K", "\u0130", "i"}
	text := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 20000 {
		hay, pat := text(rng.IntN(12)), strings.ToLower(text(1+rng.IntN(3)))
		want := bytes.Contains(bytes.ToLower([]byte(hay)), []byte(pat))
		if dirspec.IsASCII(hay) && dirspec.IsASCII(pat) {
			if got := containsFoldASCII([]byte(hay), pat); got != want {
				t.Fatalf("containsFoldASCII(%q, %q) = %v, want %v", hay, pat, got, want)
			}
		}
		c := &candidate{raw: &store.Header{Raw: []byte(hay), ASCII: dirspec.IsASCII(hay), EncodedWords: strings.Contains(hay, "=?")}, rawRead: true}
		if want && !c.mayContain(pat) {
			t.Fatalf("mayContain(%q) in %q: false, but the text contains it", pat, hay)
		}
	}
}
