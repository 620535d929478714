package imapd

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

type searchCase struct {
	in   string
	want searchArgs
}

func criteria(c imap.SearchCriteria) searchArgs { return searchArgs{Criteria: &c} }

var searchCases = []searchCase{
	{"ALL", criteria(imap.SearchCriteria{})},
	{"all", criteria(imap.SearchCriteria{})},
	{"UNSEEN", criteria(imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}})},
	{"ANSWERED DELETED DRAFT FLAGGED SEEN", criteria(imap.SearchCriteria{Flag: []imap.Flag{
		imap.FlagAnswered, imap.FlagDeleted, imap.FlagDraft, imap.FlagFlagged, imap.FlagSeen}})},
	{"UNANSWERED UNDELETED UNDRAFT UNFLAGGED", criteria(imap.SearchCriteria{NotFlag: []imap.Flag{
		imap.FlagAnswered, imap.FlagDeleted, imap.FlagDraft, imap.FlagFlagged}})},
	{"NEW", criteria(imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}, NotFlag: []imap.Flag{imap.FlagSeen}})},
	{"OLD", criteria(imap.SearchCriteria{NotFlag: []imap.Flag{`\Recent`}})},
	{"RECENT", criteria(imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}})},
	{`FROM "Smith" TO alice CC bob BCC carol SUBJECT {5}` + "\r\nhello", criteria(imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
		{Key: "From", Value: "Smith"}, {Key: "To", Value: "alice"}, {Key: "Cc", Value: "bob"},
		{Key: "Bcc", Value: "carol"}, {Key: "Subject", Value: "hello"}}})},
	{`HEADER "X-Spam-Flag" "YES" HEADER List-Id ""`, criteria(imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{
		{Key: "X-Spam-Flag", Value: "YES"}, {Key: "List-Id", Value: ""}}})},
	{`BODY "lunch" TEXT "naïve"`, criteria(imap.SearchCriteria{Body: []string{"lunch"}, Text: []string{"naïve"}})},
	{"ON 1-Feb-1994", criteria(imap.SearchCriteria{Since: day(1994, 2, 1), Before: day(1994, 2, 2)})},
	{`SINCE "1-Feb-1994" BEFORE 10-Feb-1994`, criteria(imap.SearchCriteria{Since: day(1994, 2, 1), Before: day(1994, 2, 10)})},
	{"SINCE 1-Feb-1994 SINCE 5-Feb-1994", criteria(imap.SearchCriteria{Since: day(1994, 2, 5)})},
	{"SENTON 1-Feb-1994", criteria(imap.SearchCriteria{SentSince: day(1994, 2, 1), SentBefore: day(1994, 2, 2)})},
	{"SENTSINCE 1-Feb-1994 SENTBEFORE 1-Mar-1994", criteria(imap.SearchCriteria{SentSince: day(1994, 2, 1), SentBefore: day(1994, 3, 1)})},
	{"LARGER 100 SMALLER 2000", criteria(imap.SearchCriteria{Larger: 100, Smaller: 2000})},
	{"SMALLER 0", criteria(imap.SearchCriteria{Not: []imap.SearchCriteria{{}}})},
	{"1:3,5 UID 7:*", criteria(imap.SearchCriteria{SeqNum: []imap.SeqSet{seqSet(1, 3, 5, 5)}, UID: []imap.UIDSet{uidRanges(7, 0)}})},
	{"2", criteria(imap.SearchCriteria{SeqNum: []imap.SeqSet{seqSet(2, 2)}})},
	{"$", criteria(imap.SearchCriteria{UID: []imap.UIDSet{imap.SearchRes()}})},
	{"UID $", criteria(imap.SearchCriteria{UID: []imap.UIDSet{imap.SearchRes()}})},
	{"NOT DELETED", criteria(imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDeleted}}}})},
	{"OR FROM a TO b", criteria(imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
		{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "a"}}},
		{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "b"}}}}}})},
	{"OR (SEEN FLAGGED) NOT (DRAFT)", criteria(imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
		{Flag: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}},
		{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDraft}}}}}}})},
	{"(SEEN (FLAGGED)) UNDELETED", criteria(imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen, imap.FlagFlagged},
		NotFlag: []imap.Flag{imap.FlagDeleted}})},
	{`KEYWORD $junk UNKEYWORD Work KEYWORD \Recent`, criteria(imap.SearchCriteria{Flag: []imap.Flag{imap.FlagJunk, `\Recent`},
		NotFlag: []imap.Flag{"Work"}})},
	{"MODSEQ 620162338", searchArgs{ModSeq: true, Criteria: &imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 620162338}}}},
	{`MODSEQ "/flags/\\draft" all 620162338`, searchArgs{ModSeq: true, Criteria: &imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{
		ModSeq: 620162338, MetadataName: `/flags/\draft`, MetadataType: imap.SearchCriteriaMetadataAll}}}},
	{"(MODSEQ 5) MODSEQ 9 (MODSEQ 7)", searchArgs{ModSeq: true, Criteria: &imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 9}}}},
	{"NOT MODSEQ 5", searchArgs{ModSeq: true, Criteria: &imap.SearchCriteria{Not: []imap.SearchCriteria{{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 5}}}}}},
	{"RETURN (MIN COUNT) UNSEEN", searchArgs{Return: ret(imap.SearchOptions{ReturnMin: true, ReturnCount: true}),
		Criteria: &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}}},
	{"RETURN () ALL", searchArgs{Return: ret(imap.SearchOptions{ReturnAll: true}), Criteria: &imap.SearchCriteria{}}},
	{"return (max all save) ALL", searchArgs{Return: ret(imap.SearchOptions{ReturnMax: true, ReturnAll: true, ReturnSave: true}),
		Criteria: &imap.SearchCriteria{}}},
	{"RETURN (SAVE) FLAGGED", searchArgs{Return: ret(imap.SearchOptions{ReturnSave: true}),
		Criteria: &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}}},
	{"RETURN (PARTIAL 1:100 COUNT) ALL", searchArgs{Return: &searchReturn{SearchOptions: imap.SearchOptions{ReturnCount: true},
		Partial: &partialRange{1, 100}}, Criteria: &imap.SearchCriteria{}}},
	{"RETURN (partial 9:3 context update) ALL", searchArgs{Return: &searchReturn{Partial: &partialRange{3, 9}, Update: true},
		Criteria: &imap.SearchCriteria{}}},
	{"RETURN (PARTIAL 4294967295:1) ALL", searchArgs{Return: &searchReturn{Partial: &partialRange{1, 4294967295}},
		Criteria: &imap.SearchCriteria{}}},
	{"CHARSET UTF-8 TEXT {6}\r\nnaïve", searchArgs{Charset: "UTF-8", Criteria: &imap.SearchCriteria{Text: []string{"naïve"}}}},
	{"RETURN (COUNT) CHARSET us-ascii ALL", searchArgs{Return: ret(imap.SearchOptions{ReturnCount: true}), Charset: "us-ascii",
		Criteria: &imap.SearchCriteria{}}},
	{"SAVEDSINCE 1-Feb-2024 SAVEDATESUPPORTED", searchArgs{SaveDateSince: day(2024, 2, 1), SaveDateSupported: true,
		Criteria: &imap.SearchCriteria{}}},
	{"SAVEDON 1-Feb-2024 (SAVEDBEFORE 1-Jan-2025)", searchArgs{SaveDateSince: day(2024, 2, 1), SaveDateBefore: day(2024, 2, 2),
		Criteria: &imap.SearchCriteria{}}},
}

