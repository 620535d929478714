package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/internal/selfsigned"
)

// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;update;patch

// selfSignedRenewal is how long before its end a self-signed certificate is replaced.
const selfSignedRenewal = 30 * 24 * time.Hour

// clusterTLS is the certificate a cluster's servers present.
type clusterTLS struct {
	// secret holds it; selfSigned when the operator generated it, waiting says why a
	// requested certificate is not there yet.
	secret     string
	selfSigned bool
	waiting    string
}

// reconcileTLS returns the Secret with the servers' certificate: the one the cluster names,
// the one cert-manager issued for spec.tls.issuerRef, or else a self-signed one it generates
// and renews (also while cert-manager has not issued yet, which waiting then says).
func (r *MailClusterReconciler) reconcileTLS(ctx context.Context, mc *mailv1alpha1.MailCluster) (clusterTLS, error) {
	if mc.Spec.TLS != nil && mc.Spec.TLS.SecretName != "" {
		return clusterTLS{secret: mc.Spec.TLS.SecretName}, nil
	}
	var waiting string
	if mc.Spec.TLS != nil && mc.Spec.TLS.IssuerRef != nil {
		issued, why, err := r.ensureIssuedTLS(ctx, mc)
		if err != nil || issued != "" {
			return clusterTLS{secret: issued}, err
		}
		waiting = why
	}
	name, err := r.ensureSelfSigned(ctx, mc)
	return clusterTLS{secret: name, selfSigned: true, waiting: waiting}, err
}

// ensureSelfSigned returns the Secret with the cluster's self-signed certificate, generating it
// when it is missing, for another hostname, or near its end.
func (r *MailClusterReconciler) ensureSelfSigned(ctx context.Context, mc *mailv1alpha1.MailCluster) (string, error) {
	name := names.SelfSignedTLS(mc.Name)
	data, err := secretData(ctx, r.Client, mc.Namespace, name)
	if err != nil {
		return "", err
	}
	if certStillGood(data[corev1.TLSCertKey], string(mc.Spec.Hostname)) {
		return name, nil
	}
	certPEM, keyPEM, err := selfsigned.Certificate([]string{string(mc.Spec.Hostname)}, 365*24*time.Hour)
	if err != nil {
		return "", err
	}
	if _, err := apply(ctx, r.Client, r.Scheme, mc, builders.SelfSignedTLSSecret(mc, certPEM, keyPEM)); err != nil {
		return "", err
	}
	r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "SelfSignedCertificate", "Generate",
		"generated a self-signed certificate for %s", mc.Spec.Hostname)
	return name, nil
}

func certStillGood(certPEM []byte, hostname string) bool {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	return cert.VerifyHostname(hostname) == nil && time.Until(cert.NotAfter) > selfSignedRenewal
}

// ensureIssuedTLS requests a certificate for the cluster's hostname from the cert-manager issuer
// in spec.tls.issuerRef, as a cert-manager Certificate the MailCluster owns. It returns the
// Secret cert-manager writes once that Secret holds a certificate and key; until then "" and
// why, so the caller serves a self-signed certificate meanwhile.
func (r *MailClusterReconciler) ensureIssuedTLS(ctx context.Context, mc *mailv1alpha1.MailCluster) (secret, waiting string, err error) {
	var domains mailv1alpha1.MailDomainList
	if err := r.List(ctx, &domains, client.InNamespace(mc.Namespace), client.MatchingFields{indexClusterRef: mc.Name}); err != nil {
		return "", "", err
	}
	var domainNames []string
	for _, d := range domains.Items {
		// A domain on its way out keeps the names off the next certificate.
		if k := domainKey(d.Spec.Domain); d.DeletionTimestamp.IsZero() && !slices.Contains(domainNames, k) {
			domainNames = append(domainNames, k)
		}
	}
	cert := builders.Certificate(mc, domainNames)
	_, err = apply(ctx, r.Client, r.Scheme, mc, cert)
	if meta.IsNoMatchError(err) {
		return "", "cert-manager is not installed (no cert-manager.io/v1 Certificate kind); install it for spec.tls.issuerRef", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("cert-manager Certificate %s: %w", cert.GetName(), err)
	}
	var sec corev1.Secret
	err = r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: cert.GetName()}, &sec)
	if apierrors.IsNotFound(err) || err == nil && (len(sec.Data[corev1.TLSCertKey]) == 0 || len(sec.Data[corev1.TLSPrivateKeyKey]) == 0) {
		ref := mc.Spec.TLS.IssuerRef
		return "", fmt.Sprintf("waiting for cert-manager to issue Certificate %s from %s %s", cert.GetName(), ref.Kind, ref.Name), nil
	}
	if err != nil {
		return "", "", err
	}
	return cert.GetName(), "", nil
}
