package sieve

// probeCases show computed values through the reason of a reject, so that the differential
// test compares the values themselves and not only which branch ran.
var probeCases = []evalCase{
	probe("address :all value", `if address :all :matches "to" "*" { reject "${1}"; }`, "bob@example.org"),
	probe("address :localpart of second", `if address :localpart :matches "to" "carol*" { reject "${1}"; }`, "+lists"),
	probe("envelope parts", `if envelope :all :matches "to" "*@*" { reject "${1}|${2}"; }`, "bob|example.org"),
	probe("header raw value", `if header :matches "to" "*" { reject "${1}"; }`, "Bob <bob@example.org>, carol+lists@example.org"),
	probe("three stars shortest first", `if header :matches "subject" "*o*o*" { reject "${1}|${2}|${3}"; }`, "Lunch t|m|rrow?"),
	probe("star then question marks", `if header :matches "subject" "*??" { reject "${1}|${2}|${3}"; }`, "Lunch tomorro|w|?"),
	probe("leading question marks", `if header :matches "subject" "??*" { reject "${1}|${2}|${3}"; }`, "L|u|nch tomorrow?"),
	probe("adjacent stars", `if header :matches "subject" "**" { reject "[${1}][${2}]"; }`, "[][Lunch tomorrow?]"),
	probe("match variable 0", `if header :matches "subject" "L*" { reject "${0}"; }`, "Lunch tomorrow?"),
	probe("regex groups", `if header :regex "from" "^([^<]+) <([^@]+)@(.*)>$" { reject "${1}|${2}|${3}"; }`, "Alice Cooper|alice|example.com"),
	probe("regex case-insensitive", `if header :regex "subject" "LUNCH (.*)" { reject "${1}"; }`, "tomorrow?"),
	probe("regex leftmost longest", `if header :regex "subject" "(o+|om)(.*)" { reject "${1}|${2}"; }`, "o|morrow?"),
	probe("set modifiers together", `set :upperfirst :lower "a" "hELLO wORLD"; reject "${a}";`, "Hello world"),
	probe("quotewildcard", `set :quotewildcard "a" "*?\\x"; reject "${a}";`, "\\*\\?\\\\x"),
	probe("length", `set :length "a" "twelve chars"; reject "${a}";`, "12"),
	probe("unknown variable", `reject "[${nope}]";`, "[]"),
	probe("numeric variable beyond matches", `if header :matches "subject" "*" {} reject "[${2}]";`, "[]"),
	probe("header folded keeps space", `if header :matches "x-fold" "*" { reject "[${1}]"; }`, "[one two  three]",
		"X-Fold: one\r\n two \r\n three"),
	probe("header trailing space trimmed", `if header :matches "x-t" "*" { reject "[${1}]"; }`, "[value]",
		"X-T:   value   "),
	probe("encoded word decoded", `if header :matches "subject" "*" { reject "${1}"; }`, "Hello World",
		"Subject: =?ISO-8859-1?Q?Hello_World?="),
	probe("encoded words joined", `if header :matches "subject" "*" { reject "${1}"; }`, "ab",
		"Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?="),
	probe("address in encoded display name", `if address :all :matches "reply-to" "*" { reject "${1}"; }`, "x@example.com",
		"Reply-To: =?UTF-8?Q?Mr_X?= <x@example.com>"),
	probe("date year", dp("year"), "2026"),
	probe("date month", dp("month"), "12"),
	probe("date day", dp("day"), "08"),
	probe("date date", dp("date"), "2026-12-08"),
	probe("date julian", dp("julian"), "61382"),
	probe("date hour", dp("hour"), "21"),
	probe("date minute", dp("minute"), "12"),
	probe("date second", dp("second"), "01"),
	probe("date time", dp("time"), "21:12:01"),
	probe("date iso8601", dp("iso8601"), "2026-12-08T21:12:01+01:00"),
	probe("date std11", dp("std11"), "Tue, 08 Dec 2026 21:12:01 +0100"),
	probe("date zone", dp("zone"), "+0100"),
	probe("date weekday", dp("weekday"), "2"),
	probe("date zone conversion crosses midnight", `if date :zone "+0300" :matches "date" "std11" "*" { reject "${1}"; }`, "Tue, 08 Dec 2026 23:12:01 +0300"),
	probe("date zone conversion next day", `if date :zone "+0500" :matches "date" "date" "*" { reject "${1}"; }`, "2026-12-09"),
	probe("date without seconds", dp("time"), "09:05:00", "Date: Thu, 3 Dec 2026 09:05 -0800"),
	probe("flags listed", `addflag ["b a", "c"]; removeflag "a"; if hasflag :matches "*" { reject "${1}"; }`, "b"),
	probe("hasflag count", `addflag ["x", "y", "x"]; if hasflag :count "eq" :comparator "i;ascii-numeric" "2" { reject "two"; }`, "two"),
	probe("flag variable text", `addflag "v" ["b", "a", "b"]; reject "${v}";`, "b a"),
	probe("count value", `if header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "2" { reject "yes"; }`, "yes"),
	probe("value on strings", `if string :value "gt" "b" "a" { reject "gt"; }`, "gt"),
	probe("casemap value order", `if string :value "eq" "ABC" "abc" { reject "eq"; }`, "eq"),
	probe("octet value order", `if string :value "lt" :comparator "i;octet" "ABC" "abc" { reject "lt"; }`, "lt"),
	probe("numeric equality infinity", `if string :is :comparator "i;ascii-numeric" "abc" "def" { reject "inf"; }`, "inf"),
	probe("numeric empty", `if string :value "gt" :comparator "i;ascii-numeric" "" "999" { reject "inf"; }`, "inf"),
	probe("string count skips empty", `if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { reject "two"; }`, "two"),
	probe("matches on empty value", `if string :matches "" "*" { reject "[${1}]"; }`, "[]"),
	probe("contains empty key", `if string :contains "abc" "" { reject "yes"; }`, "yes"),
	probe("body leaves match variables", `if header :matches "subject" "*" {} if body :raw :matches "*make *" { reject "${1}"; }`, "Lunch tomorrow?"),
	probe("body :text sets none", `if body :text :matches "*Bob*" { reject "[${1}]"; }`, "[]"),
	probe("subaddress user", `if address :user :matches "to" "c*" { reject "${1}"; }`, "arol"),
	probe("subaddress detail", `if address :detail :matches "to" "*" { reject "${1}"; }`, "lists"),
}

// probe builds a case whose script rejects with a reason holding what it computed.
func probe(name, rule, want string, header ...string) evalCase {
	script := "require [\"reject\",\"variables\",\"envelope\",\"regex\",\"relational\",\"comparator-i;ascii-numeric\"," +
		"\"date\",\"imap4flags\",\"body\",\"subaddress\"];\n" + rule
	c := evalCase{name: "probe: " + name, script: script, want: []string{"reject " + want}}
	if len(header) > 0 {
		c.msg = msg("body\n", append([]string{"From: a@example.com", "To: bob@example.org", "Date: Tue, 08 Dec 2026 21:12:01 +0100"}, header...)...)
		if header[0][:5] == "Date:" {
			c.msg = msg("body\n", append([]string{"From: a@example.com", "To: bob@example.org"}, header...)...)
		}
	}
	return c
}

func dp(part string) string {
	return `if date :originalzone :matches "date" "` + part + `" "*" { reject "${1}"; }`
}
