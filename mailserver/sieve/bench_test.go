package sieve

import (
	"strings"
	"testing"
)

// benchScript is 20 rules of the kinds mail clients write; none matches the benchmark
// message until the last, so every rule is evaluated.
const benchScript = `require ["fileinto","imap4flags","variables","regex","body","relational","comparator-i;ascii-numeric","envelope","subaddress","date"];
if header :contains "List-Id" "announce.example.org" { fileinto "Lists/announce"; stop; }
if header :contains "List-Id" "dev.example.org" { fileinto "Lists/dev"; stop; }
if address :is "from" ["boss@example.com", "ceo@example.com"] { addflag "\\Flagged"; }
if address :domain :is "from" "shop.example.net" { fileinto "Shopping"; stop; }
if header :contains "subject" ["viagra", "lottery", "winner"] { fileinto "Junk"; stop; }
if header :value "ge" :comparator "i;ascii-numeric" "X-Spam-Score" "10" { fileinto "Junk"; stop; }
if header :is "X-Spam-Flag" "YES" { fileinto "Junk"; stop; }
if envelope :detail "to" "bank" { fileinto "Bank"; stop; }
if header :matches "subject" "[*] *" { set "tag" "${1}"; }
if header :regex "subject" "^(re|fwd?): invoice [0-9]+$" { fileinto "Invoices"; stop; }
if anyof (header :contains "from" "github.com", header :contains "from" "gitlab.com") { fileinto "Code"; stop; }
if allof (address :localpart "to" "alerts", header :contains "subject" "CRITICAL") { addflag "\\Flagged"; }
if exists "X-Mailing-List" { fileinto "Lists/other"; stop; }
if size :over 5M { fileinto "Big"; stop; }
if header :contains "X-Original-To" "abuse@" { fileinto "Abuse"; stop; }
if address :all :contains ["to", "cc"] "newsletter@" { fileinto "News"; stop; }
if date :value "lt" :originalzone "date" "year" "2000" { fileinto "Old"; stop; }
if header :contains "Precedence" "bulk" { fileinto "Bulk"; stop; }
if body :text :contains "unsubscribe from this list" { fileinto "News"; stop; }
if header :contains "subject" "quarterly report" { fileinto "Reports"; }
`

func benchMessage() []byte {
	var b strings.Builder
	b.WriteString("Received: from mx.example.com by mail.example.org; Tue, 08 Dec 2026 21:12:03 +0100\r\n")
	b.WriteString("Date: Tue, 08 Dec 2026 21:12:01 +0100\r\nFrom: Alice <alice@example.com>\r\n")
	b.WriteString("To: bob@example.org, team@example.org\r\nCc: carol@example.org\r\n")
	b.WriteString("Subject: Quarterly report\r\nMessage-ID: <bench@example.com>\r\nX-Spam-Score: 2\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	line := "The numbers for the quarter are in; revenue is up and costs are down.\r\n"
	for b.Len() < 10*1024 {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// BenchmarkEvaluate measures one delivery's run of a 20-rule script on a 10 KB message,
// including reading the message header, as delivery will.
func BenchmarkEvaluate(b *testing.B) {
	s, err := Compile(benchScript)
	if err != nil {
		b.Fatal(err)
	}
	raw := benchMessage()
	env := Envelope{From: "alice@example.com", To: "bob@example.org"}
	res := s.Evaluate(ParseMessage(raw), env, testNow)
	if res.Err != nil || describe(res.Actions[0]) != "fileinto Reports" {
		b.Fatalf("unexpected result %q %v", describeAll(res.Actions), res.Err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		s.Evaluate(ParseMessage(raw), env, testNow)
	}
}
