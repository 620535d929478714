package imapd

// One test per advertised extension (and the base behaviours around them), driven by
// go-imap's own client.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/store"
)

// imapCode returns the response code of an IMAP error, or "".
func imapCode(err error) imap.ResponseCode {
	var e *imap.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func appendMsg(t *testing.T, c *imapclient.Client, folder, msg string, opts *imap.AppendOptions) *imap.AppendData {
	t.Helper()
	cmd := c.Append(folder, int64(len(msg)), opts)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND to %s: %v", folder, err)
	}
	return data
}

func fetch(t *testing.T, c *imapclient.Client, set imap.NumSet, opts *imap.FetchOptions) []*imapclient.FetchMessageBuffer {
	t.Helper()
	msgs, err := c.Fetch(set, opts).Collect()
	if err != nil {
		t.Fatalf("FETCH %v: %v", set, err)
	}
	return msgs
}

func listNames(t *testing.T, c *imapclient.Client, ref, pattern string, opts *imap.ListOptions) map[string][]imap.MailboxAttr {
	t.Helper()
	list, err := c.List(ref, pattern, opts).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q: %v", ref, pattern, err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, d := range list {
		out[d.Mailbox] = d.Attrs
	}
	return out
}

func TestLoginNeedsTLS(t *testing.T) {
	e := newEnv(t)
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	caps := c.Caps()
	if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) || caps.Has(imap.AuthCap("PLAIN")) {
		t.Fatalf("plain-text capabilities = %v; want LOGINDISABLED and STARTTLS, no AUTH=PLAIN", caps)
	}
	if err := c.Login(alice, password).Wait(); imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Fatalf("LOGIN without TLS: %v, want NO [PRIVACYREQUIRED]", err)
	}

	st, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: e.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Login(alice, password).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if got := counter(t, e.metrics.Sessions, "imap"); got != 1 {
		t.Errorf("sessions counted %v, want 1", got)
	}
}

func TestAuthenticatePlainAndFailures(t *testing.T) {
	limiter := auth.NewLimiter(auth.LimiterConfig{FreeFailures: 10, MaxAccountFailures: 3, BaseDelay: time.Millisecond})
	e := newEnv(t, func(o *envOptions) { o.limiter = limiter })
	c, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var texts []string
	for _, creds := range [][2]string{{alice, "wrong"}, {"nobody@example.com", password}, {"not an address", password},
		{alice, "wrong again"}, {alice, ""}} {
		err := c.Login(creds[0], creds[1]).Wait()
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("LOGIN %s: %v, want NO [AUTHENTICATIONFAILED]", creds[0], err)
		}
		texts = append(texts, err.Error())
	}
	for _, text := range texts {
		if text != texts[0] {
			t.Errorf("failures differ: %q", texts)
		}
	}
	// The account has had 3 failures: it is now refused, even with the right password.
	if err := c.Login(alice, password).Wait(); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Fatalf("LOGIN after too many failures: %v, want NO [UNAVAILABLE]", err)
	}
	if got := counter(t, e.metrics.AuthAttempts, "imap", "throttled"); got != 1 {
		t.Errorf("throttled logins counted %v, want 1", got)
	}

	// AUTHENTICATE PLAIN (the library's SASL) works for another account.
	b, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Authenticate(sasl.NewPlainClient("", bob, password)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
	if got := counter(t, e.metrics.CommandErrors, "imap", "LOGIN"); got != 6 {
		t.Errorf("failed logins counted %v, want 6", got)
	}
}

