package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// MailAliasReconciler reports MailAliases no cluster serves; a served alias's status comes
// from its cluster's directory.
type MailAliasReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
}

func (r *MailAliasReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var al mailv1alpha1.MailAlias
	if err := r.Get(ctx, req.NamespacedName, &al); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	reason, msg, err := unservedReason(ctx, r.Client, al.Namespace, addressDomain(al.Spec.Address))
	if err != nil || reason == "" {
		return ctrl.Result{}, err
	}
	st := al.Status.DeepCopy()
	setCondition(&st.Conditions, al.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	st.ObservedGeneration, st.Members = al.Generation, 0
	if !equalJSON(&al.Status, st) {
		was := meta.FindStatusCondition(al.Status.Conditions, mailv1alpha1.ConditionReady)
		patch := client.MergeFrom(al.DeepCopy())
		al.Status = *st
		if err := r.Status().Patch(ctx, &al, patch); err != nil {
			return ctrl.Result{}, err
		}
		readyEvent(r.Recorder, &al, was, meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
	}
	return ctrl.Result{}, nil
}
