package imapd

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

type listCase struct {
	in   string
	utf8 bool
	want listArgs
}

var listCases = []listCase{
	{in: `"" "*"`, want: listArgs{Patterns: []string{"*"}}},
	{in: `"" %`, want: listArgs{Patterns: []string{"%"}}},
	{in: `~/Mail/ "%"`, want: listArgs{Ref: "~/Mail/", Patterns: []string{"%"}}},
	{in: `"" ""`, want: listArgs{Patterns: []string{""}}},
	{in: `"" INBOX/*`, want: listArgs{Patterns: []string{"INBOX/*"}}},
	{in: `"" foo]bar`, want: listArgs{Patterns: []string{"foo]bar"}}},
	{in: `"" "&U,BTFw-/%"`, want: listArgs{Patterns: []string{"台北/%"}}},
	{in: `"&U,BTFw-/" %`, want: listArgs{Ref: "台北/", Patterns: []string{"%"}}},
	{in: `"" "台北/%"`, utf8: true, want: listArgs{Patterns: []string{"台北/%"}}},
	{in: `"" "&U,BTFw-"`, utf8: true, want: listArgs{Patterns: []string{"台北"}}},
	{in: `"" "R&D"`, utf8: true, want: listArgs{Patterns: []string{"R&D"}}},
	{in: `"" ("INBOX" "Drafts/*")`, want: listArgs{Patterns: []string{"INBOX", "Drafts/*"}, Extended: true}},
	{in: `() "" "%"`, want: listArgs{Patterns: []string{"%"}, Extended: true}},
	{in: `(SUBSCRIBED RECURSIVEMATCH) "" "*" RETURN (CHILDREN)`, want: listArgs{Patterns: []string{"*"}, Extended: true,
		Options: imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true, ReturnChildren: true}}},
	{in: `(special-use remote) "" "*" RETURN (SPECIAL-USE SUBSCRIBED)`, want: listArgs{Patterns: []string{"*"}, Extended: true,
		Options: imap.ListOptions{SelectSpecialUse: true, SelectRemote: true, ReturnSpecialUse: true, ReturnSubscribed: true}}},
	{in: `"" "*" RETURN (STATUS (MESSAGES UNSEEN MAILBOXID))`, want: listArgs{Patterns: []string{"*"}, Extended: true,
		ReturnMailboxID: true, Options: imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true}}}},
	{in: `"" "*" RETURN ()`, want: listArgs{Patterns: []string{"*"}, Extended: true}},
}

var badListCases = []badCase{
	{``, "LIST: missing argument: the reference name"},
	{`""`, "LIST: missing argument: the mailbox pattern"},
	{`(RECURSIVEMATCH) "" "*"`, "RECURSIVEMATCH needs another selection option"},
	{`(FOO) "" "*"`, `LIST: unknown selection option "FOO"`},
	{`("SUBSCRIBED") "" "*"`, `unknown selection option the string "SUBSCRIBED"`},
	{`"" "&U,BTFw"`, `LIST: mailbox pattern "&U,BTFw": invalid modified UTF-7`},
	{`"" "&AGE-%"`, "printable ASCII must not be encoded"},
	{`"&" "*"`, "LIST: reference name"},
	{`"" ()`, "LIST: empty list of patterns"},
	{`"" (("a"))`, "expected mailbox pattern"},
	{`"" "*" RETURN`, "LIST: missing argument: the return options"},
	{`"" "*" (CHILDREN)`, "LIST: expected RETURN"},
	{`"" "*" RETURNS (CHILDREN)`, `LIST: expected RETURN after the patterns, found "RETURNS"`},
	{`"" "*" RETURN CHILDREN`, "LIST: expected return options in parentheses"},
	{`"" "*" RETURN (BOGUS)`, `LIST: unknown return option "BOGUS"`},
	{`"" "*" RETURN (STATUS)`, "LIST: missing argument: the STATUS items"},
	{`"" "*" RETURN (STATUS (BOGUS))`, `STATUS: unknown item "BOGUS"`},
	{`"" "*" RETURN (CHILDREN) extra`, "LIST: too many arguments"},
	{`"" "*" "%"`, "LIST: expected RETURN"},
}

func TestParseListArgs(t *testing.T) {
	for _, tc := range listCases {
		got, err := parseListArgs(argsOf(t, tc.in), tc.utf8)
		if err != nil {
			t.Errorf("parseListArgs(%q, utf8=%v): %v", tc.in, tc.utf8, err)
			continue
		}
		checkEqual(t, tc.in, *got, tc.want)
	}
	for _, tc := range badListCases {
		_, err := parseListArgs(argsOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
}

func TestParseStatusItems(t *testing.T) {
	got, err := parseStatusItems(argOf(t, "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT DELETED-STORAGE MAILBOXID)"))
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "all items", *got, statusItems{MailboxID: true, StatusOptions: imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true,
		NumRecent: true, HighestModSeq: true, AppendLimit: true, DeletedStorage: true}})
	got, err = parseStatusItems(argOf(t, "(messages unseen)"))
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, "(messages unseen)", *got, statusItems{StatusOptions: imap.StatusOptions{NumMessages: true, NumUnseen: true}})
	for _, tc := range []badCase{
		{"()", "STATUS: empty list of items"},
		{"MESSAGES", "STATUS: expected items in parentheses"},
		{"(FOO)", `STATUS: unknown item "FOO"`},
		{`("MESSAGES")`, "STATUS: unknown item the string"},
		{"((MESSAGES))", "STATUS: unknown item a parenthesised list"},
	} {
		_, err := parseStatusItems(argOf(t, tc.in))
		checkBad(t, tc.in, err, tc.want)
	}
}

