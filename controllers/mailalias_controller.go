package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// MailAliasReconciler writes every MailAlias's status: why nothing serves it, or what its
// cluster's directory decided about it.
type MailAliasReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	// Verdicts holds what the clusters' directories decided about each MailAlias.
	Verdicts *verdicts
}

func (r *MailAliasReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var al mailv1alpha1.MailAlias
	if err := r.Get(ctx, req.NamespacedName, &al); err != nil {
		if apierrors.IsNotFound(err) {
			r.Verdicts.forget(true, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	reason, msg, err := unservedReason(ctx, r.Client, al.Namespace, addressDomain(al.Spec.Address))
	if err != nil {
		return ctrl.Result{}, err
	}
	st := al.Status.DeepCopy()
	switch v, ok := r.Verdicts.get(true, req.NamespacedName); {
	case reason != "":
		setCondition(&st.Conditions, al.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
		st.ObservedGeneration, st.Members = al.Generation, 0
	case ok:
		setCondition(&st.Conditions, v.generation, mailv1alpha1.ConditionReady, v.ready, v.reason, v.message)
		st.ObservedGeneration, st.Members = v.generation, v.members
	default:
		return ctrl.Result{}, nil // the cluster has not decided yet; its verdict wakes us
	}
	if equalJSON(&al.Status, st) {
		return ctrl.Result{}, nil
	}
	base := al.DeepCopy()
	al.Status = *st
	if err := r.Status().Patch(ctx, &al, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	readyEvent(r.Recorder, &al, meta.FindStatusCondition(base.Status.Conditions, mailv1alpha1.ConditionReady),
		meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
	return ctrl.Result{}, nil
}
