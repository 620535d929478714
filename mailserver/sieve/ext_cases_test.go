package sieve

import "strings"

const (
	rqFV = "require [\"fileinto\",\"variables\"];\n"
	rqF  = "require \"fileinto\";\n"
)

// extensionCases cover each test, match type, comparator and extension on its own.
var extensionCases = []evalCase{
	// address parts and subaddress
	{name: "address :localpart", script: rqF + `if address :localpart "from" "alice" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "address :domain", script: rqF + `if address :domain :is "to" "example.org" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "address :domain is not substring", script: rqF + `if address :domain :is "to" "example" { fileinto "d"; }`, want: []string{"implicit keep"}},
	{name: "address skips display name", script: rqF + `if address :contains "from" "Cooper" { fileinto "d"; }`, want: []string{"implicit keep"}},
	{name: "address second of list", script: rqF + `if address :is "to" "carol+lists@example.org" { fileinto "c"; }`, want: []string{"fileinto c"}},
	{name: "subaddress :user", script: "require [\"fileinto\",\"subaddress\"];\n" + `if address :user "to" "carol" { fileinto "u"; }`, want: []string{"fileinto u"}},
	{name: "subaddress :detail", script: "require [\"fileinto\",\"subaddress\"];\n" + `if address :detail "to" "lists" { fileinto "l"; }`, want: []string{"fileinto l"}},
	{name: "subaddress :detail absent does not match empty", script: "require [\"fileinto\",\"subaddress\"];\n" + `if address :detail "from" "" { fileinto "l"; }`, want: []string{"implicit keep"}},
	{name: "subaddress :detail matches into variable", script: "require [\"fileinto\",\"subaddress\",\"variables\",\"envelope\"];\n" + `if envelope :detail :matches "to" "*" { fileinto "plus/${1}"; }`,
		env: &Envelope{From: "a@example.com", To: "bob+shop@example.org"}, want: []string{"fileinto plus/shop"}},
	{name: "address on a group", script: rqF + `if address :is "to" "x@example.com" { fileinto "g"; }`,
		msg: msg("x\n", "From: a@example.com", "To: friends: x@example.com, y@example.com;"), want: []string{"fileinto g"}},
	{name: "address: an invalid list has no domain", script: rqF + `if address :domain "to" "example.net" { fileinto "m"; }`,
		msg: msg("x\n", "From: a@example.com", "To: Broken <<y@example.net>, \"unclosed"), want: []string{"implicit keep"}},
	{name: "address: :all sees an invalid list as written", script: rqF + `if address :all :contains "to" "unclosed" { fileinto "m"; }`,
		msg: msg("x\n", "From: a@example.com", "To: Broken <<y@example.net>, \"unclosed"), want: []string{"fileinto m"}},

	// envelope
	{name: "envelope to :localpart", script: "require [\"envelope\",\"fileinto\"];\n" + `if envelope :localpart :is "to" "bob" { fileinto "e"; }`, want: []string{"fileinto e"}},
	{name: "envelope null sender matches empty", script: "require [\"envelope\",\"fileinto\"];\n" + `if envelope :domain :is "from" "" { fileinto "bounces"; }`,
		env: &Envelope{To: "bob@example.org"}, want: []string{"fileinto bounces"}},
	{name: "envelope from domain", script: "require [\"envelope\",\"fileinto\"];\n" + `if envelope :domain :is "from" "example.com" { fileinto "e"; }`, want: []string{"fileinto e"}},

	// header decoding and match types
	{name: "header RFC 2047 decoded", script: rqF + `if header :contains "subject" "Grüße" { fileinto "de"; }`, msg: msgNews, want: []string{"fileinto de"}},
	{name: "header :is case-insensitive by default", script: rqF + `if header :is "subject" "LUNCH TOMORROW?" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header :matches ? and *", script: rqF + `if header :matches "subject" "L?nch*" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header :matches must cover whole value", script: rqF + `if header :matches "subject" "Lunch" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "header :matches escaped star", script: rqF + `if header :matches "subject" "*\\?" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header :matches escaped star literal fails", script: rqF + `if header :matches "subject" "Lunch\\*" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "header missing never matches empty :is", script: rqF + `if header :is "x-nope" "" { fileinto "x"; }`, want: []string{"implicit keep"}},
	{name: "header :contains empty key matches present header", script: rqF + `if header :contains "subject" "" { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header list of names and keys", script: rqF + `if header :contains ["x-a","subject"] ["zzz","tomorrow"] { fileinto "x"; }`, want: []string{"fileinto x"}},
	{name: "header folded value", script: rqF + `if header :is "subject" "one two" { fileinto "x"; }`,
		msg: "Subject: one\r\n two\r\nFrom: a@example.com\r\n\r\nx\r\n", want: []string{"fileinto x"}},

	// match variables
	{name: "matches variables list id", script: rqFV + `if header :matches "List-Id" "*<*.lists.example.org>" { fileinto "lists.${2}"; stop; }`,
		msg: msgList, want: []string{"fileinto lists.dev"}},
	{name: "matches variables shortest first star", script: rqFV + `if address :matches "from" "*@**.com" { fileinto "${1}/[${2}]/${3}"; }`,
		want: []string{"fileinto alice/[]/example"}},
	{name: "matches ${0} whole value", script: rqFV + `if header :matches "subject" "Lunch*" { fileinto "${0}"; }`, want: []string{"fileinto Lunch tomorrow?"}},
	{name: "matches question mark captures", script: rqFV + `if header :matches "subject" "?unch*" { fileinto "${1}-${2}"; }`, want: []string{"fileinto L- tomorrow?"}},
	{name: "match variables keep case of value", script: rqFV + `if header :matches "from" "*COOPER*" { fileinto "${1}"; }`, want: []string{"fileinto Alice "}},
	{name: "failed match keeps earlier variables", script: rqFV + `if header :matches "subject" "*" {} if header :matches "subject" "nope*" {} fileinto "${1}";`,
		want: []string{"fileinto Lunch tomorrow?"}},
	{name: "unset match variable is empty", script: rqFV + `fileinto "a${5}b";`, want: []string{"fileinto ab"}},
	{name: "regex captures", script: "require [\"fileinto\",\"variables\",\"regex\"];\n" + `if header :regex "subject" "^([a-z]+) (.*)$" { fileinto "${1}.${2}"; }`,
		want: []string{"fileinto Lunch.tomorrow?"}},
	{name: "regex octet is case sensitive", script: "require [\"fileinto\",\"regex\"];\n" + `if header :regex :comparator "i;octet" "subject" "^lunch" { fileinto "x"; }`,
		want: []string{"implicit keep"}},
	{name: "regex alternation", script: "require [\"fileinto\",\"regex\"];\n" + `if header :regex "from" "(bob|alice)@example\\.(com|org)" { fileinto "x"; }`,
		want: []string{"fileinto x"}},

	// comparators and relational
	{name: "ascii-numeric :is ignores leading zeros", script: "require [\"fileinto\",\"comparator-i;ascii-numeric\"];\n" + `if header :is :comparator "i;ascii-numeric" "x-spam-score" "007" { fileinto "x"; }`,
		want: []string{"fileinto x"}},
	{name: "value gt numeric", script: "require [\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "10" { fileinto "x"; }`,
		want: []string{"implicit keep"}},
	{name: "value lt casemap string order", script: "require [\"fileinto\",\"relational\"];\n" + `if header :value "lt" "subject" "M" { fileinto "x"; }`,
		want: []string{"fileinto x"}},
	{name: "value non-digit is infinity", script: "require [\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" { fileinto "x"; }`,
		want: []string{"fileinto x"}},
	{name: "count addresses", script: "require [\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if address :count "ge" :comparator "i;ascii-numeric" ["to","cc"] "3" { fileinto "many"; }`,
		want: []string{"fileinto many"}},
	{name: "count headers eq", script: "require [\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if header :count "eq" :comparator "i;ascii-numeric" "received" "1" { fileinto "one"; }`,
		want: []string{"fileinto one"}},
	{name: "count missing header is zero", script: "require [\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if header :count "eq" :comparator "i;ascii-numeric" "x-nope" "0" { fileinto "zero"; }`,
		want: []string{"fileinto zero"}},
	{name: "value ne", script: "require [\"fileinto\",\"relational\"];\n" + `if header :value "ne" "x-priority" "1" { fileinto "x"; }`, want: []string{"implicit keep"}},

	// variables
	{name: "set and use", script: rqFV + `set "box" "Work"; fileinto "INBOX.${box}";`, want: []string{"fileinto INBOX.Work"}},
	{name: "variable names ignore case", script: rqFV + `set "Box" "W"; fileinto "${BOX}";`, want: []string{"fileinto W"}},
	{name: "set :lower", script: rqFV + `set :lower "b" "MiXeD"; fileinto "${b}";`, want: []string{"fileinto mixed"}},
	{name: "set :upper", script: rqFV + `set :upper "b" "MiXeD"; fileinto "${b}";`, want: []string{"fileinto MIXED"}},
	{name: "set :upperfirst", script: rqFV + `set :upperfirst "b" "mixed"; fileinto "${b}";`, want: []string{"fileinto Mixed"}},
	{name: "set :lower :upperfirst", script: rqFV + `set :lower :upperfirst "b" "JOHN"; fileinto "${b}";`, want: []string{"fileinto John"}},
	{name: "set :lowerfirst", script: rqFV + `set :lowerfirst "b" "ABC"; fileinto "${b}";`, want: []string{"fileinto aBC"}},
	{name: "set :length", script: rqFV + `set :length "b" "héllo"; fileinto "${b}";`, want: []string{"fileinto 5"}},
	{name: "set :quotewildcard", script: rqFV + `set :quotewildcard "b" "a*b?c\\d"; fileinto "${b}";`, want: []string{"fileinto a\\*b\\?c\\\\d"}},
	{name: "quotewildcard makes a literal pattern", script: rqFV + `set :quotewildcard "q" "Lunch tomorrow?"; if header :matches "subject" "${q}" { fileinto "lit"; }`,
		want: []string{"fileinto lit"}},
	{name: "invalid reference left as written", script: rqFV + `fileinto "a${-x}b";`, want: []string{"fileinto a${-x}b"}},
	{name: "expansion is not recursive", script: rqFV + `set "d" "$"; set "b" "x"; set "a" "${d}{b}"; fileinto "${a}";`, want: []string{"fileinto ${b}"}},
	{name: "no expansion without variables", script: rqF + `fileinto "${a}";`, want: []string{"fileinto ${a}"}},
	{name: "string test", script: rqFV + `set "v" "yes"; if string :is "${v}" "yes" { fileinto "s"; }`, want: []string{"fileinto s"}},
	{name: "string empty counts zero", script: "require [\"fileinto\",\"variables\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if string :count "eq" :comparator "i;ascii-numeric" ["", "a"] "1" { fileinto "s"; }`,
		want: []string{"fileinto s"}},
	{name: "string :matches captures", script: rqFV + `set "d" "2026-12-09"; if string :matches "${d}" "*-*-*" { fileinto "${3}.${2}.${1}"; }`,
		want: []string{"fileinto 09.12.2026"}},
	{name: "variable truncated at limit", script: rqFV + `set "a" "` + strings.Repeat("z", 5000) + `"; set :length "n" "${a}"; fileinto "${n}";`, want: []string{"fileinto 4096"}},

	// encoded-character
	{name: "encoded-character hex", script: "require [\"fileinto\",\"encoded-character\"];\n" + `fileinto "${hex:41 42}C";`, want: []string{"fileinto ABC"}},
	{name: "encoded-character unicode", script: "require [\"fileinto\",\"encoded-character\"];\n" + `fileinto "caf${unicode:e9}";`, want: []string{"fileinto café"}},
	{name: "encoded-character malformed stays", script: "require [\"fileinto\",\"encoded-character\"];\n" + `fileinto "${hex:zz}";`, want: []string{"fileinto ${hex:zz}"}},
	{name: "encoded-character not required", script: rqF + `fileinto "${hex:41}";`, want: []string{"fileinto ${hex:41}"}},

	// body
	{name: "body :text decodes quoted-printable", script: "require [\"body\",\"fileinto\"];\n" + `if body :contains "Rechnung für" { fileinto "bills"; }`, msg: msgMIME, want: []string{"fileinto bills"}},
	{name: "body :text strips html", script: "require [\"body\",\"fileinto\"];\n" + `if body :text :contains "<b>" { fileinto "html"; }`, msg: msgMIME, want: []string{"implicit keep"}},
	{name: "body :raw sees encoding", script: "require [\"body\",\"fileinto\"];\n" + `if body :raw :contains "f=C3=BCr" { fileinto "raw"; }`, msg: msgMIME, want: []string{"fileinto raw"}},
	{name: "body :content text/html", script: "require [\"body\",\"fileinto\"];\n" + `if body :content "text/html" :contains "<b>Rechnung</b>" { fileinto "html"; }`, msg: msgMIME, want: []string{"fileinto html"}},
	{name: "body :content application decoded", script: "require [\"body\",\"fileinto\"];\n" + `if body :content "application" :contains "%PDF" { fileinto "pdf"; }`, msg: msgMIME, want: []string{"fileinto pdf"}},
	{name: "body plain message", script: "require [\"body\",\"fileinto\"];\n" + `if body :contains "money fast" { fileinto "spam"; }`, want: []string{"fileinto spam"}},
	{name: "body no match", script: "require [\"body\",\"fileinto\"];\n" + `if body :contains "nothing like this" { fileinto "x"; }`, want: []string{"implicit keep"}},

	// date, currentdate, index
	{name: "date year in own zone", script: "require [\"date\",\"fileinto\"];\n" + `if date :zone "+0100" "date" "date" "2026-12-08" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date converted to default zone", script: "require [\"date\",\"fileinto\"];\n" + `if date "date" "hour" "20" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date :originalzone keeps zone", script: "require [\"date\",\"fileinto\"];\n" + `if date :originalzone "date" "zone" "+0100" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date iso8601", script: "require [\"date\",\"fileinto\"];\n" + `if date :zone "+0000" "date" "iso8601" "2026-12-08T20:12:01Z" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date iso8601 with offset", script: "require [\"date\",\"fileinto\"];\n" + `if date :originalzone "date" "iso8601" "2026-12-08T21:12:01+01:00" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date std11", script: "require [\"date\",\"fileinto\"];\n" + `if date :originalzone "date" "std11" "Tue, 08 Dec 2026 21:12:01 +0100" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date julian", script: "require [\"date\",\"fileinto\"];\n" + `if date :originalzone "date" "julian" "61382" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date received uses part after semicolon", script: "require [\"date\",\"fileinto\"];\n" + `if date :originalzone "received" "second" "03" { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "date missing header is false", script: "require [\"date\",\"fileinto\"];\n" + `if date "x-nope" "year" "2026" { fileinto "d"; }`, want: []string{"implicit keep"}},
	{name: "date bad header is false", script: "require [\"date\",\"fileinto\"];\n" + `if date "subject" "year" "2026" { fileinto "d"; }`, want: []string{"implicit keep"}},
	{name: "currentdate weekday wednesday", script: "require [\"date\",\"fileinto\"];\n" + `if currentdate "weekday" "3" { fileinto "wed"; }`, want: []string{"fileinto wed"}},
	{name: "currentdate :zone shifts the day", script: "require [\"date\",\"fileinto\"];\n" + `if currentdate :zone "-1100" "date" "2026-12-08" { fileinto "z"; }`, want: []string{"fileinto z"}},
	{name: "currentdate time into variable", script: "require [\"date\",\"fileinto\",\"variables\"];\n" + `if currentdate :matches "time" "*:*:*" { fileinto "${1}h${2}"; }`, want: []string{"fileinto 10h30"}},
	{name: "currentdate relational range", script: "require [\"date\",\"relational\",\"fileinto\"];\n" + `if allof(currentdate :value "ge" "date" "2026-12-01", currentdate :value "lt" "date" "2027-01-01") { fileinto "dec"; }`, want: []string{"fileinto dec"}},
	{name: "index first received", script: "require [\"index\",\"fileinto\"];\n" + `if header :index 1 :contains "received" "mx.example.com" { fileinto "i"; }`, want: []string{"fileinto i"}},
	{name: "index out of range", script: "require [\"index\",\"fileinto\"];\n" + `if header :index 2 :contains "received" "mx" { fileinto "i"; }`, want: []string{"implicit keep"}},
	{name: "index last", script: "require [\"index\",\"fileinto\"];\n" + `if header :index 1 :last :is "x-h" "b" { fileinto "i"; }`,
		msg: msg("x\n", "X-H: a", "X-H: b"), want: []string{"fileinto i"}},
	{name: "index with date", script: "require [\"index\",\"date\",\"fileinto\"];\n" + `if date :index 1 :last :originalzone "x-d" "year" "2025" { fileinto "i"; }`,
		msg: msg("x\n", "X-D: Mon, 01 Jan 2024 00:00:00 +0000", "X-D: Wed, 01 Jan 2025 00:00:00 +0000"), want: []string{"fileinto i"}},

	// imap4flags
	{name: "flags accumulate into keep", script: "require \"imap4flags\";\naddflag \"\\\\Seen\"; addflag [\"$Work\", \"\\\\Seen\"];", want: []string{"implicit keep flags=\\Seen,$Work"}},
	{name: "removeflag", script: "require \"imap4flags\";\naddflag \"\\\\Seen \\\\Flagged\"; removeflag \"\\\\seen\";", want: []string{"implicit keep flags=\\Flagged"}},
	{name: "setflag replaces", script: "require \"imap4flags\";\naddflag \"a\"; setflag \"b\";", want: []string{"implicit keep flags=b"}},
	{name: "fileinto takes flags at its time", script: "require [\"imap4flags\",\"fileinto\"];\naddflag \"a\"; fileinto \"X\"; addflag \"b\"; keep;", want: []string{"fileinto X flags=a", "keep flags=a,b"}},
	{name: "keep :flags overrides internal", script: "require \"imap4flags\";\naddflag \"a\"; keep :flags \"z\";", want: []string{"keep flags=z"}},
	{name: "hasflag internal", script: "require [\"imap4flags\",\"fileinto\"];\naddflag \"\\\\Flagged\"; if hasflag :is \"\\\\flagged\" { fileinto \"f\"; }", want: []string{"fileinto f flags=\\Flagged"}},
	{name: "hasflag variable", script: "require [\"imap4flags\",\"fileinto\",\"variables\"];\naddflag \"mine\" \"x y\"; if hasflag :is \"mine\" \"y\" { fileinto \"v\"; }", want: []string{"fileinto v"}},
	{name: "hasflag count", script: "require [\"imap4flags\",\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\nsetflag \"a b c\"; if hasflag :count \"eq\" :comparator \"i;ascii-numeric\" \"3\" { fileinto \"three\"; }", want: []string{"fileinto three flags=a,b,c"}},
	{name: "flags variable not applied to keep", script: "require [\"imap4flags\",\"variables\"];\naddflag \"v\" \"x\";", want: []string{"implicit keep"}},

	// copy, mailbox, duplicates
	{name: "fileinto :create", script: "require [\"fileinto\",\"mailbox\"];\nfileinto :create \"New\";", want: []string{"fileinto New :create"}},
	{name: "fileinto INBOX and keep are one", script: rqF + `fileinto "INBOX"; keep;`, want: []string{"fileinto INBOX"}},
	{name: "copy then plain cancels keep", script: "require [\"fileinto\",\"copy\"];\nfileinto :copy \"A\"; fileinto \"B\";", want: []string{"fileinto A :copy", "fileinto B"}},
	{name: "redirect twice same address once", script: `redirect "x@example.net"; redirect "x@EXAMPLE.net";`, want: []string{"redirect x@example.net"}},
	{name: "redirect local parts differ in case", script: `redirect "x@example.net"; redirect "X@example.net";`, want: []string{"redirect x@example.net", "redirect X@example.net"}},
	{name: "redirect with a display name", script: `redirect "Bob <b@example.com>";`, want: []string{"redirect b@example.com"}},
	{name: "redirect in angle brackets", script: `redirect "<b@example.com> ";`, want: []string{"redirect b@example.com"}},
	{name: "discard then keep", script: `discard; keep;`, want: []string{"discard", "keep"}},

	// control flow
	{name: "elsif chain picks first true", script: rqF + `if false { fileinto "a"; } elsif true { fileinto "b"; } elsif true { fileinto "c"; } else { fileinto "d"; }`, want: []string{"fileinto b"}},
	{name: "else when all false", script: rqF + `if false { fileinto "a"; } elsif false { fileinto "b"; } else { fileinto "d"; }`, want: []string{"fileinto d"}},
	{name: "two ifs are separate chains", script: rqF + `if true { fileinto "a"; } if false { } else { fileinto "b"; }`, want: []string{"fileinto a", "fileinto b"}},
	{name: "nested blocks", script: rqF + `if true { if not false { if anyof(false, true) { fileinto "deep"; } } }`, want: []string{"fileinto deep"}},
	{name: "stop inside nested block", script: rqF + `if true { if true { stop; } } fileinto "never";`, want: []string{"implicit keep"}},
	{name: "empty anyof-like allof of true", script: rqF + `if allof(true, true, not false) { fileinto "t"; }`, want: []string{"fileinto t"}},

	// runtime errors never lose mail
	{name: "reject after fileinto is an error", script: "require [\"fileinto\",\"reject\"];\nfileinto \"x\"; reject \"no\";", want: []string{"implicit keep"}, runErr: "conflicts"},
	{name: "fileinto after reject is an error", script: "require [\"fileinto\",\"reject\"];\nreject \"no\"; fileinto \"x\";", want: []string{"implicit keep"}, runErr: "conflicts"},
	{name: "two vacations is an error", script: "require \"vacation\";\nvacation \"a\"; vacation \"b\";", want: []string{"implicit keep"}, runErr: "vacation conflicts"},
	{name: "too many redirects", script: `redirect "a@x.example"; redirect "b@x.example"; redirect "c@x.example"; redirect "d@x.example"; redirect "e@x.example";`,
		want: []string{"implicit keep"}, runErr: "more than 4 addresses"},
	{name: "redirect to a variable that is no address", script: "require \"variables\";\nset \"a\" \"not an address\"; redirect \"${a}\";", want: []string{"implicit keep"}, runErr: "not a valid mail address"},
	{name: "fileinto empty mailbox", script: rqFV + `fileinto "${nothing}";`, want: []string{"implicit keep"}, runErr: "mailbox name is empty"},
	{name: "too many actions", script: "require [\"fileinto\",\"variables\"];\n" + manyFileinto(40), want: []string{"implicit keep"}, runErr: "more than 32 actions"},
	{name: "runtime error drops earlier flags and actions", script: "require [\"fileinto\",\"imap4flags\",\"reject\"];\naddflag \"x\"; fileinto \"a\"; reject \"r\";", want: []string{"implicit keep"}, runErr: "line 2"},
}

func manyFileinto(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(`set "n" "` + strings.Repeat("i", i+1) + `"; fileinto "box${n}";` + "\n")
	}
	return b.String()
}