func TestIMAP4rev2AndUTF8Names(t *testing.T) {
	e := newEnv(t)
	var wire bytes.Buffer
	var mu sync.Mutex
	c := e.client(alice, &imapclient.Options{DebugWriter: lockedWriter{&mu, &wire}})
	data, err := c.Enable(imap.CapIMAP4rev2).Wait()
	if err != nil || !data.Caps.Has(imap.CapIMAP4rev2) {
		t.Fatalf("ENABLE IMAP4rev2: %v %v", data, err)
	}
	// go-imap's client decodes every listed name as modified UTF-7, so its names here hold no
	// "&"; the raw session below shows "&" names in UTF-8 mode.
	names := []string{"Entwürfe", "Entwürfe/Ärger", "日本語"}
	for _, n := range names {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatalf("CREATE %q: %v", n, err)
		}
	}
	got := listNames(t, c, "", "*", nil)
	for _, n := range names {
		if _, ok := got[n]; !ok {
			t.Errorf("LIST lacks %q: %v", n, got)
		}
	}
	// Raw UTF-8 on the wire, not modified UTF-7, once IMAP4rev2 is enabled.
	mu.Lock()
	w := wire.String()
	mu.Unlock()
	if !strings.Contains(w, `"日本語"`) || strings.Contains(w, "&ZeVnLIqe-") {
		t.Errorf("LIST did not answer in UTF-8:\n%s", w)
	}
	if _, err := c.Select("Entwürfe/Ärger", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	// RFC 6855: in UTF-8 mode "&" is an ordinary character both ways; a name that reads as
	// modified UTF-7 is still understood.
	r := e.raw(t)
	r.send(fmt.Sprintf("a LOGIN %s %q", alice, password))
	r.expect("a OK")
	r.send("b ENABLE UTF8=ACCEPT")
	r.expect("b OK")
	r.send(`c CREATE "Ärger & Co"`)
	r.expect("c OK")
	r.send(`d CREATE "R&AMQ-D"`)
	r.expect("d OK")
	r.send(`e LIST "" "*&*"`)
	if got := r.expect("* LIST"); got != `* LIST (\HasNoChildren) "/" "Ärger & Co"` {
		t.Errorf("LIST in UTF-8 mode: %s", got)
	}
	r.expect("e OK")
	// The store holds the UTF-8 names.
	box, _ := e.store.Mailbox(alice)
	for _, n := range []string{"Entwürfe/Ärger", "Ärger & Co", "RÄD"} {
		if _, err := box.Folder(n); err != nil {
			t.Errorf("folder %q: %v", n, err)
		}
	}
	// A raw control character never reaches the session: the library's parser refuses it
	// (as a server error, which is its wording, not ours). UTF-7-encoded ones are refused by
	// name checking (TestPythonImaplib).
	if err := c.Create("tab\there", nil).Wait(); err == nil {
		t.Errorf("CREATE with a raw TAB succeeded")
	}
	if got := listNames(t, c, "", "tab*", nil); len(got) != 0 {
		t.Errorf("LIST tab* = %v", got)
	}
	// Without IMAP4rev2 the same folders come back in modified UTF-7 (see TestPythonImaplib).
	for _, bad := range []string{"a/../b", "../x", "/root", "a//b", "x/"} {
		err := c.Create(bad, nil).Wait()
		if bad == "x/" {
			if err != nil {
				t.Errorf("CREATE %q (trailing delimiter): %v", bad, err)
			}
			continue
		}
		if imapCode(err) != imap.ResponseCodeCannot {
			t.Errorf("CREATE %q: %v, want NO [CANNOT]", bad, err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestIdle(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var exists uint32
	var expunged []uint32
	c := e.client(alice, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				exists = *d.NumMessages
				mu.Unlock()
			}
		},
		Expunge: func(seq uint32) {
			mu.Lock()
			expunged = append(expunged, seq)
			mu.Unlock()
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	m := e.deliver(alice, "INBOX", message("pushed", "x"))
	testutil.Eventually(t, "EXISTS 1 during IDLE", func() bool { mu.Lock(); defer mu.Unlock(); return exists == 1 })
	e.folder(alice, "INBOX").Expunge([]uint32{m.UID})
	testutil.Eventually(t, "EXPUNGE during IDLE", func() bool { mu.Lock(); defer mu.Unlock(); return len(expunged) == 1 })
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestUIDPlus(t *testing.T) {
	e := newEnv(t)
	c := e.client(alice, nil)
	a := appendMsg(t, c, "INBOX", message("a", "a"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
	b := appendMsg(t, c, "INBOX", message("b", "b"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
	inbox := e.folder(alice, "INBOX").Status()
	if a.UIDValidity != inbox.UIDValidity || a.UID != 1 || b.UID != 2 {
		t.Fatalf("APPENDUID %+v %+v; INBOX UIDVALIDITY %d", a, b, inbox.UIDValidity)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	cp, err := c.Copy(uidSet(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cp.UIDValidity != e.folder(alice, "Archive").Status().UIDValidity ||
		cp.SourceUIDs.String() != "1:2" || cp.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID = %+v", cp)
	}
	// UID EXPUNGE removes only the UIDs named, though both are \Deleted.
	seqs, err := c.UIDExpunge(uidSet(2)).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs, []uint32{2}) {
		t.Errorf("UID EXPUNGE 2 answered EXPUNGE %v", seqs)
	}
	msgs, _ := e.folder(alice, "INBOX").Messages()
	if len(msgs) != 1 || msgs[0].UID != 1 {
		t.Errorf("INBOX after UID EXPUNGE = %+v", msgs)
	}
	// Copying nothing is fine and says nothing.
	if cp, err := c.Copy(uidSet(99), "Archive").Wait(); err != nil || cp.DestUIDs != nil {
		t.Errorf("COPY of no message: %+v %v", cp, err)
	}
	if _, err := c.Copy(uidSet(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing folder: %v, want TRYCREATE", err)
	}
}

func TestMove(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.deliver(alice, "INBOX", message(fmt.Sprint("m", i), "x"), `\Flagged`)
	}
	var expunged []uint32
	c := e.client(alice, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { expunged = append(expunged, seq) },
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	mv, err := c.Move(imap.SeqSetNum(1, 3), "Archive").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if mv.SourceUIDs.String() != "1,3" || mv.DestUIDs.String() != "1:2" {
		t.Errorf("MOVE COPYUID = %+v", mv)
	}
	// Sequence numbers shift as each message goes: 3, then 1 (or 1 then 1).
	if len(expunged) != 2 {
		t.Errorf("MOVE expunged %v, want two messages", expunged)
	}
	msgs, _ := e.folder(alice, "INBOX").Messages()
	if len(msgs) != 1 || msgs[0].UID != 2 {
		t.Errorf("INBOX after MOVE = %+v", msgs)
	}
	archived, _ := e.folder(alice, "Archive").Messages()
	if len(archived) != 2 || !slices.Contains(archived[0].Flags, `\Flagged`) {
		t.Errorf("Archive after MOVE = %+v", archived)
	}
	// A move into the folder itself renews the message: a new UID at the end.
	if mv, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait(); err != nil || mv.SourceUIDs.String() != "2" || mv.DestUIDs.String() != "4" {
		t.Errorf("MOVE into the same folder: %+v, %v; want COPYUID 2 -> 4", mv, err)
	}
	if msgs, _ := e.folder(alice, "INBOX").Messages(); len(msgs) != 1 || msgs[0].UID != 4 {
		t.Errorf("INBOX after MOVE into itself = %+v, want one message, UID 4", msgs)
	}
	if _, err := c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "INBOX").Wait(); err == nil {
		t.Errorf("MOVE out of an EXAMINEd folder succeeded")
	}
}

func TestSpecialUseAndCreateSpecialUse(t *testing.T) {
	e := newEnv(t)
	c := e.client(alice, nil)
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	got := listNames(t, c, "", "*", &imap.ListOptions{SelectSpecialUse: true})
	want := map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
		"Trash": imap.MailboxAttrTrash, "Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive}
	if len(got) != len(want) {
		t.Errorf("LIST (SPECIAL-USE) = %v", got)
	}
	for name, attr := range want {
		if !slices.Contains(got[name], attr) {
			t.Errorf("LIST (SPECIAL-USE): %s has %v, want %s", name, got[name], attr)
		}
	}
	err := c.Create("Sent Items", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait()
	if imapCode(err) != "USEATTR" {
		t.Errorf("CREATE with a special use the name does not have: %v, want NO [USEATTR]", err)
	}
	if err := c.Delete("Sent").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Sent", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrSent}}).Wait(); err != nil {
		t.Errorf("re-creating Sent with USE (\\Sent): %v", err)
	}
	if got := listNames(t, c, "", "Sent", nil); !slices.Contains(got["Sent"], imap.MailboxAttrSent) {
		t.Errorf("LIST Sent = %v", got)
	}
}

func TestNamespace(t *testing.T) {
	e := newEnv(t)
	c := e.client(alice, nil)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' || ns.Other != nil || ns.Shared != nil {
		t.Errorf("NAMESPACE = %+v", ns)
	}
}

func TestListExtendedAndChildren(t *testing.T) {
	e := newEnv(t)
	c := e.client(alice, nil)
	for _, n := range []string{"Work/Clients/Acme", "Work/Admin", "Home"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	// CREATE made the parents; deleting one leaves a \Noselect level.
	if err := c.Delete("Work/Clients").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Work/Clients/Acme").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Nope").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SUBSCRIBE to a missing folder: %v", err)
	}
	got := listNames(t, c, "Work/", "%", nil)
	if !slices.Contains(got["Work/Clients"], imap.MailboxAttrNoSelect) || !slices.Contains(got["Work/Clients"], imap.MailboxAttrHasChildren) ||
		!slices.Contains(got["Work/Admin"], imap.MailboxAttrHasNoChildren) || len(got) != 2 {
		t.Errorf(`LIST "Work/" "%%" = %v`, got)
	}
	if got := listNames(t, c, "", "Work", nil); !slices.Contains(got["Work"], imap.MailboxAttrHasChildren) {
		t.Errorf("CHILDREN: Work = %v", got)
	}
	// Several patterns at once.
	got = listNames(t, c, "", "", &imap.ListOptions{})
	if len(got) != 1 {
		t.Errorf(`LIST "" "" = %v, want only the root`, got)
	}
	// SUBSCRIBED with RECURSIVEMATCH: Work holds a subscription "%" does not reach.
	got = listNames(t, c, "", "%", &imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true})
	if _, ok := got["Work"]; !ok {
		t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH) %% lacks Work: %v", got)
	}
	if _, ok := got["Home"]; ok {
		t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH) lists the unsubscribed Home: %v", got)
	}
	got = listNames(t, c, "", "*", &imap.ListOptions{ReturnSubscribed: true})
	if !slices.Contains(got["Work/Clients/Acme"], imap.MailboxAttrSubscribed) || slices.Contains(got["Home"], imap.MailboxAttrSubscribed) {
		t.Errorf("LIST RETURN (SUBSCRIBED) = %v", got)
	}
	// Renaming keeps the subscription; a subscription whose folder is gone is \NonExistent.
	if err := c.Rename("Work", "Office", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe("Home").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Home").Wait(); err != nil {
		t.Fatal(err)
	}
	got = listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if !slices.Contains(got["Office/Clients/Acme"], imap.MailboxAttrSubscribed) || !slices.Contains(got["Home"], imap.MailboxAttrNonExistent) {
		t.Errorf("LIST (SUBSCRIBED) after rename and delete = %v", got)
	}
	if err := c.Unsubscribe("Home").Wait(); err != nil {
		t.Fatal(err)
	}
	// INBOX matches in any case.
	if got := listNames(t, c, "", "inbox", nil); len(got["INBOX"]) == 0 {
		t.Errorf(`LIST "" inbox = %v`, got)
	}
}

func TestListStatus(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	e.deliver(alice, "INBOX", message("two", "2"), `\Seen`)
	c := e.client(alice, nil)
	list, err := c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{
		NumMessages: true, NumUnseen: true, Size: true, UIDNext: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var inbox *imap.ListData
	for _, d := range list {
		if d.Mailbox == "INBOX" {
			inbox = d
		}
		if d.Status == nil {
			t.Errorf("LIST-STATUS: no STATUS for %s", d.Mailbox)
		}
	}
	st := e.folder(alice, "INBOX").Status()
	if inbox == nil || *inbox.Status.NumMessages != 2 || *inbox.Status.NumUnseen != 1 ||
		*inbox.Status.Size != st.Size || uint32(inbox.Status.UIDNext) != st.UIDNext {
		t.Errorf("LIST-STATUS for INBOX = %+v, store says %+v", inbox.Status, st)
	}
}

func TestESearch(t *testing.T) {
	e := newEnv(t)
	var sizes []int64
	for i := 1; i <= 5; i++ {
		sizes = append(sizes, e.deliver(alice, "INBOX", message(fmt.Sprint("report ", i), strings.Repeat("x", i*100))).Size)
	}
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{Larger: sizes[1]}, &imap.SearchOptions{
		ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if data.Min != 3 || data.Max != 5 || data.Count != 3 || data.All.String() != "3:5" {
		t.Errorf("ESEARCH = %+v (all %v)", data, data.All)
	}
	// No match: ESEARCH without ALL, and COUNT 0.
	data, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "nothing"}}},
		&imap.SearchOptions{ReturnCount: true}).Wait()
	if err != nil || data.Count != 0 {
		t.Errorf("ESEARCH COUNT for no match = %+v, %v", data, err)
	}
	// The criteria at work: text, dates, flags, NOT, OR, sequence sets.
	e.folder(alice, "INBOX").SetFlags([]uint32{2}, store.FlagsAdd, []string{`\Answered`, "$label1"})
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    imap.SearchCriteria
		want string
	}{
		{"body", imap.SearchCriteria{Body: []string{strings.Repeat("X", 150)}}, "2:5"},
		{"text in a header", imap.SearchCriteria{Text: []string{"REPORT 4"}}, "4"},
		{"subject", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "report 1"}}}, "1"},
		{"header present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID"}}}, "1:5"},
		{"answered", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagAnswered}}, "2"},
		{"keyword any case", imap.SearchCriteria{Flag: []imap.Flag{"$LABEL1"}}, "2"},
		{"not", imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagAnswered}}}}, "1,3:5"},
		{"or", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Smaller: sizes[1]}, {Larger: sizes[3]}}}}, "1,5"},
		{"sent on", imap.SearchCriteria{SentSince: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), SentBefore: time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)}, "1:5"},
		{"sent before", imap.SearchCriteria{SentBefore: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}, ""},
		{"received before 2000", imap.SearchCriteria{Before: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, ""},
		{"received since 2000", imap.SearchCriteria{Since: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, "1:5"},
		{"sequence set", imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(2, 4)}}, "2,4"},
		{"uid star", imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: 4, Stop: 0}}}}, "4:5"},
	} {
		data, err := c.Search(&tc.c, &imap.SearchOptions{ReturnAll: true}).Wait()
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := ""
		if data.All != nil {
			got = data.All.String()
		}
		if got != tc.want {
			t.Errorf("SEARCH %s = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSearchRes(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 4; i++ {
		e.deliver(alice, "INBOX", message(fmt.Sprint("n", i), "x"))
	}
	e.folder(alice, "INBOX").SetFlags([]uint32{2, 4}, store.FlagsAdd, []string{`\Flagged`})
	c := e.raw(t)
	c.send(fmt.Sprintf("a LOGIN %s %q", alice, password))
	c.expect("a OK")
	c.send("b SELECT INBOX")
	c.expect("b OK")
	c.send("c UID SEARCH RETURN (SAVE) FLAGGED")
	c.expect("c OK")
	c.send("d FETCH $ (UID)")
	if got := c.expect("* "); got != "* 2 FETCH (UID 2)" {
		t.Errorf("first FETCH $ response %q", got)
	}
	if got := c.expect("* "); got != "* 4 FETCH (UID 4)" {
		t.Errorf("second FETCH $ response %q", got)
	}
	c.expect("d OK")
	c.send(`e UID STORE $ +FLAGS.SILENT (\Seen)`)
	c.expect("e OK")
	c.send("f SEARCH RETURN (SAVE MIN) ALL")
	c.expect("f OK")
	c.send("g SEARCH $ SEEN")
	if got := c.expect("* "); got != "* ESEARCH (TAG \"g\")" && got != "* SEARCH" {
		t.Errorf("SEARCH $ SEEN with $ = {1}: %q, want nothing found", got)
	}
	c.expect("g OK")
	msgs, _ := e.folder(alice, "INBOX").Messages()
	for _, m := range msgs {
		if slices.Contains(m.Flags, `\Seen`) != (m.UID == 2 || m.UID == 4) {
			t.Errorf("UID %d flags %v after STORE $", m.UID, m.Flags)
		}
	}
}

func TestStatusSize(t *testing.T) {
	e := newEnv(t)
	a := e.deliver(alice, "Archive", message("a", "aaaa"), `\Deleted`)
	b := e.deliver(alice, "Archive", message("b", "bbbbbbbb"), `\Seen`)
	c := e.client(alice, nil)
	st, err := c.Status("Archive", &imap.StatusOptions{NumMessages: true, Size: true, NumDeleted: true,
		NumUnseen: true, UIDNext: true, UIDValidity: true, AppendLimit: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || *st.Size != a.Size+b.Size || *st.NumDeleted != 1 || *st.NumUnseen != 1 ||
		st.UIDNext != 3 || st.UIDValidity == 0 || st.AppendLimit == nil || *st.AppendLimit != DefaultMaxMessageBytes {
		t.Errorf("STATUS = %+v", st)
	}
	if _, err := c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("STATUS of a missing folder: %v", err)
	}
}

func TestUnselectKeepsAndCloseExpunges(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("gone", "x"), `\Deleted`)
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != 1 {
		t.Fatalf("UNSELECT expunged: %d messages left", n)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE after EXAMINE: %v", err)
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != 1 {
		t.Fatalf("CLOSE after EXAMINE expunged")
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatal(err)
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != 0 {
		t.Fatalf("CLOSE left %d messages", n)
	}
}

func TestLiteralPlusAndAppendLimit(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.maxBytes = 10000 })
	c := e.client(alice, nil)
	if limit, ok := c.Caps().AppendLimit(); !ok || limit == nil || *limit != 10000 {
		t.Fatalf("APPENDLIMIT = %v %v", limit, ok)
	}
	if !c.Caps().Has(imap.CapLiteralPlus) {
		t.Fatal("no LITERAL+")
	}
	tooBig := message("too big", strings.Repeat("z", 10001))
	cmd := c.Append("INBOX", int64(len(tooBig)), nil)
	cmd.Write([]byte(tooBig))
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND over APPENDLIMIT: %v, want NO [TOOBIG]", err)
	}

	// go-imap's client only sends small literals without waiting, so LITERAL+ is tested raw:
	// a 6000-byte non-synchronizing literal goes through with no continuation request.
	r := e.raw(t)
	r.send(fmt.Sprintf("a LOGIN %s %q", alice, password))
	r.expect("a OK")
	big := message("big", strings.Repeat("y", 6000))
	r.send(fmt.Sprintf("b APPEND INBOX (\\Seen) {%d+}\r\n%s", len(big), big))
	if got := r.expect("b "); !strings.HasPrefix(got, "b OK [APPENDUID ") {
		t.Errorf("APPEND with LITERAL+: %q", got)
	}
	msgs, _ := e.folder(alice, "INBOX").Messages()
	if len(msgs) != 1 || msgs[0].Size != int64(len(big)) || !slices.Contains(msgs[0].Flags, `\Seen`) {
		t.Errorf("INBOX = %+v, want the one 6000-byte message", msgs)
	}
}

