package operator_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/test/testenv"
)

// certificateCRD stands in for cert-manager's CRD, which the test API server does not have:
// enough for the server to store cert-manager.io/v1 Certificates, not a check of their fields.
const certificateCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: certificates.cert-manager.io
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// issuerRef is the scenario of TestIssuerRef: one namespace on an API server with the operator
// running, where the steps create clusters and play cert-manager's part.
type issuerRef struct {
	t   *testing.T
	c   client.Client
	ctx context.Context
	ns  string
}

// TestIssuerRef: a cluster with spec.tls.issuerRef gets a cert-manager Certificate for its
// hostname and serves a self-signed certificate until cert-manager has written the Secret; then
// its pods mount the issued one. Without cert-manager the status says so.
func TestIssuerRef(t *testing.T) {
	env := testenv.Start(t)
	startOperator(t, env)
	s := &issuerRef{t: t, c: env.Client, ctx: context.Background(), ns: "tls"}
	if err := s.c.Create(s.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}); err != nil {
		t.Fatal(err)
	}

	s.cluster("early")
	s.selfSigned("early", "CertificatePending", "cert-manager is not installed")
	s.tlsVolume("early", "early-tls-selfsigned")

	s.installCertificateCRD()

	s.cluster("mail")
	s.checkCertificate()
	s.selfSigned("mail", "CertificatePending", "waiting for cert-manager to issue Certificate mail-tls from ClusterIssuer letsencrypt")
	s.tlsVolume("mail", "mail-tls-selfsigned")

	s.issue()
	s.tlsVolume("mail", "mail-tls")
	reconciled.Until(t, "SelfSignedCertificate False", func() (bool, string) {
		var mc mailv1alpha1.MailCluster
		s.c.Get(s.ctx, types.NamespacedName{Namespace: s.ns, Name: "mail"}, &mc)
		cond := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate)
		return cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, "mail-tls"), errString(nil)
	})
}

// cluster creates a MailCluster with hostname <name>.example.com and a ClusterIssuer reference.
func (s *issuerRef) cluster(name string) {
	s.t.Helper()
	mc := &mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}, Spec: mailv1alpha1.MailClusterSpec{
		Hostname: mailv1alpha1.DomainName(name + ".example.com"),
		TLS:      &mailv1alpha1.TLSSpec{IssuerRef: &mailv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer"}}}}
	if err := s.c.Create(s.ctx, mc); err != nil {
		s.t.Fatal(err)
	}
}

// selfSigned waits for the cluster's SelfSignedCertificate condition to have the reason and
// a message containing the text.
func (s *issuerRef) selfSigned(name, wantReason, wantText string) {
	s.t.Helper()
	reconciled.Until(s.t, name+" SelfSignedCertificate "+wantReason, func() (bool, string) {
		var mc mailv1alpha1.MailCluster
		s.c.Get(s.ctx, types.NamespacedName{Namespace: s.ns, Name: name}, &mc)
		cond := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate)
		if cond == nil {
			return false, "no condition"
		}
		return cond.Reason == wantReason && strings.Contains(cond.Message, wantText), cond.Reason + ": " + cond.Message
	})
}

// tlsVolume waits for the cluster's pods to mount the Secret want as their tls volume.
func (s *issuerRef) tlsVolume(name, want string) {
	s.t.Helper()
	reconciled.Until(s.t, name+" pods mount "+want, func() (bool, string) {
		var sts appsv1.StatefulSet
		if err := s.c.Get(s.ctx, types.NamespacedName{Namespace: s.ns, Name: name}, &sts); err != nil {
			return false, err.Error()
		}
		for _, v := range sts.Spec.Template.Spec.Volumes {
			if v.Name == "tls" {
				return v.Secret.SecretName == want, v.Secret.SecretName
			}
		}
		return false, "no tls volume"
	})
}

// installCertificateCRD installs the stand-in for cert-manager and waits until it is served.
func (s *issuerRef) installCertificateCRD() {
	s.t.Helper()
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(certificateCRD), &crd.Object); err != nil {
		s.t.Fatal(err)
	}
	if err := s.c.Create(s.ctx, &crd); err != nil {
		s.t.Fatal(err)
	}
	reconciled.Until(s.t, "the Certificate CRD to be served", func() (bool, string) {
		var l unstructured.UnstructuredList
		l.SetGroupVersionKind(schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "CertificateList"})
		err := s.c.List(s.ctx, &l, client.InNamespace(s.ns))
		return err == nil, errString(err)
	})
}

// checkCertificate waits for cluster mail's Certificate and checks its spec and owner.
func (s *issuerRef) checkCertificate() {
	var cert unstructured.Unstructured
	cert.SetGroupVersionKind(schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"})
	reconciled.Until(s.t, "the Certificate", func() (bool, string) {
		err := s.c.Get(s.ctx, types.NamespacedName{Namespace: s.ns, Name: "mail-tls"}, &cert)
		return err == nil, errString(err)
	})
	spec, _, _ := unstructured.NestedMap(cert.Object, "spec")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	if spec["secretName"] != "mail-tls" || len(dns) != 1 || dns[0] != "mail.example.com" ||
		issuer["name"] != "letsencrypt" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
		s.t.Errorf("Certificate spec = %v", spec)
	}
	if refs := cert.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "MailCluster" || refs[0].Name != "mail" {
		s.t.Errorf("Certificate owner references = %+v", refs)
	}
}

// issue plays cert-manager's part: the issued pair in the Secret the Certificate names.
func (s *issuerRef) issue() {
	s.t.Helper()
	certPEM, keyPEM, err := selfsigned.Certificate([]string{"mail.example.com"}, 90*24*3600e9)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.c.Create(s.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mail-tls", Namespace: s.ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}); err != nil {
		s.t.Fatal(err)
	}
}
