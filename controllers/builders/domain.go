package builders

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/mailserver/directory"
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
	if n, err := directory.NormalizeDomain(name); err == nil {
		return n
	}
	return strings.ToLower(name)
}

// DomainDisplay quotes a domain for messages, in U-labels with the A-labels after them when
// they differ: "bücher.example" (xn--bcher-kva.example).
func DomainDisplay(name string) string {
	key := DomainKey(name)
	if u := directory.DomainToUnicode(key); u != key {
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

// DNSRecords are the records a domain's owner publishes: MX to the cluster's hostname, SPF
// allowing the MX hosts, the DKIM key (when there is one) and DMARC. Names are in A-labels, the
// only form DNS has, whichever form the MailDomain uses.
func DNSRecords(md *mailv1alpha1.MailDomain, hostname string, dkimPrivateKeyPEM []byte) ([]mailv1alpha1.DNSRecord, error) {
	domain, err := directory.NormalizeDomain(string(md.Spec.Domain))
	if err != nil {
		return nil, InvalidDomainError{Domain: string(md.Spec.Domain), Err: err}
	}
	records := []mailv1alpha1.DNSRecord{
		{Purpose: "mx", Type: "MX", Name: domain + ".", Priority: ptr.To(int32(10)), Value: hostname + "."},
		{Purpose: "spf", Type: "TXT", Name: domain + ".", Value: "v=spf1 mx -all"},
	}
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
	return records, nil
}