func TestBinary(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", multipartMessage)
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	msgs := fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{
		BinarySection:     []*imap.FetchItemBinarySection{section},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
		BodyStructure:     &imap.FetchItemBodyStructure{Extended: true},
	})
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages", len(msgs))
	}
	if got := msgs[0].FindBinarySection(section); !bytes.Equal(got, []byte{0, 1, 2, 3, 4, 5}) {
		t.Errorf("BINARY[2] = %v, want the decoded attachment", got)
	}
	if n, ok := msgs[0].FindBinarySectionSize([]int{2}); !ok || n != 6 {
		t.Errorf("BINARY.SIZE[2] = %d %v", n, ok)
	}
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || mp.Subtype != "mixed" {
		t.Fatalf("BODYSTRUCTURE = %#v", msgs[0].BodyStructure)
	}
	if att := mp.Children[1].(*imap.BodyStructureSinglePart); att.Disposition().Value != "attachment" {
		t.Errorf("attachment disposition = %+v", att.Disposition())
	}
	// PEEK kept \Seen off.
	if m, _ := e.folder(alice, "INBOX").Messages(); len(m[0].Flags) != 0 {
		t.Errorf("BINARY.PEEK changed flags: %v", m[0].Flags)
	}

	// APPEND of a literal8 (~{n}) keeps bytes no 7-bit literal may carry.
	r := e.raw(t)
	r.send(fmt.Sprintf("a LOGIN %s %q", alice, password))
	r.expect("a OK")
	raw := "Subject: bin\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\n"
	r.send(fmt.Sprintf("b APPEND Archive ~{%d+}\r\n%s", len(raw), raw))
	if got := r.expect("b "); !strings.HasPrefix(got, "b OK [APPENDUID") {
		t.Fatalf("APPEND ~{n}: %q", got)
	}
	stored, _ := e.folder(alice, "Archive").Messages()
	if len(stored) != 1 {
		t.Fatalf("Archive holds %d messages", len(stored))
	}
	f, err := e.folder(alice, "Archive").Open(stored[0].UID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, _ := io.ReadAll(f); string(got) != raw {
		t.Errorf("stored %q, want %q", got, raw)
	}
}

