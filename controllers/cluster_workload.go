package controllers

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/names"
)

// clusterWorkload is what the workload sub-reconciler found: the live StatefulSet and what keeps
// the servers from serving or from being reached.
type clusterWorkload struct {
	statefulSet appsv1.StatefulSet
	// held is the number of replicas kept running above spec.replicas: mailboxes live there.
	held          int32
	relayProblem  string
	localReplicas int32
	lbPending     string
	// external is the client Service's external address, once it has one.
	external string
}

// reconcileWorkload applies the objects that run the cluster's servers (settings, identity and
// rights, Services, disruption budget, StatefulSet) and observes them. A replica that holds
// mailboxes keeps running when spec.replicas goes below it: shrinking the StatefulSet would
// leave them without a home.
func (r *MailClusterReconciler) reconcileWorkload(ctx context.Context, mc *mailv1alpha1.MailCluster, tls clusterTLS, dir clusterDirectory) (clusterWorkload, error) {
	var wl clusterWorkload
	if err := r.ensureAdminSecret(ctx, mc); err != nil {
		return wl, fmt.Errorf("admin Secret: %w", err)
	}
	if err := r.ensureClusterTLS(ctx, mc); err != nil {
		return wl, fmt.Errorf("the replicas' certificates: %w", err)
	}
	var err error
	if wl.relayProblem, err = r.checkRelayCredentials(ctx, mc); err != nil {
		return wl, fmt.Errorf("smarthost credentials: %w", err)
	}
	cm, configHash, err := builders.ConfigMap(mc)
	if err != nil {
		return wl, err
	}
	sts := builders.StatefulSet(mc, r.OperandImage, tls.secret, configHash)
	if want := ptr.Deref(mc.Spec.Replicas, 1); dir.shardsInUse > want {
		wl.held = dir.shardsInUse - want
		sts.Spec.Replicas = ptr.To(dir.shardsInUse)
	}
	for _, obj := range []client.Object{
		cm,
		builders.ServiceAccount(mc),
		builders.Role(mc, dir.parts), // already applied before the directory; a no-op here
		builders.RoleBinding(mc),
		builders.HeadlessService(mc),
		builders.ClientService(mc),
		builders.PodDisruptionBudget(mc),
		builders.NetworkPolicy(mc),
		sts,
	} {
		if _, err := apply(ctx, r.Client, r.Scheme, mc, obj); err != nil {
			return wl, fmt.Errorf("%T %s: %w", obj, obj.GetName(), err)
		}
	}
	if err := r.Get(ctx, client.ObjectKeyFromObject(sts), &wl.statefulSet); err != nil {
		if apierrors.IsNotFound(err) {
			return wl, fmt.Errorf("StatefulSet %s: %w", sts.Name, errNotCachedYet)
		}
		return wl, err
	}
	if wl.localReplicas, err = r.localReplicas(ctx, mc); err != nil {
		return wl, err
	}
	wl.lbPending, wl.external, err = r.loadBalancerState(ctx, mc)
	return wl, err
}

// checkRelayCredentials returns what is wrong with the smarthost's credentials Secret, or ""
// when the cluster names none or it holds both keys. Only the key names are looked at: the
// values never reach a log, an event or the status.
func (r *MailClusterReconciler) checkRelayCredentials(ctx context.Context, mc *mailv1alpha1.MailCluster) (string, error) {
	name := builders.RelayCredentialsSecret(mc)
	if name == "" {
		return "", nil
	}
	var sec corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: mc.Namespace, Name: name}, &sec); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Sprintf("Secret %s (spec.outbound.relay.credentialsSecretRef) does not exist; the mail server pods start once it does, with keys %s and %s",
				name, names.RelayUsernameKey, names.RelayPasswordKey), nil
		}
		return "", err
	}
	var missing []string
	for _, k := range []string{names.RelayUsernameKey, names.RelayPasswordKey} {
		if len(sec.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("Secret %s (spec.outbound.relay.credentialsSecretRef) lacks the key %s; the mail server pods start once it has both %s and %s",
			name, strings.Join(missing, " and "), names.RelayUsernameKey, names.RelayPasswordKey), nil
	}
	return "", nil
}

// localReplicas counts the cluster's mail servers that run as local processes (make dev): they
// publish EndpointSlices marked with AnnotationLocalAddress, as no real pod's slice is.
func (r *MailClusterReconciler) localReplicas(ctx context.Context, mc *mailv1alpha1.MailCluster) (int32, error) {
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(mc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: names.HeadlessService(mc.Name)}); err != nil {
		return 0, err
	}
	var n int32
	for _, s := range slices.Items {
		if s.Annotations[names.AnnotationLocalAddress] != "" {
			n += int32(len(s.Endpoints))
		}
	}
	return n, nil
}

// loadBalancerState reads the client Service: for type LoadBalancer without an address yet, why
// the cluster cannot be reached from outside; once it has one, that address.
func (r *MailClusterReconciler) loadBalancerState(ctx context.Context, mc *mailv1alpha1.MailCluster) (pending, external string, err error) {
	var svc corev1.Service
	if err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: names.ClientService(mc.Name)}, &svc); err != nil {
		return "", "", client.IgnoreNotFound(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return "", "", nil
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.Hostname != "" {
			return "", in.Hostname, nil
		}
		if in.IP != "" {
			return "", in.IP, nil
		}
	}
	return fmt.Sprintf("Service %s is of type LoadBalancer and has no external address yet (EXTERNAL-IP <pending>): mail from outside "+
		"cannot reach the cluster. Without a load balancer implementation in the cluster (a cloud provider, MetalLB, ...) set "+
		"spec.service.type to NodePort or ClusterIP", svc.Name), "", nil
}
