package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// MailboxReconciler generates passwords, holds the deletion finalizer, and reports Mailboxes
// no cluster serves. Everything about a served Mailbox's status comes from its cluster's
// directory (MailClusterReconciler).
type MailboxReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	// Verdicts holds what the clusters' directories decided about each Mailbox.
	Verdicts *verdicts
}

func (r *MailboxReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var mb mailv1alpha1.Mailbox
	if err := r.Get(ctx, req.NamespacedName, &mb); err != nil {
		if apierrors.IsNotFound(err) {
			r.Verdicts.forget(false, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mb.DeletionTimestamp.IsZero() {
		// The directory no longer lists a deleted Mailbox, so logins stop at once.
		if !controllerutil.ContainsFinalizer(&mb, names.FinalizerMailbox) {
			return ctrl.Result{}, nil
		}
		if mb.Spec.DeletionPolicy == mailv1alpha1.DeletionPolicyDelete {
			if done, err := r.purge(ctx, &mb); !done {
				r.Recorder.Eventf(&mb, nil, corev1.EventTypeWarning, "PurgePending", "Delete",
					"waiting to purge the stored mail of %s: %v", mb.Spec.Address, err)
				return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
			}
		}
		controllerutil.RemoveFinalizer(&mb, names.FinalizerMailbox)
		return ctrl.Result{}, r.Update(ctx, &mb)
	}
	// Only mail that is to be purged needs the Mailbox held after its deletion; with Retain
	// there is nothing to wait for, and no finalizer spares a write per Mailbox.
	if mb.Spec.DeletionPolicy == mailv1alpha1.DeletionPolicyDelete && controllerutil.AddFinalizer(&mb, names.FinalizerMailbox) {
		if err := r.Update(ctx, &mb); err != nil {
			return ctrl.Result{}, err
		}
	}
	reason, msg, err := unservedReason(ctx, r.Client, mb.Namespace, addressDomain(mb.Spec.Address))
	if err != nil {
		return ctrl.Result{}, err
	}
	st := mb.Status.DeepCopy()
	if reason != "" {
		setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		st.ObservedGeneration, st.Login = mb.Generation, ""
		return ctrl.Result{}, r.writeStatus(ctx, &mb, st)
	}
	// Served: a password is generated only for a Mailbox something serves, and the rest of
	// its status is what its cluster's directory decided.
	if mb.Spec.PasswordSecretRef == nil {
		if err := r.ensureCredentials(ctx, &mb); err != nil {
			return ctrl.Result{}, fmt.Errorf("credentials Secret: %w", err)
		}
	}
	v, ok := r.Verdicts.get(false, req.NamespacedName)
	if !ok {
		return ctrl.Result{}, nil // the cluster has not decided yet; its verdict wakes us
	}
	applyMailboxVerdict(st, &mb, v)
	return ctrl.Result{}, r.writeStatus(ctx, &mb, st)
}

// writeStatus patches mb's status to st when it changed, and tells of a change of its Ready
// condition with an event. The patch carries the difference alone: status.usage and
// status.messages belong to the UsageCollector.
func (r *MailboxReconciler) writeStatus(ctx context.Context, mb *mailv1alpha1.Mailbox, st *mailv1alpha1.MailboxStatus) error {
	if equalJSON(&mb.Status, st) {
		return nil
	}
	base := mb.DeepCopy()
	mb.Status = *st
	if err := r.Status().Patch(ctx, mb, client.MergeFrom(base)); err != nil {
		return client.IgnoreNotFound(err)
	}
	readyEvent(r.Recorder, mb, meta.FindStatusCondition(base.Status.Conditions, mailv1alpha1.ConditionReady),
		meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
	return nil
}

// purge asks the replica holding the mailbox to delete its stored mail. It reports done when
// the mail is gone or nothing could hold it (never placed, or no cluster in the namespace).
func (r *MailboxReconciler) purge(ctx context.Context, mb *mailv1alpha1.Mailbox) (bool, error) {
	if mb.Status.Shard == nil {
		return true, nil // never placed, so never stored anything
	}
	clusters, err := r.clustersHolding(ctx, mb)
	if err != nil || len(clusters) == 0 {
		return err == nil, err
	}
	for _, cluster := range clusters {
		admin, err := newAdminClient(ctx, r.Client, mb.Namespace, cluster, int(*mb.Status.Shard))
		if err != nil {
			return false, err
		}
		if err := admin.purge(ctx, string(mb.Spec.Address)); err != nil {
			return false, err
		}
	}
	r.Recorder.Eventf(mb, nil, corev1.EventTypeNormal, "Purged", "Delete", "deleted the stored mail of %s", mb.Spec.Address)
	return true, nil
}

// clustersHolding names the MailClusters that may hold mb's mail: the one serving its domain, or,
// when its MailDomain was deleted while in use, every cluster of the namespace (the mail is still
// on one of them; purging an address a cluster never held is harmless).
func (r *MailboxReconciler) clustersHolding(ctx context.Context, mb *mailv1alpha1.Mailbox) ([]string, error) {
	var domains mailv1alpha1.MailDomainList
	if err := r.List(ctx, &domains, client.InNamespace(mb.Namespace), client.MatchingFields{indexDomain: addressDomain(mb.Spec.Address)}); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range domains.Items {
		var mc mailv1alpha1.MailCluster
		err := r.Get(ctx, types.NamespacedName{Namespace: mb.Namespace, Name: d.Spec.ClusterRef.Name}, &mc)
		if err == nil {
			return []string{mc.Name}, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	if len(domains.Items) > 0 {
		return nil, nil // its cluster is gone, and its volumes with it or kept on purpose
	}
	var all mailv1alpha1.MailClusterList
	if err := r.List(ctx, &all, client.InNamespace(mb.Namespace)); err != nil {
		return nil, err
	}
	for _, mc := range all.Items {
		if ptr.Deref(mc.Spec.Replicas, 1) > *mb.Status.Shard {
			out = append(out, mc.Name)
		}
	}
	return out, nil
}

// unservedReason says why nothing serves addresses of domain in ns (DomainNotFound,
// ClusterNotFound), or "" when a cluster does.
func unservedReason(ctx context.Context, c client.Client, ns, domain string) (string, string, error) {
	var domains mailv1alpha1.MailDomainList
	if err := c.List(ctx, &domains, client.InNamespace(ns), client.MatchingFields{indexDomain: domain}); err != nil {
		return "", "", err
	}
	if len(domains.Items) == 0 {
		return mailv1alpha1.ReasonDomainNotFound, fmt.Sprintf("domain %s has no MailDomain in namespace %q", builders.DomainDisplay(domain), ns), nil
	}
	for _, d := range domains.Items {
		var mc mailv1alpha1.MailCluster
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: d.Spec.ClusterRef.Name}, &mc)
		if err == nil {
			return "", "", nil
		}
		if !apierrors.IsNotFound(err) {
			return "", "", err
		}
	}
	return mailv1alpha1.ReasonClusterNotFound, fmt.Sprintf("the MailCluster %q of domain %s does not exist", domains.Items[0].Spec.ClusterRef.Name, builders.DomainDisplay(domain)), nil
}

// ensureCredentials generates the Mailbox's password once into <name>-credentials; a password
// already there (generated earlier, or put there by someone) stays.
func (r *MailboxReconciler) ensureCredentials(ctx context.Context, mb *mailv1alpha1.Mailbox) error {
	data, err := secretData(ctx, r.Client, mb.Namespace, names.CredentialsSecret(mb.Name))
	if err != nil {
		return err
	}
	pw, digest := string(data[names.PasswordKey]), ""
	if pw == "" {
		pw = newPassword()
		digest = passwordDigest(pw)
	}
	sec := builders.CredentialsSecret(mb, pw, digest)
	for k, v := range data {
		if _, ours := sec.Data[k]; !ours {
			sec.Data[k] = v // keys someone added stay
		}
	}
	if _, err := apply(ctx, r.Client, r.Scheme, mb, sec); err != nil {
		return err
	}
	if digest != "" {
		r.Recorder.Eventf(mb, nil, corev1.EventTypeNormal, "PasswordGenerated", "Generate", "generated a password in Secret %s", sec.Name)
	}
	return nil
}
