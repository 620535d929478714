package sieve

import "strings"

// RFC 5228 (section 9 and the examples of sections 2 to 5) and RFC 5230.
var rfcCases = []evalCase{
	{name: "5228 s9 extended example: list mail to filter", msg: msgList, script: rfc5228s9,
		want: []string{"fileinto filter"}},
	{name: "5228 s9 extended example: company mail kept", script: rfc5228s9,
		msg: msg("hi\n", "From: boss@example.com", "To: me@example.com", "Subject: hi"), want: []string{"keep"}},
	{name: "5228 s9 extended example: spam by subject", script: rfc5228s9,
		msg: msg("x\n", "From: x@spam.example", "To: me@example.net", "Subject: MAKE MONEY FAST now"), want: []string{"fileinto spam"}},
	{name: "5228 s9 extended example: not to me", script: rfc5228s9,
		msg: msg("x\n", "From: x@other.example", "To: you@example.net", "Subject: hello"), want: []string{"fileinto spam"}},
	{name: "5228 s9 extended example: personal", script: rfc5228s9,
		msg: msg("x\n", "From: x@other.example", "To: me@example.com.au", "Cc: me@example.com", "Subject: hello"), want: []string{"fileinto personal"}},
	{name: "5228 s2.10.6 discard coyote", script: rfc5228s3_1,
		msg: msg("x\n", "From: Wile E. Coyote <coyote@desert.example.org>", "Subject: hi"), want: []string{"discard"}},
	{name: "5228 s3.1 dollar subject discarded", script: rfc5228s3_1,
		msg: msg("x\n", "From: a@example.com", "Subject: earn $$$ now"), want: []string{"discard"}},
	{name: "5228 s3.1 else files into INBOX", script: rfc5228s3_1, want: []string{"fileinto INBOX"}},
	{name: "5228 s3.2 require fileinto", script: "require \"fileinto\";\nif header :contains [\"from\"] \"coyote\" {\n  fileinto \"INBOX.harassment\";\n}",
		msg: msg("x\n", "From: coyote@desert.example.org"), want: []string{"fileinto INBOX.harassment"}},
	{name: "5228 s3.3 stop before discard", script: "if true { stop; }\ndiscard;", want: []string{"implicit keep"}},
	{name: "5228 s4.2 redirect", script: `redirect "bart@example.com";`, want: []string{"redirect bart@example.com"}},
	{name: "5228 s4.3 keep under 1M", script: "if size :under 1M { keep; } else { discard; }", want: []string{"keep"}},
	{name: "5228 s4.3 discard over 1M", script: "if size :under 1M { keep; } else { discard; }",
		msg: msg(strings.Repeat("y", 1100*1024), "From: x@example.com"), want: []string{"discard"}},
	{name: "5228 s4.4 discard idiot", script: `if header :contains ["from"] ["idiot@example.com"] { discard; }`,
		msg: msg("x\n", "From: The Idiot <idiot@example.com>"), want: []string{"discard"}},
	{name: "5228 s5.1 address :is :all", script: `if address :is :all "from" "tim@example.com" { discard; }`,
		msg: msg("x\n", "From: Tim <TIM@example.com>"), want: []string{"discard"}},
	{name: "5228 s5.2 allof both true", script: `if allof (header :contains "From" "Cooper", header :contains "To" "Bob") { discard; }`,
		want: []string{"discard"}},
	{name: "5228 s5.2 allof one false", script: `if allof (header :contains "From" "Cooper", header :contains "To" "Xander") { discard; }`,
		want: []string{"implicit keep"}},
	{name: "5228 s5.3 anyof", script: `require "fileinto"; if anyof (header :contains "From" "Nobody", header :contains "To" "carol") { fileinto "either"; }`,
		want: []string{"fileinto either"}},
	{name: "5228 s5.4 envelope from", script: `require "envelope"; if envelope :all :is "from" "tim@example.com" { discard; }`,
		env: &Envelope{From: "tim@example.com", To: "bob@example.org"}, want: []string{"discard"}},
	{name: "5228 s5.5 exists both", script: `if not exists ["From","Date"] { discard; }`, want: []string{"implicit keep"}},
	{name: "5228 s5.5 exists one missing", script: `if not exists ["From","X-Nope"] { discard; }`, want: []string{"discard"}},
	{name: "5228 s5.7 header caffeine empty", script: `if header :is ["X-Caffeine"] [""] { discard; }`,
		msg: msg("x\n", "From: a@example.com", "X-Caffeine: "), want: []string{"discard"}},
	{name: "5228 s5.7 header :contains", script: `if header :contains ["From", "To"] "tim@example.com" { discard; }`,
		msg: msg("x\n", "From: a@example.com", "To: Tim <tim@example.com>"), want: []string{"discard"}},
	{name: "5228 s5.9 size over 500K", script: "if size :over 500K { discard; }", msg: msgBig, want: []string{"discard"}},
	{name: "5228 s5.9 size under 500K kept", script: "if size :over 500K { discard; }", want: []string{"implicit keep"}},
	{name: "5228 s2.7.3 comparator octet is case sensitive", script: `if header :is :comparator "i;octet" "Subject" "lunch tomorrow?" { discard; }`,
		want: []string{"implicit keep"}},
	{name: "5228 s2.4.2 multi-line reject", script: "require \"reject\";\nreject text:\nGo away.\n..dotted\n.\n;",
		want: []string{"reject Go away.\r\n.dotted\r\n"}},
	{name: "5228 s2.10.3 fileinto twice stores once", script: "require \"fileinto\";\nfileinto \"A\"; fileinto \"A\"; keep; keep;",
		want: []string{"fileinto A", "keep"}},

	{name: "5230 s1 cyrus subject", script: rfc5230s1,
		msg: msg("x\n", "From: a@example.com", "Subject: cyrus crash"), want: []string{`vacation days=7 subject="" from="" reason="I'm out -- send mail to cyrus-bugs"`, "implicit keep"}},
	{name: "5230 s1 other subject", script: rfc5230s1,
		want: []string{`vacation days=7 subject="" from="" reason="I'm out -- call me at 321-1234"`, "implicit keep"}},
	{name: "5230 s4.1 days and addresses", script: "require \"vacation\";\nvacation :days 23 :addresses [\"tjs@example.edu\",\n \"ts4z@landru.example.edu\"]\n\"I'm away until October 19.\nIf it's an emergency, call 911, I guess.\" ;",
		want: []string{`vacation days=23 subject="" from="" reason="I'm away until October 19.\nIf it's an emergency, call 911, I guess." addresses=tjs@example.edu,ts4z@landru.example.edu`, "implicit keep"}},
	{name: "5230 s4.1 boss redirected", script: rfc5230boss,
		msg: msg("x\n", "From: The Boss <boss@example.edu>"), want: []string{"redirect pleeb@isp.example.org"}},
	{name: "5230 s4.1 others get vacation", script: rfc5230boss,
		want: []string{`vacation days=7 subject="" from="" reason="Sorry, I'm away, I'll read your message later."`, "implicit keep"}},
	{name: "5230 s4.2 handle", script: rfc5230handle,
		msg: msg("x\n", "From: a@example.com", "Subject: lunch?"), want: []string{`vacation days=7 subject="" from="" reason="I'm out and can't meet for lunch" handle="ran-away"`, "implicit keep"}},
	{name: "5230 s4.3 subject and from", script: "require \"vacation\";\nvacation :days 7\n  :from \"hemberger@example.com\" :subject \"Gone fishing\"\n  \"Having lots of fun! Back in a day or two!\";",
		want: []string{`vacation days=7 subject="Gone fishing" from="hemberger@example.com" reason="Having lots of fun! Back in a day or two!"`, "implicit keep"}},
	{name: "5230 s4.4 mime", script: rfc5230mime,
		want: []string{`vacation days=7 subject="" from="" reason="Content-Type: multipart/alternative; boundary=foo\r\n\r\n--foo\r\n\r\nI'm at the beach relaxing.  Mmmm, surf...\r\n\r\n--foo--\r\n" mime`, "implicit keep"}},
	{name: "5230 s4.6 subject with variable", script: "require [\"vacation\", \"variables\"];\nif header :matches \"subject\" \"*\" {\n  vacation :subject \"Automatic response to: ${1}\" \"I'm away\";\n}",
		want: []string{`vacation days=7 subject="Automatic response to: Lunch tomorrow?" from="" reason="I'm away"`, "implicit keep"}},
}

const rfc5228s9 = `#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
`

const rfc5228s3_1 = `require "fileinto";
if header :contains "from" "coyote" {
    discard;
} elsif header :contains ["subject"] ["$$$"] {
    discard;
} else {
    fileinto "INBOX";
}`

const rfc5230s1 = `require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at 321-1234";
}`

const rfc5230boss = `require "vacation";
if header :contains "from" "boss@example.edu" {
    redirect "pleeb@isp.example.org";
} else {
    vacation "Sorry, I'm away, I'll read your message later.";
}`

const rfc5230handle = `require "vacation";
if header :contains "subject" "lunch" {
    vacation :handle "ran-away" "I'm out and can't meet for lunch";
} else {
    vacation :handle "ran-away" "I'm out";
}`

const rfc5230mime = `require "vacation";
vacation :mime text:
Content-Type: multipart/alternative; boundary=foo

--foo

I'm at the beach relaxing.  Mmmm, surf...

--foo--
.
;`
