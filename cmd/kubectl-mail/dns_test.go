package main

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// Every zone line the plugin prints parses as the record it describes, and the resolver's
// answer for that record reads back as the same data, so --check compares like with like.
func TestZoneLinesParseAndMatchTheirAnswers(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 400)
	for _, r := range []mailv1alpha1.DNSRecord{
		{Type: "MX", Name: "example.com.", Priority: ptr.To(int32(20)), Value: "mail.example.com."},
		{Type: "A", Name: "mail.example.com.", Value: "192.0.2.1"},
		{Type: "AAAA", Name: "mail.example.com.", Value: "2001:db8::1"},
		{Type: "PTR", Name: "1.2.0.192.in-addr.arpa.", Value: "mail.example.com."},
		{Type: "SRV", Name: "_imaps._tcp.example.com.", Priority: ptr.To(int32(0)), Value: "1 993 mail.example.com."},
		{Type: "CNAME", Name: "autoconfig.example.com.", Value: "mail.example.com."},
		{Type: "TXT", Name: "example.com.", Value: `v=spf1 mx "quoted" \back -all`},
		{Type: "TXT", Name: "_dmarc.example.com.", Value: "v=DMARC1; p=none; rua=mailto:j%C3%B6rg@example.com; x=\u00e9"},
		{Type: "TXT", Name: "sel._domainkey.example.com.", Value: long},
	} {
		line := zoneLine(r, 300)
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Errorf("%s record: zone line %q does not parse: %v", r.Type, line, err)
			continue
		}
		if got, want := rrData(rr), zoneValue(r); !contains([]string{got}, want, r.Type) {
			t.Errorf("%s record: the answer reads back as %q, want %q", r.Type, got, want)
		}
		if txt, ok := rr.(*dns.TXT); ok {
			var whole string
			for _, part := range txt.Txt {
				whole += unescapeTXT(part)
			}
			if whole != r.Value {
				t.Errorf("TXT record: the zone line holds %q, want %q", whole, r.Value)
			}
		}
	}
}