func TestFetchItems(t *testing.T) {
	e := newEnv(t)
	raw := message("fetch me", "line one\r\nline two")
	m := e.deliver(alice, "INBOX", raw)
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	whole := &imap.FetchItemBodySection{Peek: true}
	partial := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 6, Size: 5}}
	header := &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "To"}}
	msgs := fetch(t, c, imap.UIDSetNum(imap.UID(m.UID)), &imap.FetchOptions{
		Flags: true, InternalDate: true, RFC822Size: true, Envelope: true, UID: true,
		BodySection: []*imap.FetchItemBodySection{whole, partial, header},
	})
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	got := msgs[0]
	if string(got.FindBodySection(whole)) != raw || got.RFC822Size != int64(len(raw)) {
		t.Errorf("BODY[] = %q (size %d)", got.FindBodySection(whole), got.RFC822Size)
	}
	if string(got.FindBodySection(partial)) != "Carol" {
		t.Errorf("BODY[]<6.5> = %q", got.FindBodySection(partial))
	}
	if h := string(got.FindBodySection(header)); h != "To: Alice <alice@example.com>\r\nSubject: fetch me\r\n\r\n" {
		t.Errorf("HEADER.FIELDS = %q", h)
	}
	if got.Envelope.Subject != "fetch me" || got.Envelope.From[0].Addr() != "carol@example.org" ||
		got.Envelope.MessageID != "fetch.me@example.org" {
		t.Errorf("ENVELOPE = %+v", got.Envelope)
	}
	if !got.InternalDate.Equal(m.InternalDate.Truncate(time.Second)) {
		t.Errorf("INTERNALDATE = %v, stored %v", got.InternalDate, m.InternalDate)
	}
	// BODY[] without PEEK sets \Seen and says so in the same response.
	msgs = fetch(t, c, imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText}}})
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("FETCH BODY[TEXT] answered flags %v, want \\Seen", msgs[0].Flags)
	}
	// A malformed multipart does not break BODYSTRUCTURE.
	e.deliver(alice, "INBOX", "Subject: broken\r\nContent-Type: multipart/mixed; boundary=nope\r\n\r\nno parts here\r\n")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	msgs = fetch(t, c, imap.SeqSetNum(2), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	if len(msgs) != 1 || msgs[0].BodyStructure == nil {
		t.Errorf("BODYSTRUCTURE of a broken multipart = %+v", msgs)
	}
}

