package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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

// MailDomainReconciler generates a domain's DKIM key once, reports the DNS records to publish,
// and holds a domain's deletion while Mailboxes or MailAliases still use it.
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
	if !md.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &md)
	}
	if controllerutil.AddFinalizer(&md, names.FinalizerMailDomain) {
		if err := r.Update(ctx, &md); err != nil {
			return ctrl.Result{}, err
		}
	}
	st := md.Status.DeepCopy()
	st.ObservedGeneration = md.Generation
	var keyPEM []byte
	st.DKIMSecretName = ""
	if md.Spec.DKIM.Enabled == nil || *md.Spec.DKIM.Enabled {
		var err error
		if keyPEM, err = r.ensureDKIMKey(ctx, &md); err != nil {
			return ctrl.Result{}, fmt.Errorf("DKIM key: %w", err)
		}
		st.DKIMSecretName = names.DKIMSecret(md.Name)
	}
	var err error
	if st.Mailboxes, err = r.countMailboxes(ctx, &md); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reportRecords(ctx, &md, st, keyPEM); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.writeStatus(ctx, &md, st)
}

// countMailboxes counts the Mailboxes whose address is in md's domain.
func (r *MailDomainReconciler) countMailboxes(ctx context.Context, md *mailv1alpha1.MailDomain) (int32, error) {
	var mbs mailv1alpha1.MailboxList
	// Only counted, so not copied out of the cache.
	if err := r.List(ctx, &mbs, client.InNamespace(md.Namespace), client.MatchingFields{indexDomain: domainKey(md.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	var n int32
	for _, mb := range mbs.Items {
		if addressDomain(mb.Spec.Address) == domainKey(md.Spec.Domain) {
			n++
		}
	}
	return n, nil
}

// reportRecords puts the DNS records to publish and the Ready condition into st.
func (r *MailDomainReconciler) reportRecords(ctx context.Context, md *mailv1alpha1.MailDomain, st *mailv1alpha1.MailDomainStatus, keyPEM []byte) error {
	var mc mailv1alpha1.MailCluster
	err := r.Get(ctx, types.NamespacedName{Namespace: md.Namespace, Name: md.Spec.ClusterRef.Name}, &mc)
	if apierrors.IsNotFound(err) {
		setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonClusterNotFound,
			fmt.Sprintf("MailCluster %q not found in namespace %q", md.Spec.ClusterRef.Name, md.Namespace))
		st.DNSRecords = nil
		return nil
	}
	if err != nil {
		return err
	}
	dc, err := r.dnsContext(ctx, &mc)
	if err != nil {
		return err
	}
	records, err := builders.DNSRecords(md, dc, keyPEM)
	var invalid builders.InvalidDomainError
	if errors.As(err, &invalid) {
		setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonInvalidSpec,
			invalid.Error()+"; the MailCluster leaves it out (create a MailDomain with a valid name)")
		st.DNSRecords = nil
		return nil
	}
	if err != nil {
		return err
	}
	st.DNSRecords = records
	setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
		fmt.Sprintf("served by MailCluster %q; publish status.dnsRecords", mc.Name))
	return nil
}

// dnsContext gathers what a domain's DNS records depend on in its cluster.
func (r *MailDomainReconciler) dnsContext(ctx context.Context, mc *mailv1alpha1.MailCluster) (builders.DNSContext, error) {
	dc := builders.DNSContext{Hostname: string(mc.Spec.Hostname), Autoconfig: mc.Spec.Autoconfig != nil && mc.Spec.Autoconfig.Enabled}
	if mc.Spec.Outbound != nil && mc.Spec.Outbound.Relay != nil {
		dc.RelayHost = mc.Spec.Outbound.Relay.Host
	}
	var svc corev1.Service
	err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: names.ClientService(mc.Name)}, &svc)
	if err != nil {
		return dc, client.IgnoreNotFound(err)
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			dc.Addresses = append(dc.Addresses, in.IP)
		}
	}
	dc.Addresses = append(dc.Addresses, svc.Spec.ExternalIPs...)
	return dc, nil
}

// writeStatus patches md's status to st when it changed, with an event when Ready changed.
func (r *MailDomainReconciler) writeStatus(ctx context.Context, md *mailv1alpha1.MailDomain, st *mailv1alpha1.MailDomainStatus) error {
	if equalJSON(&md.Status, st) {
		return nil
	}
	was := meta.FindStatusCondition(md.Status.Conditions, mailv1alpha1.ConditionReady)
	patch := client.MergeFrom(md.DeepCopy())
	md.Status = *st
	if err := r.Status().Patch(ctx, md, patch); err != nil {
		return err
	}
	readyEvent(r.Recorder, md, was, meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
	return nil
}

// finalize lets a deleted domain go once nothing uses it, or at once when the user insists
// (AnnotationForceDelete). Until then the domain stays in its cluster's directory, so its mail
// keeps flowing, and its status names what holds it.
func (r *MailDomainReconciler) finalize(ctx context.Context, md *mailv1alpha1.MailDomain) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(md, names.FinalizerMailDomain) {
		return ctrl.Result{}, nil
	}
	users, err := domainUsers(ctx, r.Client, md.Namespace, domainKey(md.Spec.Domain))
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(users) > 0 && md.Annotations[names.AnnotationForceDelete] != "true" {
		st := md.Status.DeepCopy()
		setCondition(&st.Conditions, md.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonDomainInUse,
			fmt.Sprintf("being deleted, and held while %d object(s) still use %s (for their address, an alias, a forwarding target or an "+
				"alias member): %s. Its mail keeps flowing meanwhile. Delete those objects or edit the domain out of them, "+
				"or annotate the MailDomain %s=true to delete it now (mail to its addresses is then refused with a temporary error until nothing uses it)",
				len(users), md.Spec.Domain, someOf(users), names.AnnotationForceDelete))
		st.ObservedGeneration = md.Generation
		return ctrl.Result{}, r.writeStatus(ctx, md, st)
	}
	controllerutil.RemoveFinalizer(md, names.FinalizerMailDomain)
	if err := r.Update(ctx, md); err != nil {
		return ctrl.Result{}, err
	}
	if len(users) > 0 {
		r.Recorder.Eventf(md, nil, corev1.EventTypeWarning, "ForceDeleted", "Delete",
			"deleted although %d object(s) still use %s (%s): mail to its addresses is refused with a temporary error until nothing uses it or the domain is created again",
			len(users), md.Spec.Domain, someOf(users))
	}
	return ctrl.Result{}, nil
}

// ensureDKIMKey returns the domain's signing key, generating it once. A key is never replaced
// by the operator: rotating it needs DNS changes first.
func (r *MailDomainReconciler) ensureDKIMKey(ctx context.Context, md *mailv1alpha1.MailDomain) ([]byte, error) {
	data, err := secretData(ctx, r.Client, md.Namespace, names.DKIMSecret(md.Name))
	if err != nil {
		return nil, err
	}
	key, generated := data[names.DKIMPrivateKeyKey], false
	if len(key) == 0 {
		if key, err = newDKIMKey(md.Spec.DKIM.Algorithm); err != nil {
			return nil, err
		}
		generated = true
	}
	sec := builders.DKIMSecret(md, key)
	if _, err := apply(ctx, r.Client, r.Scheme, md, sec); err != nil {
		return nil, err
	}
	if generated {
		r.Recorder.Eventf(md, nil, corev1.EventTypeNormal, "DKIMKeyGenerated", "Generate",
			"generated a %s DKIM key in Secret %s; publish the dkim record from status.dnsRecords", md.Spec.DKIM.Algorithm, sec.Name)
	}
	return key, nil
}
