package imapd

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

type fetchCase struct {
	in     string
	uid    bool
	want   fetchArgs
	legacy []string // Legacy's name for each of Options.BodySection, "" for none
}

var fetchCases = []fetchCase{
	{in: "ALL", want: fetchArgs{Options: &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, Envelope: true}}},
	{in: "fast", want: fetchArgs{Options: &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true}}},
	{in: "FULL", want: fetchArgs{Body: true, Options: &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true,
		Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{}}}},
	{in: "FLAGS", want: fetchArgs{Options: &imap.FetchOptions{Flags: true}}},
	{in: "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", want: fetchArgs{Options: &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true}}},
	{in: "FLAGS", uid: true, want: fetchArgs{Options: &imap.FetchOptions{UID: true, Flags: true}}},
	{in: "BODY", want: fetchArgs{Body: true, Options: &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}}}},
	{in: "(BODY BODYSTRUCTURE)", want: fetchArgs{Body: true, Options: &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}}},
	{in: "(BODYSTRUCTURE BODY)", want: fetchArgs{Body: true, Options: &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}}},
	{in: "BODY[]", want: fetchArgs{Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}}},
	{in: "body.peek[header]", want: fetchArgs{Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, Peek: true}}}}},
	{in: "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>", want: fetchArgs{Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "To"}, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 100}}}}}},
	{in: `BODY[1.2.HEADER.FIELDS.NOT ("X-Spam" Received "a\"b")]`, want: fetchArgs{Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Part: []int{1, 2}, Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"X-Spam", "Received", `a"b`}}}}}},
	{in: "(BODY[1.2.MIME] BODY[3.TEXT] BODY[4]<1024.2048> BODY[TEXT])", want: fetchArgs{Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Part: []int{1, 2}, Specifier: imap.PartSpecifierMIME},
		{Part: []int{3}, Specifier: imap.PartSpecifierText},
		{Part: []int{4}, Partial: &imap.SectionPartial{Offset: 1024, Size: 2048}},
		{Specifier: imap.PartSpecifierText},
	}}}},
	{in: "(BINARY[1.2]<5.10> BINARY.PEEK[] BINARY.SIZE[2])", want: fetchArgs{Options: &imap.FetchOptions{
		BinarySection: []*imap.FetchItemBinarySection{
			{Part: []int{1, 2}, Partial: &imap.SectionPartial{Offset: 5, Size: 10}},
			{Peek: true},
		},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	}}},
	{in: "(RFC822 RFC822.HEADER RFC822.TEXT BODY[TEXT])", want: fetchArgs{RFC822: true, RFC822Header: true, RFC822Text: true,
		Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
			{},
			{Specifier: imap.PartSpecifierHeader, Peek: true},
			{Specifier: imap.PartSpecifierText},
			{Specifier: imap.PartSpecifierText},
		}}},
		legacy: []string{"RFC822", "RFC822.HEADER", "RFC822.TEXT", ""}},
	{in: "RFC822.PEEK", want: fetchArgs{RFC822: true, Options: &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}},
		legacy: []string{"RFC822"}},
	{in: "(MODSEQ SAVEDATE EMAILID THREADID)", want: fetchArgs{SaveDate: true, EmailID: true, ThreadID: true,
		Options: &imap.FetchOptions{ModSeq: true}}},
	{in: "(FLAGS) (CHANGEDSINCE 12345)", want: fetchArgs{ChangedSince: 12345, Options: &imap.FetchOptions{Flags: true, ModSeq: true, ChangedSince: 12345}}},
	{in: "(FLAGS) (CHANGEDSINCE 12345 VANISHED)", uid: true, want: fetchArgs{ChangedSince: 12345, Vanished: true,
		Options: &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: 12345}}},
	{in: "(FLAGS) (vanished changedsince 7)", uid: true, want: fetchArgs{ChangedSince: 7, Vanished: true,
		Options: &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: 7}}},
	{in: "FLAGS ()", want: fetchArgs{Options: &imap.FetchOptions{Flags: true}}},
}

