package builders

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// InvalidDomainError is a MailDomain's domain that the API server accepted but that is not a
// valid (internationalised) domain name, such as a U-label IDNA2008 does not allow or one
// whose A-label is longer than 63 octets.
type InvalidDomainError struct {
	Domain string
	Err    error
}

func (e InvalidDomainError) Error() string {
	return fmt.Sprintf("domain %q cannot be served: %v", e.Domain, e.Err)
}

// DKIMPublicRecord returns the p= value of a DKIM key record for a PEM (PKCS#8) private key:
// the SubjectPublicKeyInfo for RSA (RFC 6376), the raw 32-byte key for Ed25519 (RFC 8463).
func DKIMPublicRecord(privateKeyPEM []byte) (keyType, p string, err error) {
	block, _ := pem.Decode(privateKeyPEM)
	if block == nil {
		return "", "", errors.New("DKIM key: no PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", "", fmt.Errorf("DKIM key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			return "", "", err
		}
		return "rsa", base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PrivateKey:
		return "ed25519", base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)), nil
	default:
		return "", "", fmt.Errorf("DKIM key: unsupported key type %T", key)
	}
}

// DomainKey is a domain name in the form the operator matches domains and addresses by, the
// mail server's: lowercase A-labels (bücher.example is xn--bcher-kva.example). A name that is
// not a valid domain is returned lowercased; the MailDomain then reports it (InvalidSpec).
func DomainKey(name string) string {
	if n, err := dirspec.NormalizeDomain(name); err == nil {
		return n
	}
	return strings.ToLower(name)
}

// DomainDisplay quotes a domain for messages, in U-labels with the A-labels after them when
// they differ: "bücher.example" (xn--bcher-kva.example).
func DomainDisplay(name string) string {
	key := DomainKey(name)
	if u := dirspec.DomainToUnicode(key); u != key {
		return fmt.Sprintf("%q (%s)", u, key)
	}
	return fmt.Sprintf("%q", name)
}

// mailtoURI is a mailto: URI for an address (RFC 6068): the domain in A-labels, and UTF-8 in
// the local part percent-encoded.
func mailtoURI(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "mailto:" + addr
	}
	var local strings.Builder
	for i := 0; i < at; i++ {
		if c := addr[i]; c >= 0x80 || strings.IndexByte("%!;,", c) >= 0 {
			fmt.Fprintf(&local, "%%%02X", c)
		} else {
			local.WriteByte(c)
		}
	}
	return "mailto:" + local.String() + "@" + DomainKey(addr[at+1:])
}

// DNSContext is what the records of a domain depend on besides the MailDomain: its cluster's
// hostname, the smarthost outbound mail leaves through (if any), and the external addresses of
// the cluster's client Service once it has them.
type DNSContext struct {
	Hostname  string
	RelayHost string
	Addresses []string
	// Autoconfig: the cluster serves client autoconfiguration and MTA-STS (spec.autoconfig).
	Autoconfig bool
}

// DNSRecords are the records a domain's owner publishes: MX to the cluster's hostname, the
// hostname's A/AAAA and PTR once the Service has an address, SPF allowing the hosts mail leaves
// from, the DKIM key (when there is one) and DMARC.
//
// Names are in A-labels, the only form DNS has, whichever form the MailDomain uses.
func DNSRecords(md *mailv1alpha1.MailDomain, dc DNSContext, dkimPrivateKeyPEM []byte) ([]mailv1alpha1.DNSRecord, error) {
	domain, err := dirspec.NormalizeDomain(string(md.Spec.Domain))
	if err != nil {
		return nil, InvalidDomainError{Domain: string(md.Spec.Domain), Err: err}
	}
	host := dc.Hostname + "."
	records := []mailv1alpha1.DNSRecord{{Purpose: "mx", Type: "MX", Name: domain + ".", Priority: ptr.To(int32(10)), Value: host}}
	records = append(records, hostRecords(dc)...)
	spf := mailv1alpha1.DNSRecord{Purpose: "spf", Type: "TXT", Name: domain + ".", Value: "v=spf1 mx -all",
		Note: "allows the MX host's addresses; if mail leaves the cluster from another address (a NAT gateway), add ip4:/ip6: terms for it"}
	if dc.RelayHost != "" {
		spf.Value = "v=spf1 a:" + dc.RelayHost + " -all"
		spf.Note = "outbound mail leaves through the smarthost " + dc.RelayHost + "; if its provider documents an SPF include, use that instead of a:"
	}
	records = append(records, spf)
	if len(dkimPrivateKeyPEM) > 0 {
		kt, p, err := DKIMPublicRecord(dkimPrivateKeyPEM)
		if err != nil {
			return nil, err
		}
		records = append(records, mailv1alpha1.DNSRecord{Purpose: "dkim", Type: "TXT",
			Name: md.Spec.DKIM.Selector + "._domainkey." + domain + ".", Value: "v=DKIM1; k=" + kt + "; p=" + p})
	}
	dmarc := "v=DMARC1; p=" + md.Spec.DMARC.Policy
	if md.Spec.DMARC.Policy == "" {
		dmarc = "v=DMARC1; p=none"
	}
	if md.Spec.DMARC.ReportAddress != "" {
		dmarc += "; rua=" + mailtoURI(string(md.Spec.DMARC.ReportAddress))
	}
	records = append(records, mailv1alpha1.DNSRecord{Purpose: "dmarc", Type: "TXT", Name: "_dmarc." + domain + ".", Value: dmarc})
	if dc.Autoconfig {
		records = append(records, clientRecords(domain, dc.Hostname, md.Spec.MTASTS.Mode)...)
	}
	return records, nil
}

