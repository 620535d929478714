package builders

import (
	"errors"
	"strings"
	"testing"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// An internationalised MailDomain publishes its records under its A-labels; the DMARC report
// address becomes a mailto: URI DNS can carry.
func TestDNSRecordsOfAnInternationalisedDomain(t *testing.T) {
	md := testDomain("buecher", "bücher.example", 0)
	md.Spec.DMARC = mailv1alpha1.DMARCSpec{Policy: "reject", ReportAddress: "dmarc-berichte.jörg@bücher.example"}
	records, err := DNSRecords(&md, DNSContext{Hostname: "mail.example.com"}, ed25519TestKey(t).pem)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, r := range records {
		names[r.Purpose] = r.Name
		if strings.ContainsFunc(r.Name+r.Value, func(c rune) bool { return c >= 0x80 }) {
			t.Errorf("%s record is not ASCII: %s %s", r.Purpose, r.Name, r.Value)
		}
	}
	want := map[string]string{"mx": "xn--bcher-kva.example.", "spf": "xn--bcher-kva.example.",
		"dkim": "kubemail._domainkey.xn--bcher-kva.example.", "dmarc": "_dmarc.xn--bcher-kva.example."}
	for purpose, name := range want {
		if names[purpose] != name {
			t.Errorf("%s record named %q, want %q", purpose, names[purpose], name)
		}
	}
	if v := records[len(records)-1].Value; v != "v=DMARC1; p=reject; rua=mailto:dmarc-berichte.j%C3%B6rg@xn--bcher-kva.example" {
		t.Errorf("DMARC record %q", v)
	}

	// The API server accepts 63 letters in a label; as an A-label they are too long for DNS.
	long := testDomain("long", strings.Repeat("ü", 63)+".example", 0)
	var invalid InvalidDomainError
	if _, err := DNSRecords(&long, DNSContext{Hostname: "mail.example.com"}, nil); !errors.As(err, &invalid) {
		t.Errorf("a domain whose A-label is too long: %v, want an InvalidDomainError", err)
	}
}

// Domains and addresses are matched in the mail server's form: a U-label MailDomain serves an
// A-label address, two spellings of one address are one claim, and an address the server
// would refuse leaves only its own object out.
func TestDirectoryInternationalised(t *testing.T) {
	domains := []mailv1alpha1.MailDomain{testDomain("buecher", "bücher.example", 0),
		testDomain("long", strings.Repeat("ü", 63)+".example", 0)}
	joerg := testMailbox("joerg", "jörg@xn--bcher-kva.example", 1, "jörg.müller@bücher.example")
	twin := testMailbox("joerg2", "JÖRG@bücher.example", 2)
	bad := testMailbox("bad", "x@bücher.example", 3)
	bad.Mailbox.Spec.Forwarding = &mailv1alpha1.ForwardingSpec{To: []mailv1alpha1.EmailAddress{
		mailv1alpha1.EmailAddress("y@" + strings.Repeat("ü", 63) + ".example")}}
	res := Directory(domains, nil, []MailboxInput{joerg, twin, bad},
		[]mailv1alpha1.MailAlias{testAlias("alle", "alle@bücher.example", 4, "jörg@bücher.example", "søren@example.dk")})
	if servedMailbox(res, "jörg@xn--bcher-kva.example") == nil || servedAlias(res, "alle@bücher.example") == nil {
		t.Errorf("jörg's mailbox and the alias are not served: %+v, problems %v", res.Spec, res.Problems)
	}
	if p := res.Problems[ObjectKey("Mailbox", "joerg2")]; p.Reason != mailv1alpha1.ReasonAddressConflict {
		t.Errorf("JÖRG@bücher.example: %+v, want AddressConflict with jörg@xn--bcher-kva.example", p)
	}
	if p := res.Problems[ObjectKey("Mailbox", "bad")]; p.Reason != mailv1alpha1.ReasonInvalidSpec || !strings.Contains(p.Message, "cannot be served") {
		t.Errorf("a forwarding target with an over-long label: %+v, want InvalidSpec", p)
	}
	if len(res.Spec.Domains) != 1 || res.Spec.Domains[0].Name != "xn--bcher-kva.example" {
		t.Errorf("domains %+v, want only xn--bcher-kva.example", res.Spec.Domains)
	}
}