func TestStoreFlags(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("a", "a"), "$Label")
	e.deliver(alice, "INBOX", message("b", "b"))
	c := e.client(alice, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd,
		Flags: []imap.Flag{"\\flagged", "$label"}}, nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("STORE answered %d FETCH responses, want 2", len(msgs))
	}
	for _, m := range msgs {
		// \flagged is canonicalized, $label takes the spelling already in use.
		if !slices.Equal(m.Flags, []imap.Flag{"$Label", imap.FlagFlagged}) {
			t.Errorf("message %d flags %v", m.SeqNum, m.Flags)
		}
	}
	if _, err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true,
		Flags: []imap.Flag{"$LABEL"}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	// \Recent is the server's to set (RFC 3501 2.3.2): refused, as Dovecot refuses it, and
	// nothing changes.
	var ie *imap.Error
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true,
		Flags: []imap.Flag{imap.FlagDraft, "\\Recent"}}, nil).Collect(); !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad {
		t.Fatalf("STORE \\Recent: %v, want BAD", err)
	}
	if _, err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true,
		Flags: []imap.Flag{imap.FlagDraft}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	stored, _ := e.folder(alice, "INBOX").Messages()
	if !slices.Equal(stored[0].Flags, []string{`\Flagged`}) || !slices.Equal(stored[1].Flags, []string{`\Draft`}) {
		t.Errorf("stored flags %v, %v", stored[0].Flags, stored[1].Flags)
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t)
	c := e.client(bob, nil)
	appendMsg(t, c, "INBOX", message("fits", strings.Repeat("a", 3000)), nil)
	msg := message("does not fit", strings.Repeat("b", 1000))
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write([]byte(msg))
	cmd.Close()
	if _, err := cmd.Wait(); imapCode(err) != imap.ResponseCodeOverQuota {
		t.Errorf("APPEND over quota: %v, want NO [OVERQUOTA]", err)
	}
}

