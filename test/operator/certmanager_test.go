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
	"github.com/kubemail/kubemail/mailserver/tlsconf"
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

// TestIssuerRef: a cluster with spec.tls.issuerRef gets a cert-manager Certificate for its
// hostname and serves a self-signed certificate until cert-manager has written the Secret; then
// its pods mount the issued one. Without cert-manager the status says so.
func TestIssuerRef(t *testing.T) {
	env := testenv.Start(t)
	startOperator(t, env)
	c := env.Client
	ctx := context.Background()
	ns := "tls"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	cluster := func(name string) {
		t.Helper()
		mc := &mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: mailv1alpha1.MailClusterSpec{
			Hostname: mailv1alpha1.DomainName(name + ".example.com"),
			TLS:      &mailv1alpha1.TLSSpec{IssuerRef: &mailv1alpha1.IssuerReference{Name: "letsencrypt", Kind: "ClusterIssuer"}}}}
		if err := c.Create(ctx, mc); err != nil {
			t.Fatal(err)
		}
	}
	selfSigned := func(name, wantReason, wantText string) {
		t.Helper()
		reconciled.Until(t, name+" SelfSignedCertificate "+wantReason, func() (bool, string) {
			var mc mailv1alpha1.MailCluster
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &mc)
			cond := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate)
			if cond == nil {
				return false, "no condition"
			}
			return cond.Reason == wantReason && strings.Contains(cond.Message, wantText), cond.Reason + ": " + cond.Message
		})
	}
	tlsVolume := func(name, want string) {
		t.Helper()
		reconciled.Until(t, name+" pods mount "+want, func() (bool, string) {
			var sts appsv1.StatefulSet
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &sts); err != nil {
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

	cluster("early")
	selfSigned("early", "CertificatePending", "cert-manager is not installed")
	tlsVolume("early", "early-tls-selfsigned")

	var crd unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(certificateCRD), &crd.Object); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &crd); err != nil {
		t.Fatal(err)
	}
	reconciled.Until(t, "the Certificate CRD to be served", func() (bool, string) {
		var l unstructured.UnstructuredList
		l.SetGroupVersionKind(schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "CertificateList"})
		err := c.List(ctx, &l, client.InNamespace(ns))
		return err == nil, errString(err)
	})

	cluster("mail")
	var cert unstructured.Unstructured
	cert.SetGroupVersionKind(schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"})
	reconciled.Until(t, "the Certificate", func() (bool, string) {
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail-tls"}, &cert)
		return err == nil, errString(err)
	})
	spec, _, _ := unstructured.NestedMap(cert.Object, "spec")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	issuer, _, _ := unstructured.NestedStringMap(cert.Object, "spec", "issuerRef")
	if spec["secretName"] != "mail-tls" || len(dns) != 1 || dns[0] != "mail.example.com" ||
		issuer["name"] != "letsencrypt" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
		t.Errorf("Certificate spec = %v", spec)
	}
	if refs := cert.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "MailCluster" || refs[0].Name != "mail" {
		t.Errorf("Certificate owner references = %+v", refs)
	}
	selfSigned("mail", "CertificatePending", "waiting for cert-manager to issue Certificate mail-tls from ClusterIssuer letsencrypt")
	tlsVolume("mail", "mail-tls-selfsigned")

	// cert-manager's part: the issued pair in the Secret the Certificate names.
	certPEM, keyPEM, err := tlsconf.SelfSigned([]string{"mail.example.com"}, 90*24*3600e9)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "mail-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}); err != nil {
		t.Fatal(err)
	}
	tlsVolume("mail", "mail-tls")
	reconciled.Until(t, "SelfSignedCertificate False", func() (bool, string) {
		var mc mailv1alpha1.MailCluster
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc)
		cond := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate)
		return cond != nil && cond.Status == metav1.ConditionFalse && strings.Contains(cond.Message, "mail-tls"), errString(nil)
	})
}