var badSearchCases = []badCase{
	{"", "SEARCH: missing argument: a search key such as ALL"},
	{"CHARSET UTF-8", "SEARCH: missing argument"},
	{"RETURN (ALL)", "SEARCH: missing argument"},
	{"FOO", `SEARCH: unknown search key "FOO"`},
	{`"ALL"`, "SEARCH: expected a search key"},
	{"{3}\r\nALL", "SEARCH: expected a search key"},
	{"UNRECENT", `unknown search key "UNRECENT"`},
	{"FROM", "SEARCH: missing argument: FROM's text"},
	{"FROM (a)", "SEARCH: expected FROM's text"},
	{"HEADER Subject", "SEARCH: missing argument: HEADER's text"},
	{"SINCE 1994-02-01", `SEARCH: invalid date "1994-02-01"`},
	{"SINCE 32-Feb-1994", "invalid date"},
	{"SENTON", "missing argument: SENTON's date"},
	{"OR SEEN", "SEARCH: missing argument: a search key"},
	{"NOT", "SEARCH: missing argument: a search key"},
	{"()", "SEARCH: empty parentheses"},
	{"(SEEN FOO)", `unknown search key "FOO"`},
	{"RETURN (FOO) ALL", `SEARCH: unknown RETURN option "FOO"`},
	{"RETURN (PARTIAL) ALL", "SEARCH: PARTIAL needs a range of positions"},
	{"RETURN (PARTIAL 0:5) ALL", "SEARCH: PARTIAL takes a range of positions from 1 to 4294967295"},
	{"RETURN (PARTIAL -1:-5) ALL", "SEARCH: PARTIAL takes a range of positions"},
	{"RETURN (PARTIAL 1:4294967296) ALL", "SEARCH: PARTIAL takes a range of positions"},
	{"RETURN (PARTIAL 5) ALL", "SEARCH: PARTIAL takes a range of positions"},
	{"RETURN (PARTIAL 1:2 PARTIAL 3:4) ALL", "SEARCH: PARTIAL may be given only once"},
	{"RETURN (PARTIAL 1:2 ALL) ALL", "SEARCH: PARTIAL and ALL cannot be asked for together"},
	{"RETURN ALL", "SEARCH: expected RETURN options in parentheses"},
	{"RETURN", "SEARCH: missing argument: the RETURN options"},
	{"UID abc", "invalid sequence set"},
	{"UID", "missing argument: UID's set"},
	{"0:3", `unknown search key "0:3"`},
	{`KEYWORD \Foo`, "unknown system flag"},
	{`KEYWORD "foo"`, "expected a flag"},
	{"LARGER -1", "must be a number"},
	{"LARGER 9223372036854775808", "is larger than"},
	{"MODSEQ x bogus 5", `MODSEQ entry type "BOGUS" is not priv, shared or all`},
	{`MODSEQ "/flags/\\seen" priv`, "missing argument: MODSEQ's mod-sequence"},
	{"MODSEQ", "missing argument: MODSEQ's mod-sequence"},
	{"NOT SAVEDSINCE 1-Feb-2024", "SAVEDSINCE is not supported inside NOT or OR"},
	{"OR SEEN (SAVEDATESUPPORTED)", "SAVEDATESUPPORTED is not supported inside NOT or OR"},
	{"TEXT {3}\r\n\xff\xfe\xfd", "SEARCH: TEXT's text is not valid UTF-8"},
	{"TEXT ~{3}\r\nabc", "binary literal"},
	{"CHARSET ISO-8859-1 ALL", `SEARCH: charset "ISO-8859-1" is not supported`},
}

func TestParseSearchArgs(t *testing.T) {
	for _, tc := range searchCases {
		got, err := parseSearchArgs(argsOf(t, tc.in), false)
		if err != nil {
			t.Errorf("parseSearchArgs(%q): %v", tc.in, err)
			continue
		}
		checkEqual(t, tc.in, *got.Criteria, *tc.want.Criteria)
		got.Criteria, tc.want.Criteria = nil, nil
		checkEqual(t, tc.in, *got, tc.want)
	}
	for _, tc := range badSearchCases {
		_, err := parseSearchArgs(argsOf(t, tc.in), false)
		checkBad(t, tc.in, err, tc.want)
	}
	_, err := parseSearchArgs(argsOf(t, "BOGUS"), true)
	checkBad(t, "UID SEARCH BOGUS", err, `UID SEARCH: unknown search key "BOGUS"`)
	got, err := parseSearchArgs(argsOf(t, "$"), true)
	if err != nil || len(got.Criteria.UID) != 1 || !imap.IsSearchRes(got.Criteria.UID[0]) {
		t.Errorf("UID SEARCH $ = %+v, %v; want the saved result", got, err)
	}
}

func ret(o imap.SearchOptions) *searchReturn { return &searchReturn{SearchOptions: o} }