// MTASTSMaxAge is how long senders may cache a domain's MTA-STS policy: the mail server's
// default max_age, which the policy id covers.
const MTASTSMaxAge = 604800

// clientRecords are the records that let mail clients find the cluster (RFC 6186/8314 SRV, the
// autoconfig and autodiscover names) and senders its MTA-STS policy (RFC 8461): the names point
// at the cluster's hostname, whose Service serves them on port 443.
func clientRecords(domain, hostname, mtaSTSMode string) []mailv1alpha1.DNSRecord {
	host := hostname + "."
	srv := func(service string, port int) mailv1alpha1.DNSRecord {
		return mailv1alpha1.DNSRecord{Purpose: "srv", Type: "SRV", Name: service + "._tcp." + domain + ".", Priority: ptr.To(int32(0)),
			Value: fmt.Sprintf("1 %d %s", port, host)}
	}
	cname := func(purpose, label string) mailv1alpha1.DNSRecord {
		return mailv1alpha1.DNSRecord{Purpose: purpose, Type: "CNAME", Name: label + "." + domain + ".", Value: host}
	}
	if mtaSTSMode == "" {
		mtaSTSMode = "testing"
	}
	// The id changes whenever the policy does, which is what makes senders fetch it again.
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%d", mtaSTSMode, hostname, MTASTSMaxAge)))
	return []mailv1alpha1.DNSRecord{
		srv("_imaps", 993), srv("_pop3s", 995), srv("_submissions", 465), srv("_submission", 587), srv("_autodiscover", 443),
		cname("autoconfig", "autoconfig"), cname("autoconfig", "autodiscover"), cname("mta-sts", "mta-sts"),
		{Purpose: "mta-sts", Type: "TXT", Name: "_mta-sts." + domain + ".", Value: "v=STSv1; id=" + hex.EncodeToString(sum[:10]),
			Note: "policy mode " + mtaSTSMode + " (MailDomain spec.mtaSTS.mode), served at https://mta-sts." + domain + "/.well-known/mta-sts.txt"},
	}
}

// hostRecords are the A/AAAA records of the cluster's hostname and the PTR records its
// addresses need, for the addresses the client Service has.
func hostRecords(dc DNSContext) []mailv1alpha1.DNSRecord {
	var out []mailv1alpha1.DNSRecord
	for _, a := range dc.Addresses {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue // a load balancer known by name: it has its own records
		}
		typ := "A"
		if ip.Is6() && !ip.Is4In6() {
			typ = "AAAA"
		}
		out = append(out, mailv1alpha1.DNSRecord{Purpose: "host", Type: typ, Name: dc.Hostname + ".", Value: ip.String()})
		out = append(out, mailv1alpha1.DNSRecord{Purpose: "ptr", Type: "PTR", Name: reverseName(ip), Value: dc.Hostname + ".",
			Note: "reverse DNS is set by whoever owns the address (your cloud or hosting provider); large receivers refuse mail " +
				"from addresses whose PTR does not name the sending host. Mail leaving from another address needs the same"})
	}
	return out
}

// reverseName is the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		v := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.in-addr.arpa.", v[3], v[2], v[1], v[0])
		return b.String()
	}
	v := ip.As16()
	const hex = "0123456789abcdef"
	for i := len(v) - 1; i >= 0; i-- {
		b.WriteByte(hex[v[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[v[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}
