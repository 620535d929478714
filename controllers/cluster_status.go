package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// reconcileStatus writes the cluster's status from what the other sub-reconcilers found, tells
// of what changed with events, and says when to look again.
func (r *MailClusterReconciler) reconcileStatus(ctx context.Context, mc *mailv1alpha1.MailCluster, tls clusterTLS,
	dir clusterDirectory, wl clusterWorkload) (ctrl.Result, error) {
	want := ptr.Deref(mc.Spec.Replicas, 1)
	conds, readyReplicas, ready := builders.ClusterConditions(builders.ClusterObservation{
		Generation: mc.Generation, Hostname: string(mc.Spec.Hostname), Want: want, StatefulSet: wl.statefulSet,
		LocalReplicas: wl.localReplicas, TLSSecret: tls.secret, SelfSigned: tls.selfSigned, TLSWaiting: tls.waiting,
		LoadBalancerPending: wl.lbPending, RelayProblem: wl.relayProblem, Held: wl.held,
		Autoconfig:     mc.Spec.Autoconfig != nil && mc.Spec.Autoconfig.Enabled,
		HandoffBacklog: r.Backlogs.problem(client.ObjectKeyFromObject(mc)),
	})
	status := mc.Status.DeepCopy()
	for _, c := range conds {
		setCondition(&status.Conditions, c.ObservedGeneration, c.Type, c.Status, c.Reason, c.Message)
	}
	status.Replicas, status.ReadyReplicas = wl.statefulSet.Status.Replicas, readyReplicas
	status.Selector = metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: builders.SelectorLabels(mc)})
	status.Domains, status.Mailboxes = dir.domains, dir.mailboxes
	status.Endpoints = endpoints(mc, wl.external)
	status.ObservedGeneration = mc.Generation
	if !equalJSON(&mc.Status, status) {
		was := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionReady)
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Status = *status
		if err := r.Status().Patch(ctx, mc, patch); err != nil {
			return ctrl.Result{}, err
		}
		r.clusterEvent(mc, was, meta.FindStatusCondition(status.Conditions, mailv1alpha1.ConditionReady), want)
	}
	var result ctrl.Result
	if tls.selfSigned || !ready {
		result.RequeueAfter = time.Hour
	}
	if tls.waiting != "" {
		result.RequeueAfter = 30 * time.Second // the issued Secret is also watched; this is the fallback
	}
	if dir.recheck > 0 && (result.RequeueAfter == 0 || dir.recheck < result.RequeueAfter) {
		result.RequeueAfter = dir.recheck
	}
	return result, nil
}

// clusterEvent tells of a cluster becoming ready, or of a problem that keeps it from serving
// (rolling out and replicas coming and going are its normal life, and not told).
func (r *MailClusterReconciler) clusterEvent(mc *mailv1alpha1.MailCluster, was, now *metav1.Condition, want int32) {
	switch {
	case now.Status == metav1.ConditionTrue && (was == nil || was.Status != metav1.ConditionTrue):
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "all %d replicas are serving", want)
	case now.Reason == mailv1alpha1.ReasonRelayCredentialsMissing || now.Reason == mailv1alpha1.ReasonLoadBalancerPending:
		if was == nil || was.Reason != now.Reason || was.Message != now.Message {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
		}
	}
}

// endpoints are where clients reach the cluster: the client Service's external address once it
// has one, else its name inside the cluster.
func endpoints(mc *mailv1alpha1.MailCluster, external string) []mailv1alpha1.Endpoint {
	host := external
	if host == "" {
		host = fmt.Sprintf("%s.%s.svc", names.ClientService(mc.Name), mc.Namespace)
	}
	var out []mailv1alpha1.Endpoint
	for _, p := range names.MailPorts {
		out = append(out, mailv1alpha1.Endpoint{Name: p.Name, Host: host, Port: p.ServicePort})
	}
	return out
}
