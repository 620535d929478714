package imapd

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// Tests write arguments as a client would send them after the command name, so that they
// read like the examples of the RFCs; argsOf runs them through the wire reader.

func argsOf(t testing.TB, text string) []wire.Value {
	t.Helper()
	line := "t1 X " + text + "\r\n"
	if text == "" {
		line = "t1 X\r\n"
	}
	r := wire.NewReader(strings.NewReader(line), nil, wire.Limits{})
	r.SetAuthenticated(true)
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("reading %q: %v", text, err)
	}
	return cmd.Args
}

// argOf reads text that is a single argument.
func argOf(t testing.TB, text string) wire.Value {
	t.Helper()
	args := argsOf(t, text)
	if len(args) != 1 {
		t.Fatalf("%q is %d arguments, not one", text, len(args))
	}
	return args[0]
}

// badCase is input a parser must refuse, with a piece of the message the client reads.
type badCase struct{ in, want string }

func checkBad(t *testing.T, in string, err error, want string) {
	t.Helper()
	var ae *argError
	if !errors.As(err, &ae) {
		t.Errorf("%q: got %v (%T), want an *argError containing %q", in, err, err, want)
		return
	}
	if !strings.Contains(ae.Error(), want) {
		t.Errorf("%q: error %q does not contain %q", in, ae.Error(), want)
	}
	if ae.Status() != "BAD" && ae.code == "" {
		t.Errorf("%q: status %s without a code", in, ae.Status())
	}
}

func checkEqual(t *testing.T, in string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%q:\n got %#v\nwant %#v", in, got, want)
	}
}

func seqSet(ranges ...uint32) imap.SeqSet {
	var s imap.SeqSet
	for i := 0; i < len(ranges); i += 2 {
		s.AddRange(ranges[i], ranges[i+1])
	}
	return s
}

func uidRanges(ranges ...imap.UID) imap.UIDSet {
	var s imap.UIDSet
	for i := 0; i < len(ranges); i += 2 {
		s.AddRange(ranges[i], ranges[i+1])
	}
	return s
}

var mailboxCases = []struct {
	in   string
	utf8 bool
	want string
}{
	{"INBOX", false, "INBOX"},
	{"inbox", false, "INBOX"},
	{`"InBoX"`, true, "INBOX"},
	{"inbox/Sub", false, "inbox/Sub"},
	{"INBOXES", false, "INBOXES"},
	{`"Entw&APw-rfe"`, false, "Entwürfe"},
	{`"Entw&APw-rfe"`, true, "Entwürfe"},
	{`"R&D & Co"`, true, "R&D & Co"},
	{`"Entwürfe"`, true, "Entwürfe"},
	{`"R&-D"`, false, "R&D"},
	{"{11}\r\nSent & Kept", true, "Sent & Kept"},
	{"2024", false, "2024"},
	{`""`, false, ""},
}

var badMailboxCases = []badCase{
	{`"Entw&APw"`, "closing"},
	{`"&AGE-"`, "printable ASCII"},
	{"(INBOX)", "expected mailbox name"},
	{"~{5}\r\nINBOX", "binary literal"},
	{"{3}\r\n\xff\xfe\xfd", "not valid UTF-8"},
}

