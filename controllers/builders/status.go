package builders

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// ClusterObservation is what a MailCluster's conditions are computed from.
type ClusterObservation struct {
	Generation int64
	Hostname   string
	// Want is spec.replicas.
	Want int32
	// StatefulSet is the live StatefulSet (its generation and status).
	StatefulSet appsv1.StatefulSet
	// LocalReplicas counts servers that run as local processes (make dev).
	LocalReplicas int32
	// TLSSecret serves the certificate; SelfSigned when the operator generated it, and
	// TLSWaiting why a requested certificate is not there yet.
	TLSSecret  string
	SelfSigned bool
	TLSWaiting string
	// Autoconfig: the cluster serves client autoconfiguration and MTA-STS, which need a
	// certificate clients trust.
	Autoconfig bool
	// LoadBalancerPending and RelayProblem explain what keeps the cluster from serving, or "".
	LoadBalancerPending string
	RelayProblem        string
	// HandoffBacklog tells of mail a replica has held too long for another one, or "": the
	// cluster is Degraded, and still Ready (the mail is safe where it waits).
	HandoffBacklog string
	// Held counts the replicas kept running above Want because mailboxes live on them.
	Held int32
}

// ClusterConditions computes a MailCluster's conditions (Ready, Progressing, Degraded,
// SelfSignedCertificate) and its ready replica count. The first problem that explains a cluster
// not serving wins: a missing relay Secret (the pods cannot start) over a pending load balancer
// over replicas.
func ClusterConditions(o ClusterObservation) (conds []metav1.Condition, readyReplicas int32, ready bool) {
	cond := func(typ string, status bool, reason, msg string) {
		s := metav1.ConditionFalse
		if status {
			s = metav1.ConditionTrue
		}
		conds = append(conds, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: o.Generation})
	}
	certReason, certMsg := certificateState(o)
	cond(mailv1alpha1.ConditionSelfSignedCertificate, o.SelfSigned, certReason, certMsg)

	sts := o.StatefulSet
	running := o.Want + o.Held // the StatefulSet's replicas
	readyReplicas = sts.Status.ReadyReplicas
	rolledOut := sts.Status.ObservedGeneration >= sts.Generation && sts.Status.UpdatedReplicas == running &&
		sts.Status.CurrentRevision == sts.Status.UpdateRevision
	ready = sts.Status.ReadyReplicas >= running && rolledOut
	rollout := fmt.Sprintf("rolling out: %d of %d replicas updated, %d ready", sts.Status.UpdatedReplicas, running, sts.Status.ReadyReplicas)
	reason, msg := mailv1alpha1.ReasonReconciled, fmt.Sprintf("%d of %d replicas serving", sts.Status.ReadyReplicas, running)
	progressing, degraded := !rolledOut, rolledOut && !ready
	switch {
	case o.RelayProblem != "":
		ready, degraded, reason, msg = false, true, mailv1alpha1.ReasonRelayCredentialsMissing, o.RelayProblem
	case sts.Status.Replicas == 0 && o.LocalReplicas > 0:
		// make dev: the servers run next to the API server, where no kubelet runs pods.
		readyReplicas, ready = o.LocalReplicas, o.LocalReplicas >= o.Want
		progressing, degraded = false, !ready
		reason, msg = mailv1alpha1.ReasonLocalProcesses, fmt.Sprintf("no pods: %d of %d mail servers run as local processes", o.LocalReplicas, o.Want)
	case o.LoadBalancerPending != "":
		// Serving inside the cluster, but the address the world is to reach is not there.
		ready, degraded, reason, msg = false, true, mailv1alpha1.ReasonLoadBalancerPending, o.LoadBalancerPending
	case !rolledOut:
		reason, msg = mailv1alpha1.ReasonRollingOut, rollout
	case !ready:
		reason, msg = mailv1alpha1.ReasonReplicasUnavailable, fmt.Sprintf("%d of %d replicas ready", sts.Status.ReadyReplicas, running)
	}
	cond(mailv1alpha1.ConditionReady, ready, reason, msg)
	switch {
	case progressing:
		cond(mailv1alpha1.ConditionProgressing, true, mailv1alpha1.ReasonRollingOut, rollout)
	case o.Held > 0:
		cond(mailv1alpha1.ConditionProgressing, true, mailv1alpha1.ReasonScaleDownHeld, fmt.Sprintf(
			"spec.replicas is %d, but mailboxes live on replicas %d to %d: they keep running until those mailboxes have moved to the others",
			o.Want, o.Want, running-1))
	default:
		cond(mailv1alpha1.ConditionProgressing, false, mailv1alpha1.ReasonReconciled, "")
	}
	if !degraded && ready && o.HandoffBacklog != "" {
		degraded, reason, msg = true, mailv1alpha1.ReasonHandoffBacklog, o.HandoffBacklog
	}
	if degraded {
		cond(mailv1alpha1.ConditionDegraded, true, reason, msg)
	} else {
		cond(mailv1alpha1.ConditionDegraded, false, mailv1alpha1.ReasonReconciled, "")
	}
	return conds, readyReplicas, ready
}

func certificateState(o ClusterObservation) (string, string) {
	switch {
	case o.SelfSigned && o.TLSWaiting != "":
		return "CertificatePending", o.TLSWaiting + "; serving a self-signed certificate for " + o.Hostname + " meanwhile"
	case o.SelfSigned && o.Autoconfig:
		return "NoCertificateConfigured", "serving a self-signed certificate for " + o.Hostname + "; set spec.tls for a trusted one: " +
			"mail clients and MTA-STS senders refuse autoconfiguration and policies served with this one"
	case o.SelfSigned:
		return "NoCertificateConfigured", "serving a self-signed certificate for " + o.Hostname + "; set spec.tls for a trusted one"
	}
	return "CertificateConfigured", "serving the certificate from Secret " + o.TLSSecret
}
