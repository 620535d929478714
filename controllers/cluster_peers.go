package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/internal/selfsigned"
)

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch

// The certificates of the connections between a cluster's replicas: a CA of the cluster's own,
// which only the operator reads, and one certificate it issues for every pod under the headless
// Service, which all replicas present and which is renewed well before its end.
const (
	clusterCAValidity      = 10 * 365 * 24 * time.Hour
	clusterCARenewal       = 365 * 24 * time.Hour
	clusterCertValidity    = 365 * 24 * time.Hour
	clusterCertRenewal     = 30 * 24 * time.Hour
	clusterCAKey, caKeyKey = "ca.crt", "ca.key"
)

// ensureClusterTLS keeps the cluster's CA and the replicas' certificate: generated when missing,
// renewed near their end, the certificate issued anew when the CA changed or no longer covers
// the pods' names.
func (r *MailClusterReconciler) ensureClusterTLS(ctx context.Context, mc *mailv1alpha1.MailCluster) error {
	ca, err := secretData(ctx, r.Client, mc.Namespace, names.ClusterCA(mc.Name))
	if err != nil {
		return err
	}
	caPEM, caKeyPEM := ca[clusterCAKey], ca[caKeyKey]
	if !validFor(caPEM, clusterCARenewal) {
		if caPEM, caKeyPEM, err = selfsigned.CA(fmt.Sprintf("kubemail cluster %s/%s", mc.Namespace, mc.Name), clusterCAValidity); err != nil {
			return err
		}
		if _, err := apply(ctx, r.Client, r.Scheme, mc, builders.ClusterCASecret(mc, caPEM, caKeyPEM)); err != nil {
			return err
		}
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "ClusterCA", "Generate",
			"generated the CA of the connections between the replicas")
	}
	cur, err := secretData(ctx, r.Client, mc.Namespace, names.ClusterTLS(mc.Name))
	if err != nil {
		return err
	}
	sample := fmt.Sprintf("%s.%s.%s.svc", names.Pod(mc.Name, 0), names.HeadlessService(mc.Name), mc.Namespace)
	if string(cur[clusterCAKey]) == string(caPEM) && issuedFor(cur[corev1.TLSCertKey], caPEM, sample, clusterCertRenewal) {
		return nil
	}
	certPEM, keyPEM, err := selfsigned.Issue(caPEM, caKeyPEM, builders.ClusterCertificateNames(mc), clusterCertValidity)
	if err != nil {
		return err
	}
	_, err = apply(ctx, r.Client, r.Scheme, mc, builders.ClusterTLSSecret(mc, certPEM, keyPEM, caPEM))
	return err
}

// validFor reports whether the PEM certificate stays valid for at least d.
func validFor(certPEM []byte, d time.Duration) bool {
	cert := parseCert(certPEM)
	return cert != nil && time.Until(cert.NotAfter) > d
}

// issuedFor reports whether the PEM certificate is the CA's, for host, valid for at least d.
func issuedFor(certPEM, caPEM []byte, host string, d time.Duration) bool {
	cert := parseCert(certPEM)
	if cert == nil || time.Until(cert.NotAfter) <= d {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func parseCert(certPEM []byte) *x509.Certificate {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	return cert
}