type selectCase struct {
	in   string
	utf8 bool
	want selectArgs
}

var selectCases = []selectCase{
	{in: "INBOX", want: selectArgs{Mailbox: "INBOX"}},
	{in: "inbox", want: selectArgs{Mailbox: "INBOX"}},
	{in: "Inbox/Sub", want: selectArgs{Mailbox: "Inbox/Sub"}},
	{in: `"Entw&APw-rfe"`, want: selectArgs{Mailbox: "Entwürfe"}},
	{in: `"Entwürfe"`, utf8: true, want: selectArgs{Mailbox: "Entwürfe"}},
	{in: "INBOX ()", want: selectArgs{Mailbox: "INBOX"}},
	{in: "INBOX (CONDSTORE)", want: selectArgs{Mailbox: "INBOX", CondStore: true}},
	{in: "INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))", want: selectArgs{Mailbox: "INBOX",
		QResync: &qresyncArgs{UIDValidity: 67890007, ModSeq: 20050715194045000, KnownUIDs: uidRanges(41, 41, 43, 211, 214, 541)}}},
	{in: "INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:3,5 41,43:44,214)))", want: selectArgs{Mailbox: "INBOX",
		QResync: &qresyncArgs{UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: uidRanges(41, 211, 214, 541),
			SeqMatch: seqSet(1, 3, 5, 5), UIDMatch: uidRanges(41, 41, 43, 44, 214, 214)}}},
	{in: "INBOX (QRESYNC (1 2 (1 41)) CONDSTORE)", want: selectArgs{Mailbox: "INBOX", CondStore: true,
		QResync: &qresyncArgs{UIDValidity: 1, ModSeq: 2, SeqMatch: seqSet(1, 1), UIDMatch: uidRanges(41, 41)}}},
	{in: "INBOX (QRESYNC (4294967295 9223372036854775807))", want: selectArgs{Mailbox: "INBOX",
		QResync: &qresyncArgs{UIDValidity: 4294967295, ModSeq: 9223372036854775807}}},
}

var badSelectCases = []badCase{
	{``, "SELECT: missing argument: the mailbox name"},
	{`(INBOX)`, "SELECT: expected mailbox name"},
	{`"&Jjo"`, "SELECT: mailbox name"},
	{`INBOX CONDSTORE`, "SELECT: expected parameters in parentheses"},
	{`INBOX (CONDSTORE) extra`, "SELECT: too many arguments"},
	{`INBOX (FOO)`, `SELECT: unknown parameter "FOO"`},
	{`INBOX (CONDSTORE CONDSTORE)`, "SELECT: parameter CONDSTORE given twice"},
	{`INBOX (QRESYNC)`, "SELECT: missing argument: QRESYNC's"},
	{`INBOX (QRESYNC 1)`, "QRESYNC: expected (uidvalidity modseq"},
	{`INBOX (QRESYNC (1))`, "QRESYNC: missing argument: the mod-sequence"},
	{`INBOX (QRESYNC (0 1))`, "UIDVALIDITY cannot be 0"},
	{`INBOX (QRESYNC (1 0))`, "the mod-sequence cannot be 0"},
	{`INBOX (QRESYNC (4294967296 1))`, "the UIDVALIDITY 4294967296 is larger than 4294967295"},
	{`INBOX (QRESYNC (1 2 1:*))`, `invalid known UIDs "1:*"`},
	{`INBOX (QRESYNC (1 2 3 (1:2)))`, "expected (message-numbers UIDs)"},
	{`INBOX (QRESYNC (1 2 3 (1 *)))`, `invalid UIDs "*"`},
	{`INBOX (QRESYNC (1 2 3 (1 2) 4))`, "QRESYNC: too many arguments"},
	{`INBOX (QRESYNC (1 2) QRESYNC (1 2))`, "parameter QRESYNC given twice"},
}

