// Package controllers holds kubemail's reconcilers: they fetch objects, call the pure builders
// in controllers/builders, apply the results and report status.
package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// setCondition records a condition; lastTransitionTime changes only when the status flips.
// It reports whether anything changed.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) bool {
	return meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// readyEvent records an event on obj when its Ready condition changed from was to now: a
// Warning with the condition's reason and message when it is not Ready (or Ready with a caveat,
// such as Suspended), a Normal "Resolved" when a problem went away. An object's first Ready is
// no news (thousands of new Mailboxes would flood the events), and an unchanged condition
// records nothing, so each problem is told once, with the same words as the condition.
func readyEvent(rec recorder.EventRecorder, obj runtime.Object, was, now *metav1.Condition) {
	if rec == nil || now == nil {
		return
	}
	if was != nil && was.Status == now.Status && was.Reason == now.Reason && was.Message == now.Message {
		return
	}
	switch {
	case now.Status != metav1.ConditionTrue:
		rec.Eventf(obj, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	case now.Reason != mailv1alpha1.ReasonReconciled:
		rec.Eventf(obj, nil, corev1.EventTypeNormal, now.Reason, "Reconcile", "%s", now.Message)
	case was != nil && (was.Status != metav1.ConditionTrue || was.Reason != now.Reason):
		rec.Eventf(obj, nil, corev1.EventTypeNormal, "Resolved", "Reconcile", "%s resolved: %s", was.Reason, now.Message)
	}
}