var badFetchCases = []badCase{
	{"", "FETCH: missing argument: the items to fetch"},
	{"BODYX", `FETCH: unknown item "BODYX"`},
	{"(FLAGS BODYX)", `unknown item "BODYX"`},
	{"(ALL)", "the macro ALL cannot be part of a list"},
	{"(FLAGS FAST)", "the macro FAST cannot be part of a list"},
	{"()", "empty list of items"},
	{`"FLAGS"`, "expected a fetch item"},
	{"((FLAGS))", "expected a fetch item"},
	{"FLAGS ENVELOPE", "expected modifiers in parentheses"},
	{"BODY.PEEK", "item BODY.PEEK needs a section in brackets"},
	{"BINARY", "needs a section"},
	{"UID[1]", "item UID takes no section"},
	{"BODY<0.10>", `unknown item "BODY<0.10>"`},
	{"BODY[HEADER.FIELDS]", "HEADER.FIELDS needs a list of header fields"},
	{"BODY[HEADER.FIELDS ()]", "invalid header list"},
	{"BODY[HEADER.FIELDS (From  To)]", `invalid header field name ""`},
	{"BODY[HEADER.FIELDS (From To )]", "invalid header list"},
	{"BODY[HEADER.FIELDS (From:)]", `invalid header field name "From:"`},
	{`BODY[HEADER.FIELDS ("")]`, `invalid header field name ""`},
	{"BODY[HEADER.FIELDS From]", "invalid header list"},
	{"BODY[TEXT (From)]", "TEXT takes no list of header fields"},
	{"BODY[MIME]", "MIME needs a part number"},
	{"BODY[0]", `invalid part number "0"`},
	{"BODY[1.]", "cannot end with a dot"},
	{"BODY[1x]", "invalid part number"},
	{"BODY[4294967296]", "invalid part number"},
	{"BODY[HEADERS]", `unknown section "HEADERS"`},
	{"BODY[1.FOO]", `unknown section "FOO"`},
	{"BODY[ HEADER]", "unexpected space"},
	{"BODY[]<0.0>", "invalid partial"},
	{"BODY[]<5>", "invalid partial"},
	{"BODY[]<-1.5>", "invalid partial"},
	{"BODY[]<1.5", "invalid partial"},
	{"BODY[]<1.99999999999999999999>", "invalid partial"},
	{"BODY[]x", "invalid partial"},
	{"BINARY[HEADER]", "a binary section is only part numbers"},
	{"BINARY[1.0]", "a binary section is only part numbers"},
	{"BINARY.SIZE[1]<0.5>", "BINARY.SIZE takes no partial range"},
	{"FLAGS (VANISHED)", "VANISHED is only for UID FETCH"},
	{"FLAGS (CHANGEDSINCE x)", "must be a number"},
	{"FLAGS (CHANGEDSINCE)", "missing argument: CHANGEDSINCE's mod-sequence"},
	{"FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", "CHANGEDSINCE given twice"},
	{"FLAGS (CHANGEDSINCE 9223372036854775808)", "is larger than"},
	{"FLAGS (FOO)", `unknown modifier "FOO"`},
	{"FLAGS (CHANGEDSINCE 1) extra", "FETCH: too many arguments"},
}

func TestParseFetchArgs(t *testing.T) {
	for _, tc := range fetchCases {
		got, err := parseFetchArgs(argsOf(t, tc.in), tc.uid)
		if err != nil {
			t.Errorf("parseFetchArgs(%q, uid=%v): %v", tc.in, tc.uid, err)
			continue
		}
		// Legacy is keyed by pointer: compare the names section by section instead.
		var legacy []string
		for _, bs := range got.Options.BodySection {
			legacy = append(legacy, got.Legacy[bs])
		}
		if tc.legacy == nil && len(got.Legacy) == 0 {
			legacy = nil
		}
		got.Legacy = nil
		checkEqual(t, tc.in, *got, tc.want)
		checkEqual(t, tc.in+" (legacy names)", legacy, tc.legacy)
	}
	for _, tc := range badFetchCases {
		_, err := parseFetchArgs(argsOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
	_, err := parseFetchArgs(argsOf(t, "FLAGS (VANISHED)"), true)
	checkBad(t, "UID FETCH 1:* FLAGS (VANISHED)", err, "UID FETCH: VANISHED needs CHANGEDSINCE")
	// The wire reader keeps quotes in a section balanced; the parser does not rely on it.
	for _, s := range []string{`("From)`, `("From\)`, `(From "To)`} {
		_, err := parseHeaderList(s)
		checkBad(t, s, err, "unterminated quoted header name")
	}
}