func TestFolderManagement(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	e.deliver(alice, "INBOX", message("two", "2"))
	c := e.client(alice, nil)
	if err := c.Create("Projects/2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Projects", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists {
		t.Errorf("CREATE of an existing folder: %v", err)
	}
	if err := c.Rename("Projects", "Old/Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	got := listNames(t, c, "", "*", nil)
	for _, n := range []string{"Old", "Old/Projects", "Old/Projects/2026"} {
		if _, ok := got[n]; !ok {
			t.Errorf("after RENAME, LIST lacks %s: %v", n, got)
		}
	}
	if err := c.Rename("Old", "Old/Inside/Deeper", nil).Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("RENAME into itself: %v", err)
	}
	if err := c.Rename("Old/Projects", "Archive", nil).Wait(); imapCode(err) != imap.ResponseCodeAlreadyExists ||
		!strings.Contains(err.Error(), `"Archive"`) {
		t.Errorf("RENAME onto an existing folder: %v", err)
	}
	if got := listNames(t, c, "", "Old/Inside*", nil); len(got) != 0 {
		t.Errorf("a refused RENAME left folders behind: %v", got)
	}
	if err := c.Delete("INBOX").Wait(); imapCode(err) != imap.ResponseCodeCannot {
		t.Errorf("DELETE INBOX: %v", err)
	}
	if err := c.Delete("Nope").Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("DELETE of a missing folder: %v", err)
	}
	// RENAME INBOX moves its messages and leaves it empty (RFC 3501 6.3.5).
	if err := c.Rename("inbox", "Before", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != 0 {
		t.Errorf("INBOX holds %d messages after RENAME INBOX", n)
	}
	if n := e.folder(alice, "Before").Status().Messages; n != 2 {
		t.Errorf("Before holds %d messages after RENAME INBOX, want 2", n)
	}
	if _, err := c.Select("nope", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT of a missing folder: %v", err)
	}
}

func TestOtherSessionsSeeChanges(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("one", "1"))
	e.deliver(alice, "INBOX", message("two", "2"))
	var mu sync.Mutex
	var flagged []uint32
	var expunged []uint32
	watcher := e.client(alice, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(m *imapclient.FetchMessageData) { // called on a goroutine of its own
			m.Collect()
			mu.Lock()
			flagged = append(flagged, m.SeqNum)
			mu.Unlock()
		},
		Expunge: func(seq uint32) {
			mu.Lock()
			expunged = append(expunged, seq)
			mu.Unlock()
		},
	}})
	if _, err := watcher.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	actor := e.client(alice, nil)
	if _, err := actor.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := actor.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	// The watcher hears about each change at its next command: FETCH FLAGS for 2, then,
	// once expunged, EXPUNGE 2. (A flag change the expunge overtakes is not reported: the
	// message is gone.)
	if err := watcher.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the watcher's FETCH FLAGS", func() bool { mu.Lock(); defer mu.Unlock(); return len(flagged) > 0 })
	if err := actor.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(flagged, []uint32{2}) || !slices.Equal(expunged, []uint32{2}) {
		t.Errorf("watcher saw FETCH %v, EXPUNGE %v; want [2], [2]", flagged, expunged)
	}
	mu.Unlock()
	// FETCH does not send EXPUNGE, but never shows a message the client cannot address.
	e.folder(alice, "INBOX").Expunge([]uint32{1})
	if msgs := fetch(t, watcher, imap.SeqSetNum(1), &imap.FetchOptions{UID: true}); len(msgs) != 0 {
		t.Errorf("FETCH 1 after a pending expunge = %+v, want nothing", msgs)
	}
	if err := watcher.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if watcher.Mailbox().NumMessages != 0 {
		t.Errorf("watcher believes %d messages remain", watcher.Mailbox().NumMessages)
	}
}