func TestParseMailbox(t *testing.T) {
	for _, tc := range mailboxCases {
		got, err := parseMailbox(argOf(t, tc.in), tc.utf8)
		if err != nil || got != tc.want {
			t.Errorf("parseMailbox(%q, utf8=%v) = %q, %v; want %q", tc.in, tc.utf8, got, err, tc.want)
		}
	}
	for _, tc := range badMailboxCases {
		_, err := parseMailbox(argOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
	if got := mailboxWireName("Entwürfe", false); got != "Entw&APw-rfe" {
		t.Errorf("mailboxWireName for IMAP4rev1 = %q", got)
	}
	if got := mailboxWireName("Entwürfe", true); got != "Entwürfe" {
		t.Errorf("mailboxWireName for UTF8=ACCEPT = %q", got)
	}
}

func TestParseNumSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		uid  bool
		want imap.NumSet
	}{
		{"1", false, seqSet(1, 1)},
		{"1:3,5,7:*", false, seqSet(1, 3, 5, 5, 7, 0)},
		{"4:2", false, seqSet(2, 4)},
		{"*", false, seqSet(0, 0)},
		{"1:*", true, uidRanges(1, 0)},
		{"10,12:14", true, uidRanges(10, 10, 12, 14)},
	} {
		got, err := parseNumSet(argOf(t, tc.in), tc.uid)
		if err != nil {
			t.Errorf("parseNumSet(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, got, tc.want)
	}
	for _, uid := range []bool{false, true} {
		got, err := parseNumSet(argOf(t, "$"), uid)
		if err != nil || !imap.IsSearchRes(got) {
			t.Errorf("parseNumSet($, uid=%v) = %v, %v; want the saved result", uid, got, err)
		}
	}
	for _, tc := range []badCase{
		{"0", "invalid sequence set"},
		{"1:", "invalid sequence set"},
		{"1,,2", "invalid sequence set"},
		{"4294967296", "invalid sequence set"},
		{"abc", "invalid sequence set"},
		{`"1"`, "expected a sequence set"},
		{"(1)", "expected a sequence set"},
	} {
		_, err := parseNumSet(argOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
}

var flagCases = []struct {
	in   string
	want []imap.Flag
}{
	{`(\Seen \Answered \Flagged \Deleted \Draft)`, []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}},
	{`(\seen \SEEN $junk Work work)`, []imap.Flag{imap.FlagSeen, imap.FlagJunk, "Work"}},
	{`\Seen`, []imap.Flag{imap.FlagSeen}},
	{`$Forwarded`, []imap.Flag{imap.FlagForwarded}},
	{`()`, nil},
}

var badFlagCases = []badCase{
	{`(\Recent)`, `\Recent is set by the server only`},
	{`(\Foo)`, `unknown system flag "\\Foo"`},
	{`(\*)`, `unknown system flag`},
	{`(a%b)`, `invalid keyword "a%b"`},
	{`(a]b)`, `invalid keyword`},
	{`("Seen")`, `expected a flag`},
	{`((\Seen))`, `expected a flag`},
	{`(NIL)`, `expected a flag`},
	{`42`, `expected a flag`},
}

func TestParseFlags(t *testing.T) {
	for _, tc := range flagCases {
		got, err := parseFlags(argOf(t, tc.in))
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, got, tc.want)
	}
	for _, tc := range badFlagCases {
		_, err := parseFlags(argOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

func TestParseDateTime(t *testing.T) {
	pst := time.FixedZone("", -8*3600)
	want := time.Date(1994, 2, 7, 21, 52, 25, 0, pst)
	for _, s := range []string{"07-Feb-1994 21:52:25 -0800", " 7-Feb-1994 21:52:25 -0800", "7-Feb-1994 21:52:25 -0800", "07-FEB-1994 21:52:25 -0800"} {
		got, err := parseDateTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseDateTime(%q) = %v, %v; want %v", s, got, err, want)
		}
		if _, off := got.Zone(); off != -8*3600 {
			t.Errorf("parseDateTime(%q) lost its zone: offset %d", s, off)
		}
	}
	for _, s := range []string{"", "07-Feb-94 21:52:25 -0800", "07-Feb-1994 21:52:25", "07-Foo-1994 21:52:25 -0800",
		"32-Feb-1994 21:52:25 -0800", "07-Feb-1994 25:52:25 -0800", "07-Feb-1994 21:52:25 PST", "007-Feb-1994 21:52:25 -0800"} {
		_, err := parseDateTime(s)
		checkBad(t, s, err, "invalid date-time")
	}
}

func TestParseSearchDate(t *testing.T) {
	want := time.Date(1994, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{"1-Feb-1994", "01-Feb-1994", `"1-Feb-1994"`, "1-feb-1994"} {
		got, err := parseSearchDate(argOf(t, s))
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSearchDate(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, tc := range []badCase{
		{"1-Feb-94", "invalid date"},
		{"001-Feb-1994", "invalid date"},
		{"30-Feb-1994", "invalid date"},
		{"1994-02-01", "invalid date"},
		{"(1-Feb-1994)", "expected a date"},
		{"{10}\r\n1-Feb-1994", "expected a date"},
	} {
		_, err := parseSearchDate(argOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

type storeCase struct {
	in    string
	flags *imap.StoreFlags
	opts  *imap.StoreOptions
}

var storeCases = []storeCase{
	{`FLAGS (\Seen \Deleted)`, &imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}, &imap.StoreOptions{}},
	{`+FLAGS.SILENT (\seen $junk)`, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen, imap.FlagJunk}}, &imap.StoreOptions{}},
	{`-flags \Flagged Work`, &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagFlagged, "Work"}}, &imap.StoreOptions{}},
	{`(UNCHANGEDSINCE 12345) FLAGS ()`, &imap.StoreFlags{Op: imap.StoreFlagsSet}, &imap.StoreOptions{UnchangedSince: 12345}},
	{`(UNCHANGEDSINCE 0) +FLAGS.SILENT $Important`, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagImportant}}, &imap.StoreOptions{}},
}

var badStoreCases = []badCase{
	{``, "STORE: missing argument: FLAGS, +FLAGS or -FLAGS"},
	{`FLAGS`, "STORE: missing argument: the flags"},
	{`XFLAGS (\Seen)`, `STORE: unknown item "XFLAGS"`},
	{`FLAGS.LOUD (\Seen)`, `unknown item "FLAGS.LOUD"`},
	{`+FLAGS (\Recent)`, `STORE: flag \Recent is set by the server only`},
	{`FLAGS (\Foo)`, `unknown system flag`},
	{`+FLAGS (a%b)`, `invalid keyword`},
	{`+FLAGS (\Seen) (\Draft)`, `expected a flag`},
	{`(UNCHANGEDSINCE) FLAGS ()`, `missing argument: UNCHANGEDSINCE's mod-sequence`},
	{`(UNCHANGEDSINCE x) FLAGS ()`, `must be a number`},
	{`(UNCHANGEDSINCE 1 2) FLAGS ()`, `too many arguments`},
	{`(FOO 1) FLAGS ()`, `unknown modifier "FOO"`},
	{`(UNCHANGEDSINCE 1)`, `missing argument`},
	{`"FLAGS" (\Seen)`, `expected FLAGS, +FLAGS or -FLAGS`},
}

func TestParseStoreArgs(t *testing.T) {
	for _, tc := range storeCases {
		flags, opts, err := parseStoreArgs(argsOf(t, tc.in))
		if err != nil {
			t.Errorf("parseStoreArgs(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, flags, tc.flags)
		checkEqual(t, tc.in, opts, tc.opts)
	}
	for _, tc := range badStoreCases {
		_, _, err := parseStoreArgs(argsOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

func TestParseEnableArgs(t *testing.T) {
	got, err := parseEnableArgs(argsOf(t, "CONDSTORE qresync Utf8=Accept"))
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "ENABLE", got, []string{"CONDSTORE", "QRESYNC", "UTF8=ACCEPT"})
	for _, tc := range []badCase{
		{``, "ENABLE: missing argument"},
		{`"CONDSTORE"`, "ENABLE: expected a capability name"},
		{`(CONDSTORE)`, "expected a capability name"},
	} {
		_, err := parseEnableArgs(argsOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

var idCases = []struct {
	in   string
	want map[string]string
}{
	{`NIL`, map[string]string{}},
	{`("name" "Thunderbird" "Version" "115.0" "os" NIL)`, map[string]string{"name": "Thunderbird", "version": "115.0"}},
	{`("support-url" {19}` + "\r\nhttps://example.org)", map[string]string{"support-url": "https://example.org"}},
	{`()`, map[string]string{}},
}

func TestParseIDArgs(t *testing.T) {
	for _, tc := range idCases {
		got, err := parseIDArgs(argsOf(t, tc.in))
		if err != nil {
			t.Errorf("parseIDArgs(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, got, tc.want)
	}
	var many strings.Builder
	for i := range 31 {
		fmt.Fprintf(&many, ` "k%d" "v"`, i)
	}
	for _, tc := range []badCase{
		{``, "ID: missing argument"},
		{`NIL NIL`, "ID: too many arguments"},
		{`"name"`, "ID: expected NIL or a list"},
		{`("name")`, `ID: field the string "name" has no value`},
		{`("name" "a" "NAME" "b")`, `field "name" given twice`},
		{`("os" NIL "os" "Linux")`, `field "os" given twice`},
		{`("` + strings.Repeat("k", 31) + `" "v")`, "must be 1 to 30 bytes"},
		{`("" "v")`, "must be 1 to 30 bytes"},
		{`("name" "` + strings.Repeat("v", 1025) + `")`, "longer than 1024 bytes"},
		{`(` + many.String()[1:] + `)`, "more than 30 fields"},
		{`(("a") "b")`, "expected an ID field name"},
		{`("a" ("b"))`, `expected the value of ID field "a"`},
	} {
		_, err := parseIDArgs(argsOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

// TestArgErrorStatus checks how the handler answers: BAD, or NO with the code.
func TestArgErrorStatus(t *testing.T) {
	e := badArg("FETCH: unknown item %q", "BODYX")
	if e.Status() != "BAD" || e.Code() != "" || e.Error() != `FETCH: unknown item "BODYX"` {
		t.Errorf("badArg = %s %q %q", e.Status(), e.Code(), e.Error())
	}
	_, err := parseSearchArgs(argsOf(t, "CHARSET KOI8-R ALL"), false)
	var ae *argError
	if !errors.As(err, &ae) || ae.Status() != "NO" || ae.Code() != "BADCHARSET (UTF-8 US-ASCII)" {
		t.Errorf("unsupported charset: %v, want NO [BADCHARSET (UTF-8 US-ASCII)]", err)
	}
}
