package sieve

import "strconv"

var msgNested = msg("preamble\n"+
	"--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n"+
	"--inner\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe aus K=F6ln, mit einem sehr langen Satz der wei=\nter geht.\n"+
	"--inner\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\nPGh0bWw+PGJvZHk+PHA+SGFsbG8gPGk+V2VsdDwvaT48L3A+PC9ib2R5PjwvaHRtbD4=\n"+
	"--inner--\n"+
	"--outer\nContent-Type: message/rfc822\n\nFrom: inner@example.com\nSubject: forwarded\nContent-Type: text/plain\n\nThe forwarded secret text.\n"+
	"--outer--\nepilogue\n",
	"From: a@example.com",
	"To: bob@example.org",
	"Subject: nested",
	"MIME-Version: 1.0",
	"Content-Type: multipart/mixed; boundary=\"outer\"")

// moreCases probe message structure and address forms, where implementations differ most.
var moreCases = []evalCase{
	{name: "body qp soft break and latin1", script: bodyIf(`:contains "weiter geht"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body latin1 decoded", script: bodyIf(`:contains "Grüße aus Köln"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body base64 html decoded", script: bodyIf(`:content "text/html" :contains "<i>Welt</i>"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body text of html has no tags", script: bodyIf(`:text :contains "Hallo"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body content text/plain", script: bodyIf(`:content "text/plain" :contains "Köln"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body content multipart preamble", script: bodyIf(`:content "multipart" :contains "preamble"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body raw sees base64", script: bodyIf(`:raw :contains "PGh0bWw+"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body raw does not decode", script: bodyIf(`:raw :contains "Köln"`), msg: msgNested, want: []string{"implicit keep"}},
	{name: "body of forwarded message", script: bodyIf(`:text :contains "forwarded secret"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body content message/rfc822", script: bodyIf(`:content "message/rfc822" :contains "Subject: forwarded"`), msg: msgNested, want: []string{"fileinto hit"}},
	{name: "body top-level html", script: bodyIf(`:text :contains "<b>"`), msg: msg("<p><b>bold</b></p>\n", "Content-Type: text/html"), want: []string{"implicit keep"}},
	{name: "body top-level html text", script: bodyIf(`:text :contains "bold"`), msg: msg("<p><b>bold</b></p>\n", "Content-Type: text/html"), want: []string{"fileinto hit"}},
	{name: "body :matches whole part", script: bodyIf(`:matches "Hello Bob*Alice*"`), want: []string{"fileinto hit"}},
	{name: "body :is whole part", script: bodyIf(`:is "Hello Bob"`), want: []string{"implicit keep"}},
	{name: "body empty", script: bodyIf(`:contains "x"`), msg: "Subject: none\r\n\r\n", want: []string{"implicit keep"}},

	{name: "size boundary not over", script: rqF + "if size :over " + sizeOf(msgPlain) + ` { fileinto "over"; }`, want: []string{"implicit keep"}},
	{name: "size boundary not under", script: rqF + "if size :under " + sizeOf(msgPlain) + ` { fileinto "under"; }`, want: []string{"implicit keep"}},
	{name: "address undisclosed recipients", script: rqF + `if address :all :contains "to" "@" { fileinto "a"; }`,
		msg: msg("x\n", "From: a@example.com", "To: undisclosed-recipients:;"), want: []string{"implicit keep"}},
	{name: "address with comment", script: rqF + `if address :is "from" "c@example.com" { fileinto "a"; }`,
		msg: msg("x\n", "From: (the sender) c@example.com"), want: []string{"fileinto a"}},
	{name: "address quoted local part", script: rqF + `if address :localpart :is "from" "a b" { fileinto "a"; }`,
		msg: msg("x\n", "From: \"a b\"@example.com"), want: []string{"fileinto a"}},
	{name: "address domain case kept", script: rqF + `if address :domain :is :comparator "i;octet" "from" "Example.COM" { fileinto "a"; }`,
		msg: msg("x\n", "From: a@Example.COM"), want: []string{"fileinto a"}},
	{name: "header of repeated fields", script: rqF + `if header :is "x-h" "second" { fileinto "a"; }`,
		msg: msg("x\n", "X-H: first", "X-H: second"), want: []string{"fileinto a"}},
	{name: "header :matches backslash key", script: rqF + `if header :matches "x-h" "a\\\\*" { fileinto "a"; }`,
		msg: msg("x\n", "X-H: a\\b"), want: []string{"fileinto a"}},
	{name: "header name from variable", script: rqFV + `set "h" "subject"; if header :contains "${h}" "lunch" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "envelope count", script: "require [\"envelope\",\"fileinto\",\"relational\",\"comparator-i;ascii-numeric\"];\n" + `if envelope :count "eq" :comparator "i;ascii-numeric" ["from","to"] "2" { fileinto "a"; }`,
		want: []string{"fileinto a"}},
	{name: "hasflag :contains", script: "require [\"imap4flags\",\"fileinto\"];\n" + `addflag "$Label1"; if hasflag :contains "label" { fileinto "a"; }`, want: []string{"fileinto a flags=$Label1"}},
	{name: "octet order of UTF-8", script: "require [\"fileinto\",\"relational\",\"variables\"];\n" + `if string :value "gt" :comparator "i;octet" "é" "z" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "header encoded word in :contains", script: rqF + `if header :contains "subject" "World" { fileinto "a"; }`,
		msg: msg("x\n", "Subject: =?utf-8?b?SGVsbG8gV29ybGQ=?="), want: []string{"fileinto a"}},
	{name: "header broken encoded word kept", script: rqF + `if header :contains "subject" "=?utf-8?x?" { fileinto "a"; }`,
		msg: msg("x\n", "Subject: =?utf-8?x?abc?="), want: []string{"fileinto a"}},
	{name: "exists case-insensitive", script: rqF + `if exists "SUBJECT" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "vacation days 0 becomes 1", script: "require \"vacation\";\nvacation :days 0 \"x\";", want: []string{`vacation days=1 subject="" from="" reason="x"`, "implicit keep"}},
	{name: "vacation days 30", script: "require \"vacation\";\nvacation :days 30 \"x\";", want: []string{`vacation days=30 subject="" from="" reason="x"`, "implicit keep"}},
	{name: "redirect then reject", script: "require \"reject\";\nredirect \"a@example.net\"; reject \"no\";", want: []string{"implicit keep"}, runErr: "conflicts"},
	{name: "reject then discard", script: "require \"reject\";\nreject \"no\"; discard;", want: []string{"reject no", "discard"}},
	{name: "reject then vacation", script: "require [\"reject\",\"vacation\"];\nreject \"no\"; vacation \"away\";", want: []string{"implicit keep"}, runErr: "conflicts"},
	{name: "vacation then reject", script: "require [\"reject\",\"vacation\"];\nvacation \"away\"; reject \"no\";", want: []string{"implicit keep"}, runErr: "conflicts"},
	{name: "fileinto :copy INBOX is the keep", script: "require [\"fileinto\",\"copy\"];\nfileinto :copy \"INBOX\";", want: []string{"fileinto INBOX :copy"}},
	{name: "keep then fileinto :copy INBOX", script: "require [\"fileinto\",\"copy\"];\nkeep; fileinto :copy \"INBOX\";", want: []string{"keep"}},
	{name: "flags after explicit keep unused", script: "require \"imap4flags\";\naddflag \"a\"; keep; addflag \"b\";", want: []string{"keep flags=a"}},
	{name: "redirect :copy and keep", script: "require \"copy\";\nredirect :copy \"a@example.net\"; keep;", want: []string{"redirect a@example.net :copy", "keep"}},
	{name: "fileinto hierarchy", script: rqF + `fileinto "INBOX/Lists/dev";`, want: []string{"fileinto INBOX/Lists/dev"}},
	{name: "quoteregex makes a literal regex", script: "require [\"fileinto\",\"variables\",\"regex\"];\n" + `set :quoteregex "q" "a.b*"; if string :regex "axbb" "^${q}$" { fileinto "wrong"; } elsif string :regex "a.b*" "^${q}$" { fileinto "literal"; }`,
		want: []string{"fileinto literal"}},
	{name: "octet contains is case sensitive", script: rqF + `if header :contains :comparator "i;octet" "subject" "lunch" { fileinto "a"; }`, want: []string{"implicit keep"}},
	{name: "octet contains", script: rqF + `if header :contains :comparator "i;octet" "subject" "Lunch" { fileinto "a"; }`, want: []string{"fileinto a"}},
	{name: "envelope auth", script: "require [\"envelope\",\"fileinto\"];\n" + `if envelope :is "auth" "alice@example.com" { fileinto "authenticated"; }`,
		env: &Envelope{From: "alice@example.com", To: "bob@example.org", Auth: "alice@example.com"}, want: []string{"fileinto authenticated"}},
	{name: "envelope auth absent", script: "require [\"envelope\",\"fileinto\"];\n" + `if envelope :is "auth" "" { fileinto "a"; }`, want: []string{"implicit keep"}},
	{name: "ihave supported extension is usable in its block", script: "require [\"ihave\"];\nif ihave \"vacation\" { vacation :days 2 \"away\"; }",
		want: []string{`vacation days=2 subject="" from="" reason="away"`, "implicit keep"}},
	{name: "ihave unknown extension skips its block", script: "require [\"ihave\",\"fileinto\"];\nif ihave \"x-future\" { x_future_command :frob \"a\"; } else { fileinto \"fallback\"; }",
		want: []string{"fileinto fallback"}},
	{name: "ihave needs every capability", script: "require [\"ihave\",\"fileinto\"];\nif ihave [\"fileinto\", \"x-nope\"] { frob; } elsif ihave \"fileinto\" { fileinto \"has\"; }",
		want: []string{"fileinto has"}},
	{name: "ihave inside not", script: "require [\"ihave\",\"fileinto\"];\nif not ihave \"x-nope\" { fileinto \"missing\"; }", want: []string{"fileinto missing"}},
	{name: "error command", script: "require [\"ihave\",\"fileinto\"];\nfileinto \"a\";\nif not ihave \"x-nope\" { error \"needs x-nope\"; }", want: []string{"implicit keep"}, runErr: "line 3, column 25: the script stopped with an error: needs x-nope"},
	{name: "keep flags from variable", script: "require [\"imap4flags\",\"variables\"];\n" + `set "f" "\\Seen"; keep :flags "${f}";`, want: []string{"keep flags=\\Seen"}},
}

func bodyIf(rule string) string {
	return "require [\"body\",\"fileinto\"];\nif body " + rule + " { fileinto \"hit\"; }"
}

func sizeOf(m string) string { return strconv.Itoa(len(m)) }
