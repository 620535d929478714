package builders

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
)

// TestOwnedSecretsGolden: every Secret and the cert-manager Certificate the operator creates,
// as the builders make them from fixed inputs.
func TestOwnedSecretsGolden(t *testing.T) {
	mc := fullCluster()
	mb := &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: "mail"},
		Spec: mailv1alpha1.MailboxSpec{Address: "alice@example.com"}}
	md := &mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com", Namespace: "mail"},
		Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com"}}
	withIssuer := fullCluster()
	withIssuer.Spec.TLS = &mailv1alpha1.TLSSpec{IssuerRef: &mailv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer"}}
	withAutoconfig := withIssuer.DeepCopy()
	withAutoconfig.Spec.Autoconfig = &mailv1alpha1.AutoconfigSpec{Enabled: true}
	objs := []ownedObject{
		{"Secret/self-signed TLS", SelfSignedTLSSecret(mc, []byte("CERT"), []byte("KEY"))},
		{"Secret/operator", OperatorSecret(mc, []byte("fingerprint-key-material"))},
		{"Secret/admin", AdminSecret(mc, []byte("admin-token"))},
		{"Secret/directory part", DirectorySecret(mc, dirsecret.Part{Name: "mail-directory-1", Data: map[string][]byte{"directory.json": []byte("{}")}})},
		{"Secret/generated password", CredentialsSecret(mb, "generated", "digest-of-generated")},
		{"Secret/password someone put there", CredentialsSecret(mb, "their-own", "")},
		{"Secret/DKIM key", DKIMSecret(md, []byte("PEM"))},
		{"Certificate", Certificate(withIssuer, []string{"example.org", "example.com"})},
		{"Certificate with autoconfig", Certificate(withAutoconfig, []string{"example.org", "example.com"})},
	}
	goldenObjects(t, "secrets.yaml", objs)
}

// The Secrets of a cluster carry its labels, so they are found (and cleaned up) with the rest.
func TestClusterSecretsCarryTheClusterLabels(t *testing.T) {
	mc := minimalCluster()
	for _, sec := range []*corev1.Secret{SelfSignedTLSSecret(mc, nil, nil), OperatorSecret(mc, nil), AdminSecret(mc, nil),
		DirectorySecret(mc, dirsecret.Part{Name: "x"})} {
		for k, v := range Labels(mc) {
			if sec.Labels[k] != v {
				t.Errorf("Secret %s: label %s=%q, want %q", sec.Name, k, sec.Labels[k], v)
			}
		}
		if sec.Namespace != mc.Namespace {
			t.Errorf("Secret %s in namespace %q", sec.Name, sec.Namespace)
		}
	}
}
