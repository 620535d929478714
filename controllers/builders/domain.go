package builders

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

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

// DNSRecords are the records a domain's owner publishes: MX to the cluster's hostname, SPF
// allowing the MX hosts, the DKIM key (when there is one) and DMARC.
func DNSRecords(md *mailv1alpha1.MailDomain, hostname string, dkimPrivateKeyPEM []byte) ([]mailv1alpha1.DNSRecord, error) {
	domain := string(md.Spec.Domain)
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
		dmarc += "; rua=mailto:" + string(md.Spec.DMARC.ReportAddress)
	}
	records = append(records, mailv1alpha1.DNSRecord{Purpose: "dmarc", Type: "TXT", Name: "_dmarc." + domain + ".", Value: dmarc})
	return records, nil
}