func TestParseSelectArgs(t *testing.T) {
	for _, tc := range selectCases {
		got, err := parseSelectArgs(argsOf(t, tc.in), tc.utf8)
		if err != nil {
			t.Errorf("parseSelectArgs(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, *got, tc.want)
	}
	for _, tc := range badSelectCases {
		_, err := parseSelectArgs(argsOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
}

type appendCase struct {
	in   string
	want appendArgs
	when []time.Time // each message's time, compared with Equal (zones are pointers)
}

var appendCases = []appendCase{
	{in: "INBOX {5}\r\nhello", want: appendArgs{Mailbox: "INBOX", Messages: []appendMessage{{Data: []byte("hello")}}}},
	{in: "saved-messages (\\Seen) \"07-Feb-1994 21:52:25 -0800\" {5}\r\nhello", want: appendArgs{Mailbox: "saved-messages",
		Messages: []appendMessage{{Flags: []imap.Flag{imap.FlagSeen}, Data: []byte("hello")}}},
		when: []time.Time{time.Date(1994, 2, 8, 5, 52, 25, 0, time.UTC)}},
	{in: "inbox \" 7-Feb-1994 21:52:25 +0000\" ~{4}\r\na\x00\nb", want: appendArgs{Mailbox: "INBOX",
		Messages: []appendMessage{{Data: []byte("a\x00\nb"), Binary: true}}},
		when: []time.Time{time.Date(1994, 2, 7, 21, 52, 25, 0, time.UTC)}},
	{in: "INBOX () {0}\r\n", want: appendArgs{Mailbox: "INBOX", Messages: []appendMessage{{Data: []byte{}}}}},
	{in: "INBOX (\\Seen) {1}\r\na () {1}\r\nb {1}\r\nc", want: appendArgs{Mailbox: "INBOX", Messages: []appendMessage{
		{Flags: []imap.Flag{imap.FlagSeen}, Data: []byte("a")}, {Data: []byte("b")}, {Data: []byte("c")}}}},
	{in: "INBOX UTF8 (~{2}\r\nhi)", want: appendArgs{Mailbox: "INBOX", Messages: []appendMessage{{Data: []byte("hi"), Binary: true}}}},
	{in: "Drafts CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" TEXT {4}\r\nbody URL \"/x\" UTF8 (~{1}\r\nz))",
		want: appendArgs{Mailbox: "Drafts", Messages: []appendMessage{{Parts: []catenatePart{
			{URL: "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER"}, {Text: []byte("body")}, {URL: "/x"},
			{Text: []byte("z"), Binary: true}}}}}},
	{in: "\"Entw&APw-rfe\" ($Junk) CATENATE (TEXT ~{1}\r\nx)", want: appendArgs{Mailbox: "Entwürfe", Messages: []appendMessage{
		{Flags: []imap.Flag{imap.FlagJunk}, Parts: []catenatePart{{Text: []byte("x"), Binary: true}}}}}},
}

var badAppendCases = []badCase{
	{``, "APPEND: missing argument: the mailbox name"},
	{`INBOX`, "APPEND: missing argument: the message literal"},
	{`INBOX (\Seen)`, "APPEND: missing argument: the message literal"},
	{`INBOX "hello"`, `APPEND: invalid date-time "hello"`},
	{`INBOX hello`, `APPEND: expected the message as a literal, found "hello"`},
	{"INBOX (\\Recent) {1}\r\na", `APPEND: flag \Recent is set by the server only`},
	{"INBOX \\Seen {1}\r\na", `expected the message as a literal, found "\\Seen"`},
	{"INBOX \"32-Feb-1994 21:52:25 -0800\" {1}\r\na", "invalid date-time"},
	{"INBOX {1}\r\na extra", `expected the message as a literal, found "extra"`},
	{"INBOX {1}\r\na (\\Seen)", "APPEND: missing argument: the message literal"},
	{"INBOX CATENATE ()", "APPEND: expected CATENATE (URL ... TEXT ...)"},
	{"INBOX CATENATE", "APPEND: missing argument: CATENATE's parts"},
	{`INBOX CATENATE (TEXT "x")`, "APPEND: CATENATE TEXT must be a literal"},
	{"INBOX CATENATE (TEXT)", "APPEND: CATENATE: missing argument: the text literal"},
	{"INBOX CATENATE (URL)", "APPEND: CATENATE: missing argument: the URL"},
	{"INBOX CATENATE (FOO {1}\r\na)", `APPEND: CATENATE part "FOO": expected URL or TEXT`},
	{"INBOX UTF8 ({1}\r\na {1}\r\nb)", "expected UTF8 (~{n} message)"},
	{"INBOX UTF8", "missing argument: UTF8's (literal8)"},
	{"\"&\" {1}\r\na", "APPEND: mailbox name"},
}

func TestParseAppendArgs(t *testing.T) {
	for _, tc := range appendCases {
		got, err := parseAppendArgs(argsOf(t, tc.in), false)
		if err != nil {
			t.Errorf("parseAppendArgs(%q): %v", tc.in, err)
			continue
		}
		for i := range got.Messages {
			var want time.Time
			if i < len(tc.when) {
				want = tc.when[i]
			}
			if !got.Messages[i].Time.Equal(want) {
				t.Errorf("%q: message %d time %v, want %v", tc.in, i, got.Messages[i].Time, want)
			}
			got.Messages[i].Time = time.Time{}
		}
		checkEqual(t, tc.in, *got, tc.want)
	}
	for _, tc := range badAppendCases {
		_, err := parseAppendArgs(argsOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
}