func TestShutdownSaysBye(t *testing.T) {
	e := newEnv(t)
	c := e.raw(t)
	c.send(fmt.Sprintf("a LOGIN %s %q", alice, password))
	c.expect("a OK")
	c.send("b SELECT INBOX")
	c.expect("b OK")
	c.send("c IDLE")
	c.expect("+ ")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.expect("* BYE")
	if _, err := imapclient.DialTLS(e.tlsAddr, &imapclient.Options{TLSConfig: e.clientTLS}); err == nil {
		t.Errorf("a new connection was accepted after Shutdown")
	}
}

// EndSessions ends the sessions of the mailboxes it names, waiting for a command or idling, with
// BYE [UNAVAILABLE]; other users' sessions go on.
func TestEndSessionsOfOneMailbox(t *testing.T) {
	e := newEnv(t)
	waiting, idling, other := e.raw(t), e.raw(t), e.raw(t)
	for i, c := range []*rawConn{waiting, idling, other} {
		user := alice
		if c == other {
			user = bob
		}
		c.send(fmt.Sprintf("a%d LOGIN %s %q", i, user, password))
		c.expect(fmt.Sprintf("a%d OK", i))
	}
	idling.send("b SELECT INBOX")
	idling.expect("b OK")
	idling.send("c IDLE")
	idling.expect("+ ")
	if n := e.srv.EndSessions(func(addr string) bool { return addr == alice }, "mailbox moving"); n != 2 {
		t.Errorf("EndSessions: %d sessions of alice, want 2", n)
	}
	for name, c := range map[string]*rawConn{"waiting": waiting, "idling": idling} {
		if line := c.expect("* BYE"); !strings.Contains(line, "[UNAVAILABLE] mailbox moving") {
			t.Errorf("%s session: %q", name, line)
		}
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.r.ReadString('\n'); err == nil {
			t.Errorf("%s session: still open after its BYE", name)
		}
	}
	other.send("d NOOP")
	other.expect("d OK")
	testutil.Eventually(t, "alice's sessions to be gone", func() bool {
		return e.srv.EndSessions(func(addr string) bool { return addr == alice }, "again") == 0
	})
}
