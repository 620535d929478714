package sieve

import "strings"

// Scripts as Roundcube's managesieve plugin and Thunderbird's sieve add-on write them for
// their common rules: the "# rule:[name]" comments, tab indents and braces on their own line.
var clientCases = []evalCase{
	{name: "roundcube fileinto by from", script: rcFromRule, msg: msgNews, want: []string{"fileinto Newsletters"}},
	{name: "roundcube fileinto by from, no match", script: rcFromRule, want: []string{"implicit keep"}},
	{name: "roundcube fileinto by subject and stop", script: "require [\"fileinto\"];\n# rule:[Lists]\nif header :contains \"subject\" \"[dev]\"\n{\n\tfileinto \"Lists/dev\";\n\tstop;\n}\n# rule:[never]\nif true\n{\n\tdiscard;\n}\n",
		msg: msgList, want: []string{"fileinto Lists/dev"}},
	{name: "roundcube fileinto :copy", script: "require [\"copy\",\"fileinto\"];\n# rule:[archive]\nif address :is \"from\" \"alice@example.com\"\n{\n\tfileinto :copy \"Archive\";\n}\n",
		want: []string{"fileinto Archive :copy", "implicit keep"}},
	{name: "roundcube mark as read", script: "require [\"imap4flags\"];\n# rule:[read]\nif header :contains \"from\" \"news@\"\n{\n\taddflag \"\\\\Seen\";\n}\n",
		msg: msgNews, want: []string{"implicit keep flags=\\Seen"}},
	{name: "roundcube mark flagged and file", script: "require [\"fileinto\",\"imap4flags\"];\n# rule:[vip]\nif address :is \"from\" \"alice@example.com\"\n{\n\taddflag \"\\\\Flagged\";\n\tfileinto \"VIP\";\n}\n",
		want: []string{"fileinto VIP flags=\\Flagged"}},
	{name: "roundcube setflag then keep", script: "require [\"imap4flags\"];\n# rule:[flag]\nif true\n{\n\tsetflag \"\\\\Seen \\\\Flagged\";\n\tkeep;\n}\n",
		want: []string{"keep flags=\\Seen,\\Flagged"}},
	{name: "roundcube discard spam", script: "# rule:[spam]\nif header :contains \"x-spam-flag\" \"YES\"\n{\n\tdiscard;\n\tstop;\n}\n",
		msg: msgNews, want: []string{"discard"}},
	{name: "roundcube redirect", script: "# rule:[forward]\nif true\n{\n\tredirect \"bob@elsewhere.example\";\n}\n",
		want: []string{"redirect bob@elsewhere.example"}},
	{name: "roundcube redirect :copy", script: "require [\"copy\"];\n# rule:[forward copy]\nif true\n{\n\tredirect :copy \"bob@elsewhere.example\";\n}\n",
		want: []string{"redirect bob@elsewhere.example :copy", "implicit keep"}},
	{name: "roundcube reject", script: "require [\"reject\"];\n# rule:[reject]\nif header :contains \"from\" \"shop.example.com\"\n{\n\treject text:\nNo thanks.\n.\n;\n}\n",
		msg: msgNews, want: []string{"reject No thanks.\r\n"}},
	{name: "roundcube ereject", script: "require [\"ereject\"];\n# rule:[ereject]\nif true\n{\n\tereject \"no\";\n}\n",
		want: []string{"ereject no"}},
	{name: "roundcube allof from and subject", script: "require [\"fileinto\"];\n# rule:[both]\nif allof (header :contains \"from\" \"alice\", header :contains \"subject\" \"lunch\")\n{\n\tfileinto \"Lunch\";\n}\n",
		want: []string{"fileinto Lunch"}},
	{name: "roundcube anyof", script: "require [\"fileinto\"];\n# rule:[any]\nif anyof (header :contains \"from\" \"nobody\", header :is \"subject\" \"Rechnung\")\n{\n\tfileinto \"Bills\";\n}\n",
		msg: msgMIME, want: []string{"fileinto Bills"}},
	{name: "roundcube not contains", script: "require [\"fileinto\"];\n# rule:[not]\nif not header :contains \"subject\" \"lunch\"\n{\n\tfileinto \"Other\";\n}\n",
		msg: msgList, want: []string{"fileinto Other"}},
	{name: "roundcube exists list-id", script: "require [\"fileinto\"];\n# rule:[lists]\nif exists \"list-id\"\n{\n\tfileinto \"Lists\";\n}\n",
		msg: msgList, want: []string{"fileinto Lists"}},
	{name: "roundcube size over", script: "require [\"fileinto\"];\n# rule:[big]\nif size :over 100K\n{\n\tfileinto \"Big\";\n}\n",
		msg: msgBig, want: []string{"fileinto Big"}},
	{name: "roundcube regex header", script: "require [\"fileinto\",\"regex\"];\n# rule:[re]\nif header :regex \"subject\" \"^\\\\[dev\\\\]\"\n{\n\tfileinto \"Dev\";\n}\n",
		msg: msgList, want: []string{"fileinto Dev"}},
	{name: "roundcube vacation", script: rcVacation,
		want: []string{`vacation days=7 subject="Out of office" from="bob@example.org" reason="I am away until Monday." addresses=bob@example.org`, "implicit keep"}},
	{name: "roundcube vacation in range", script: rcVacationRange,
		want: []string{`vacation days=1 subject="Away" from="\"Bob\" <bob@example.org>" reason="I'm away"`, "implicit keep"}},
	{name: "roundcube vacation out of range", script: strings.Replace(rcVacationRange, "2026-12-31", "2026-12-08", 1),
		want: []string{"implicit keep"}},
	{name: "roundcube vacation with discard", script: "require [\"vacation\"];\n# rule:[away]\nif true\n{\n\tvacation :days 3 \"gone\";\n\tdiscard;\n}\n",
		want: []string{`vacation days=3 subject="" from="" reason="gone"`, "discard"}},
	{name: "roundcube date header weekday", script: "require [\"date\",\"relational\",\"fileinto\"];\n# rule:[weekend]\nif date :value \"eq\" :originalzone \"date\" \"weekday\" \"0\"\n{\n\tfileinto \"Weekend\";\n}\n",
		msg: msgNews, want: []string{"fileinto Weekend"}},
	{name: "roundcube body contains", script: "require [\"body\",\"fileinto\"];\n# rule:[body]\nif body :text :contains \"unsubscribe\"\n{\n\tfileinto \"Ads\";\n}\n",
		msg: msgNews, want: []string{"fileinto Ads"}},
	{name: "roundcube envelope to detail", script: "require [\"envelope\",\"subaddress\",\"fileinto\"];\n# rule:[plus]\nif envelope :detail \"to\" \"lists\"\n{\n\tfileinto \"Plus\";\n}\n",
		env: &Envelope{From: "a@example.com", To: "carol+lists@example.org"}, want: []string{"fileinto Plus"}},
	{name: "roundcube spam score numeric", script: "require [\"relational\",\"comparator-i;ascii-numeric\",\"fileinto\"];\n# rule:[score]\nif header :value \"ge\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"5\"\n{\n\tfileinto \"Junk\";\n}\n",
		want: []string{"fileinto Junk"}},

	{name: "thunderbird move list", script: "require [\"fileinto\"];\n\n# rule:[Move list]\nif header :contains \"List-Id\" \"dev.lists.example.org\"\n{\n  fileinto \"INBOX.dev\";\n}\n",
		msg: msgList, want: []string{"fileinto INBOX.dev"}},
	{name: "thunderbird address comparator", script: "require [\"fileinto\"];\n\nif address :all :comparator \"i;ascii-casemap\" :contains \"From\" \"ALICE@\"\n{\n  fileinto \"Alice\";\n}\n",
		want: []string{"fileinto Alice"}},
	{name: "thunderbird mark read and file", script: "require [\"fileinto\", \"imap4flags\"];\n\nif header :contains \"Subject\" \"digest\"\n{\n  addflag \"\\\\Seen\";\n  fileinto \"Digests\";\n  stop;\n}\n",
		msg: msgList, want: []string{"fileinto Digests flags=\\Seen"}},
	{name: "thunderbird fileinto flags tag", script: "require [\"fileinto\", \"imap4flags\"];\nif header :contains \"Subject\" \"digest\" { fileinto :flags [\"\\\\Seen\", \"$label1\"] \"Digests\"; }\n",
		msg: msgList, want: []string{"fileinto Digests flags=\\Seen,$label1"}},
	{name: "thunderbird vacation", script: "require [\"vacation\"];\n\nvacation\n  :days 5\n  :subject \"Away\"\n  :addresses [\"bob@example.org\", \"b@example.org\"]\n\"I'm out of the office.\";\n",
		want: []string{`vacation days=5 subject="Away" from="" reason="I'm out of the office." addresses=bob@example.org,b@example.org`, "implicit keep"}},
	{name: "thunderbird discard by from", script: "if address :is \"from\" \"spammer@bad.example\"\n{\n  discard;\n}\n",
		msg: msg("x\n", "From: <spammer@bad.example>"), want: []string{"discard"}},
	{name: "thunderbird redirect then keep", script: "redirect \"other@example.net\";\nkeep;\n",
		want: []string{"redirect other@example.net", "keep"}},
}

const rcFromRule = "require [\"fileinto\"];\n# rule:[Newsletters]\nif header :contains \"from\" \"news@shop.example.com\"\n{\n\tfileinto \"Newsletters\";\n}\n"

const rcVacation = "require [\"vacation\"];\n# rule:[vacation]\nif true\n{\n\tvacation :days 7 :subject \"Out of office\" :from \"bob@example.org\" :addresses [\"bob@example.org\"] \"I am away until Monday.\";\n}\n"

const rcVacationRange = "require [\"date\",\"relational\",\"vacation\"];\n# rule:[Out of office]\nif allof (currentdate :value \"ge\" \"iso8601\" \"2026-12-01T00:00:00+00:00\", currentdate :value \"le\" \"iso8601\" \"2026-12-31T23:59:59+00:00\")\n{\n\tvacation :days 1 :subject \"Away\" :from \"\\\"Bob\\\" <bob@example.org>\" \"I'm away\";\n}\n"
