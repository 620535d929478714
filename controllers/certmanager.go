package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;update;patch

var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// ensureIssuedTLS requests a certificate for the cluster's hostname from the cert-manager issuer
// in spec.tls.issuerRef, as a cert-manager Certificate the MailCluster owns. It returns the
// Secret cert-manager writes once that Secret holds a certificate and key; until then "" and
// why, so the caller serves a self-signed certificate meanwhile.
func (r *MailClusterReconciler) ensureIssuedTLS(ctx context.Context, mc *mailv1alpha1.MailCluster) (secret, waiting string, err error) {
	ref := mc.Spec.TLS.IssuerRef
	name := names.IssuedTLS(mc.Name)
	cert := &unstructured.Unstructured{}
	cert.SetGroupVersionKind(certificateGVK)
	cert.SetName(name)
	cert.SetNamespace(mc.Namespace)
	_, err = controllerutil.CreateOrUpdate(ctx, r.Client, cert, func() error {
		labels := cert.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range builders.Labels(mc) {
			labels[k] = v
		}
		cert.SetLabels(labels)
		kind, group := ref.Kind, ref.Group
		if kind == "" {
			kind = "Issuer"
		}
		if group == "" {
			group = "cert-manager.io"
		}
		spec := map[string]any{
			"secretName": name,
			"dnsNames":   []any{string(mc.Spec.Hostname)},
			"issuerRef":  map[string]any{"name": ref.Name, "kind": kind, "group": group},
			"usages":     []any{"server auth", "digital signature", "key encipherment"},
			// The Secret carries the cluster's labels, so it is easy to find with the rest.
			"secretTemplate": map[string]any{"labels": toAny(builders.Labels(mc))},
		}
		if err := unstructured.SetNestedField(cert.Object, spec, "spec"); err != nil {
			return err
		}
		return controllerutil.SetControllerReference(mc, cert, r.Scheme)
	})
	if meta.IsNoMatchError(err) {
		return "", "cert-manager is not installed (no cert-manager.io/v1 Certificate kind); install it for spec.tls.issuerRef", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("cert-manager Certificate %s: %w", name, err)
	}
	var sec corev1.Secret
	err = r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: name}, &sec)
	if apierrors.IsNotFound(err) || err == nil && (len(sec.Data[corev1.TLSCertKey]) == 0 || len(sec.Data[corev1.TLSPrivateKeyKey]) == 0) {
		return "", fmt.Sprintf("waiting for cert-manager to issue Certificate %s from %s %s", name, ref.Kind, ref.Name), nil
	}
	if err != nil {
		return "", "", err
	}
	return name, "", nil
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
