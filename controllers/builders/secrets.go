package builders

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/names"
)

// The Secrets the operator owns. Each builder takes the secret material as an argument: the
// reconcilers generate it once, when the live Secret lacks it, and keep it afterwards.

// SelfSignedTLSSecret holds the certificate a cluster serves when none is configured.
func SelfSignedTLSSecret(mc *mailv1alpha1.MailCluster, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, names.SelfSignedTLS(mc.Name)), Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
}

// ClusterCASecret holds the CA of the connections between a cluster's replicas; only the
// operator reads it, to issue ClusterTLSSecret.
func ClusterCASecret(mc *mailv1alpha1.MailCluster, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, names.ClusterCA(mc.Name)),
		Data: map[string][]byte{"ca.crt": certPEM, "ca.key": keyPEM}}
}

// ClusterTLSSecret holds the certificate every replica presents to the others, and the CA,
// the only one they trust there.
func ClusterTLSSecret(mc *mailv1alpha1.MailCluster, certPEM, keyPEM, caPEM []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, names.ClusterTLS(mc.Name)), Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": caPEM}}
}

// OperatorSecret holds the key of the password fingerprints, which the servers never see.
func OperatorSecret(mc *mailv1alpha1.MailCluster, fingerprintKey []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, names.OperatorSecret(mc.Name)),
		Data: map[string][]byte{names.OperatorFingerprintKey: fingerprintKey}}
}

// AdminSecret holds the token the operator presents to the servers' admin endpoints.
func AdminSecret(mc *mailv1alpha1.MailCluster, token []byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, names.AdminSecret(mc.Name)),
		Data: map[string][]byte{names.AdminTokenKey: token}}
}

// DirectorySecret is one part of a cluster's directory.
func DirectorySecret(mc *mailv1alpha1.MailCluster, part dirsecret.Part) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: objectMeta(mc, part.Name), Data: part.Data}
}

// CredentialsSecret holds a Mailbox's generated password; the annotation records its digest
// (when digest is not empty), so the operator can tell its own random password from one put in
// its place.
func CredentialsSecret(mb *mailv1alpha1.Mailbox, password, digest string) *corev1.Secret {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: names.CredentialsSecret(mb.Name), Namespace: mb.Namespace,
			Labels: map[string]string{names.LabelManagedBy: names.ManagedBy}},
		Data: map[string][]byte{names.PasswordKey: []byte(password), names.UsernameKey: []byte(mb.Spec.Address)},
	}
	if digest != "" {
		sec.Annotations = map[string]string{names.AnnotationGeneratedPasswordSHA256: digest}
	}
	return sec
}

// DKIMSecret holds a MailDomain's signing key (PKCS#8 PEM).
func DKIMSecret(md *mailv1alpha1.MailDomain, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: names.DKIMSecret(md.Name), Namespace: md.Namespace,
			Labels: map[string]string{names.LabelManagedBy: names.ManagedBy}},
		Data: map[string][]byte{names.DKIMPrivateKeyKey: keyPEM},
	}
}

// CertificateGVK is cert-manager's Certificate, which the operator only knows as unstructured
// data so that it runs without cert-manager installed.
var CertificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// Certificate asks cert-manager, through the issuer in spec.tls.issuerRef, for the cluster's
// certificate in the Secret names.IssuedTLS: for its hostname and, when it serves client
// autoconfiguration, the autoconfig., autodiscover. and mta-sts. names of its domains.
func Certificate(mc *mailv1alpha1.MailCluster, domains []string) *unstructured.Unstructured {
	ref := mc.Spec.TLS.IssuerRef
	name := names.IssuedTLS(mc.Name)
	kind, group := ref.Kind, ref.Group
	if kind == "" {
		kind = "Issuer"
	}
	if group == "" {
		group = "cert-manager.io"
	}
	cert := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"secretName": name,
		"dnsNames":   certificateNames(mc, domains),
		"issuerRef":  map[string]any{"name": ref.Name, "kind": kind, "group": group},
		"usages":     []any{"server auth", "digital signature", "key encipherment"},
		// The Secret carries the cluster's labels, so it is easy to find with the rest.
		"secretTemplate": map[string]any{"labels": toAny(Labels(mc))},
	}}}
	cert.SetGroupVersionKind(CertificateGVK)
	cert.SetName(name)
	cert.SetNamespace(mc.Namespace)
	cert.SetLabels(Labels(mc))
	return cert
}

func certificateNames(mc *mailv1alpha1.MailCluster, domains []string) []any {
	out := []any{string(mc.Spec.Hostname)}
	if autoconfigEnabled(mc) {
		for _, d := range slices.Sorted(slices.Values(domains)) {
			out = append(out, "autoconfig."+d, "autodiscover."+d, "mta-sts."+d)
		}
	}
	return out
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
