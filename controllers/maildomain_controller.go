package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// MailDomainReconciler generates a domain's DKIM key once and reports the DNS records to
// publish.
type MailDomainReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
}

func (r *MailDomainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var md mailv1alpha1.MailDomain
	if err := r.Get(ctx, req.NamespacedName, &md); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	st := md.Status.DeepCopy()
	st.ObservedGeneration = md.Generation

	var keyPEM []byte
	if md.Spec.DKIM.Enabled == nil || *md.Spec.DKIM.Enabled {
		var err error
		if keyPEM, err = r.ensureDKIMKey(ctx, &md); err != nil {
			return ctrl.Result{}, fmt.Errorf("DKIM key: %w", err)
		}
		st.DKIMSecretName = names.DKIMSecret(md.Name)
	} else {
		st.DKIMSecretName = ""
	}

	var mbs mailv1alpha1.MailboxList
	// Only counted, so not copied out of the cache.
	if err := r.List(ctx, &mbs, client.InNamespace(md.Namespace), client.MatchingFields{indexDomain: domainKey(md.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	st.Mailboxes = 0
	for _, mb := range mbs.Items {
		if addressDomain(mb.Spec.Address) == domainKey(md.Spec.Domain) {
			st.Mailboxes++
		}
	}

	var mc mailv1alpha1.MailCluster
	err := r.Get(ctx, types.NamespacedName{Namespace: md.Namespace, Name: md.Spec.ClusterRef.Name}, &mc)
	switch {
	case apierrors.IsNotFound(err):
		setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonClusterNotFound,
			fmt.Sprintf("MailCluster %q not found in namespace %q", md.Spec.ClusterRef.Name, md.Namespace))
		st.DNSRecords = nil
	case err != nil:
		return ctrl.Result{}, err
	default:
		records, err := builders.DNSRecords(&md, string(mc.Spec.Hostname), keyPEM)
		var invalid builders.InvalidDomainError
		if errors.As(err, &invalid) {
			setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonInvalidSpec,
				invalid.Error()+"; the MailCluster leaves it out (create a MailDomain with a valid name)")
			st.DNSRecords = nil
			break
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		st.DNSRecords = records
		setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
			fmt.Sprintf("served by MailCluster %q; publish status.dnsRecords", mc.Name))
	}
	if !equalJSON(&md.Status, st) {
		patch := client.MergeFrom(md.DeepCopy())
		md.Status = *st
		return ctrl.Result{}, r.Status().Patch(ctx, &md, patch)
	}
	return ctrl.Result{}, nil
}

// ensureDKIMKey returns the domain's signing key, generating it once. A key is never replaced
// by the operator: rotating it needs DNS changes first.
func (r *MailDomainReconciler) ensureDKIMKey(ctx context.Context, md *mailv1alpha1.MailDomain) ([]byte, error) {
	sec := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: names.DKIMSecret(md.Name), Namespace: md.Namespace}}
	generated := false
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, &sec, func() error {
		if len(sec.Data["private.pem"]) == 0 {
			key, err := newDKIMKey(md.Spec.DKIM.Algorithm)
			if err != nil {
				return err
			}
			sec.Data = map[string][]byte{"private.pem": key}
			generated = true
		}
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
		sec.Labels[names.LabelManagedBy] = names.ManagedBy
		return controllerutil.SetControllerReference(md, &sec, r.Scheme)
	})
	if generated && err == nil {
		r.Recorder.Eventf(md, nil, corev1.EventTypeNormal, "DKIMKeyGenerated", "Generate",
			"generated a %s DKIM key in Secret %s; publish the dkim record from status.dnsRecords", md.Spec.DKIM.Algorithm, sec.Name)
	}
	return sec.Data["private.pem"], err
}
