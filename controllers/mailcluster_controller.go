package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
	"github.com/kubemail/kubemail/internal/dirsecret"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

// MailClusterReconciler turns a MailCluster into its StatefulSet, Services, configuration,
// certificate and directory, and reports the status of the cluster and of every Mailbox and
// MailAlias in its directory.
type MailClusterReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	// OperandImage is the mail server image when a MailCluster names none: the operator's own.
	OperandImage string
	// HashWorkers bounds concurrent password hashing (0: 2).
	HashWorkers int

	memos memos
}

// +kubebuilder:rbac:groups=mail.kubemail.io,resources=mailclusters;maildomains;mailboxes;mailaliases,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mail.kubemail.io,resources=mailclusters/status;maildomains/status;mailboxes/status;mailaliases/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mail.kubemail.io,resources=mailboxes/finalizers;mailclusters/finalizers;maildomains/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;configmaps;secrets;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

const (
	keyFingerprint    = "fingerprint-key"
	selfSignedRenewal = 30 * 24 * time.Hour
)

func (r *MailClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	var mc mailv1alpha1.MailCluster
	if err := r.Get(ctx, req.NamespacedName, &mc); err != nil {
		if apierrors.IsNotFound(err) {
			r.memos.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() {
		r.memos.forget(req.NamespacedName)
		return ctrl.Result{}, nil // owned objects go with it; PVCs stay
	}
	status := mc.Status.DeepCopy()

	tlsSecret, selfSigned, waiting, err := r.ensureTLS(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("TLS certificate: %w", err)
	}
	switch {
	case selfSigned && waiting != "":
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionSelfSignedCertificate, metav1.ConditionTrue,
			"CertificatePending", waiting+"; serving a self-signed certificate for "+string(mc.Spec.Hostname)+" meanwhile")
	case selfSigned:
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionSelfSignedCertificate, metav1.ConditionTrue,
			"NoCertificateConfigured", "serving a self-signed certificate for "+string(mc.Spec.Hostname)+"; set spec.tls for a trusted one")
	default:
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionSelfSignedCertificate, metav1.ConditionFalse,
			"CertificateConfigured", "serving the certificate from Secret "+tlsSecret)
	}

	if err := r.ensureAdminSecret(ctx, &mc); err != nil {
		return ctrl.Result{}, fmt.Errorf("admin Secret: %w", err)
	}
	parts, counts, recheck, err := r.reconcileDirectory(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("directory: %w", err)
	}

	relayProblem, err := r.checkRelayCredentials(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("smarthost credentials: %w", err)
	}

	cm, configHash, err := builders.ConfigMap(&mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	image := r.OperandImage
	sts := builders.StatefulSet(&mc, image, tlsSecret, configHash)
	desired := []client.Object{
		cm,
		builders.ServiceAccount(&mc),
		builders.Role(&mc, parts), // already applied before the directory; a no-op here
		builders.RoleBinding(&mc),
		builders.HeadlessService(&mc),
		builders.ClientService(&mc),
		builders.PodDisruptionBudget(&mc),
		sts,
	}
	for _, obj := range desired {
		if err := r.apply(ctx, &mc, obj); err != nil {
			return ctrl.Result{}, fmt.Errorf("%T %s: %w", obj, obj.GetName(), err)
		}
	}

	var live appsv1.StatefulSet
	if err := r.Get(ctx, client.ObjectKeyFromObject(sts), &live); err != nil {
		return ctrl.Result{}, err
	}
	want := ptr.Deref(mc.Spec.Replicas, 1)
	status.Replicas = live.Status.Replicas
	status.ReadyReplicas = live.Status.ReadyReplicas
	status.Selector = metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: builders.SelectorLabels(&mc)})
	status.Domains, status.Mailboxes = counts.domains, counts.mailboxes
	status.Endpoints = endpoints(&mc)
	rolledOut := live.Status.ObservedGeneration >= live.Generation && live.Status.UpdatedReplicas == want &&
		live.Status.CurrentRevision == live.Status.UpdateRevision
	ready := live.Status.ReadyReplicas >= want && rolledOut
	switch {
	case ready:
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
			fmt.Sprintf("%d of %d replicas serving", live.Status.ReadyReplicas, want))
	case !rolledOut:
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonRollingOut,
			fmt.Sprintf("rolling out: %d of %d replicas updated, %d ready", live.Status.UpdatedReplicas, want, live.Status.ReadyReplicas))
	default:
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonReplicasUnavailable,
			fmt.Sprintf("%d of %d replicas ready", live.Status.ReadyReplicas, want))
	}
	setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionProgressing, boolStatus(!rolledOut),
		map[bool]string{true: mailv1alpha1.ReasonRollingOut, false: mailv1alpha1.ReasonReconciled}[!rolledOut], "")
	degraded := rolledOut && live.Status.ReadyReplicas < want
	setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionDegraded, boolStatus(degraded),
		map[bool]string{true: mailv1alpha1.ReasonReplicasUnavailable, false: mailv1alpha1.ReasonReconciled}[degraded], "")
	local, err := r.localReplicas(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	lbPending, external, err := r.loadBalancerState(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if external != "" {
		status.Endpoints = endpointsAt(external)
	}
	switch {
	case live.Status.Replicas == 0 && local > 0:
		// make dev: the servers run next to the API server, where no kubelet runs pods.
		ready = local >= want
		msg := fmt.Sprintf("no pods: %d of %d mail servers run as local processes", local, want)
		status.ReadyReplicas = local
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, boolStatus(ready), mailv1alpha1.ReasonLocalProcesses, msg)
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionProgressing, metav1.ConditionFalse, mailv1alpha1.ReasonLocalProcesses, msg)
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionDegraded, boolStatus(!ready), mailv1alpha1.ReasonLocalProcesses, msg)
	case lbPending != "":
		// Serving inside the cluster, but the address the world is to reach is not there.
		ready = false
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, mailv1alpha1.ReasonLoadBalancerPending, lbPending)
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionDegraded, metav1.ConditionTrue, mailv1alpha1.ReasonLoadBalancerPending, lbPending)
	}
	if relayProblem != "" {
		// The pods cannot mount the Secret: say why rather than "replicas unavailable".
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse,
			mailv1alpha1.ReasonRelayCredentialsMissing, relayProblem)
		setCondition(&status.Conditions, mc.Generation, mailv1alpha1.ConditionDegraded, metav1.ConditionTrue,
			mailv1alpha1.ReasonRelayCredentialsMissing, relayProblem)
		ready = false
	}
	status.ObservedGeneration = mc.Generation

	if !equalClusterStatus(&mc.Status, status) {
		wasReady := metaReady(mc.Status.Conditions)
		wasLBPending := meta.IsStatusConditionPresentAndEqual(mc.Status.Conditions, mailv1alpha1.ConditionDegraded, metav1.ConditionTrue) &&
			meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionDegraded).Reason == mailv1alpha1.ReasonLoadBalancerPending
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Status = *status
		if err := r.Status().Patch(ctx, &mc, patch); err != nil {
			return ctrl.Result{}, err
		}
		if ready && !wasReady {
			r.Recorder.Eventf(&mc, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "all %d replicas are serving", want)
		}
		if relayProblem != "" {
			r.Recorder.Eventf(&mc, nil, corev1.EventTypeWarning, mailv1alpha1.ReasonRelayCredentialsMissing, "Reconcile", "%s", relayProblem)
		}
		if lbPending != "" && relayProblem == "" && !wasLBPending {
			r.Recorder.Eventf(&mc, nil, corev1.EventTypeWarning, mailv1alpha1.ReasonLoadBalancerPending, "Reconcile", "%s", lbPending)
		}
	}
	logger.V(1).Info("reconciled", "parts", parts, "mailboxes", counts.mailboxes)
	var result ctrl.Result
	if selfSigned || !ready {
		result.RequeueAfter = time.Hour
	}
	if waiting != "" {
		result.RequeueAfter = 30 * time.Second // the issued Secret is also watched; this is the fallback
	}
	if recheck > 0 && (result.RequeueAfter == 0 || recheck < result.RequeueAfter) {
		result.RequeueAfter = recheck
	}
	return result, nil
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

func metaReady(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == mailv1alpha1.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func equalClusterStatus(a, b *mailv1alpha1.MailClusterStatus) bool {
	ac, bc := a.DeepCopy(), b.DeepCopy()
	return equalJSON(ac, bc)
}

func endpoints(mc *mailv1alpha1.MailCluster) []mailv1alpha1.Endpoint {
	return endpointsAt(fmt.Sprintf("%s.%s.svc", names.ClientService(mc.Name), mc.Namespace))
}

func endpointsAt(host string) []mailv1alpha1.Endpoint {
	var out []mailv1alpha1.Endpoint
	for _, p := range names.MailPorts {
		out = append(out, mailv1alpha1.Endpoint{Name: p.Name, Host: host, Port: p.ServicePort})
	}
	return out
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

// apply creates obj or brings the live object's owned fields to obj's values.
func (r *MailClusterReconciler) apply(ctx context.Context, mc *mailv1alpha1.MailCluster, obj client.Object) error {
	desired := obj.DeepCopyObject().(client.Object)
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, obj, func() error {
		obj.SetLabels(desired.GetLabels())
		if a := desired.GetAnnotations(); a != nil {
			obj.SetAnnotations(a)
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			o.Data = desired.(*corev1.ConfigMap).Data
		case *corev1.ServiceAccount:
		case *rbacv1.Role:
			o.Rules = desired.(*rbacv1.Role).Rules
		case *rbacv1.RoleBinding:
			o.RoleRef, o.Subjects = desired.(*rbacv1.RoleBinding).RoleRef, desired.(*rbacv1.RoleBinding).Subjects
		case *corev1.Service:
			d := desired.(*corev1.Service)
			o.Spec.Type, o.Spec.Selector, o.Spec.Ports = d.Spec.Type, d.Spec.Selector, d.Spec.Ports
			o.Spec.PublishNotReadyAddresses, o.Spec.ExternalTrafficPolicy = d.Spec.PublishNotReadyAddresses, d.Spec.ExternalTrafficPolicy
			if o.CreationTimestamp.IsZero() {
				o.Spec.ClusterIP = d.Spec.ClusterIP
			}
		case *policyv1.PodDisruptionBudget:
			o.Spec = desired.(*policyv1.PodDisruptionBudget).Spec
		case *appsv1.StatefulSet:
			d := desired.(*appsv1.StatefulSet)
			if o.CreationTimestamp.IsZero() {
				o.Spec = d.Spec // selector, serviceName and claim templates are immutable later
			} else {
				o.Spec.Replicas, o.Spec.Template, o.Spec.UpdateStrategy = d.Spec.Replicas, d.Spec.Template, d.Spec.UpdateStrategy
				o.Spec.PersistentVolumeClaimRetentionPolicy = d.Spec.PersistentVolumeClaimRetentionPolicy
			}
		}
		return controllerutil.SetControllerReference(mc, obj, r.Scheme)
	})
	return err
}

// ensureTLS returns the name of the Secret with the servers' certificate: the one the cluster
// names, the one cert-manager issued for spec.tls.issuerRef, or else a self-signed one it
// generates and renews (also while cert-manager has not issued yet, which waiting then says).
func (r *MailClusterReconciler) ensureTLS(ctx context.Context, mc *mailv1alpha1.MailCluster) (secret string, selfSigned bool, waiting string, err error) {
	if mc.Spec.TLS != nil && mc.Spec.TLS.SecretName != "" {
		return mc.Spec.TLS.SecretName, false, "", nil
	}
	if mc.Spec.TLS != nil && mc.Spec.TLS.IssuerRef != nil {
		issued, why, err := r.ensureIssuedTLS(ctx, mc)
		if err != nil || issued != "" {
			return issued, false, "", err
		}
		name, _, err := r.ensureSelfSigned(ctx, mc)
		return name, true, why, err
	}
	name, selfSigned, err := r.ensureSelfSigned(ctx, mc)
	return name, selfSigned, "", err
}

// ensureSelfSigned returns the Secret with the cluster's self-signed certificate, generating it
// when it is missing, for another hostname, or near its end.
func (r *MailClusterReconciler) ensureSelfSigned(ctx context.Context, mc *mailv1alpha1.MailCluster) (string, bool, error) {
	name := names.SelfSignedTLS(mc.Name)
	var sec corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: name}, &sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", true, err
	}
	if err == nil && certStillGood(sec.Data[corev1.TLSCertKey], string(mc.Spec.Hostname)) {
		return name, true, nil
	}
	certPEM, keyPEM, gerr := tlsconf.SelfSigned([]string{string(mc.Spec.Hostname)}, 365*24*time.Hour)
	if gerr != nil {
		return "", true, gerr
	}
	sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mc.Namespace}}
	_, err = controllerutil.CreateOrUpdate(ctx, r.Client, &sec, func() error {
		sec.Labels = builders.Labels(mc)
		sec.Type = corev1.SecretTypeTLS
		sec.Data = map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}
		return controllerutil.SetControllerReference(mc, &sec, r.Scheme)
	})
	if err == nil {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "SelfSignedCertificate", "Generate",
			"generated a self-signed certificate for %s", mc.Spec.Hostname)
	}
	return name, true, err
}

func certStillGood(certPEM []byte, hostname string) bool {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	return cert.VerifyHostname(hostname) == nil && time.Until(cert.NotAfter) > selfSignedRenewal
}

type directoryCounts struct{ domains, mailboxes int32 }

// reconcileDirectory compiles the cluster's directory, writes it into its Secrets when it
// changed, and reports every Mailbox's and MailAlias's status. It returns the number of parts,
// and when to look again at new Mailboxes whose generated password is not there yet.
func (r *MailClusterReconciler) reconcileDirectory(ctx context.Context, mc *mailv1alpha1.MailCluster) (int, directoryCounts, time.Duration, error) {
	memo := r.memos.of(mc)
	ns := client.InNamespace(mc.Namespace)
	var domains mailv1alpha1.MailDomainList
	if err := r.List(ctx, &domains, ns, client.MatchingFields{indexClusterRef: mc.Name}); err != nil {
		return 0, directoryCounts{}, 0, err
	}
	dkimKeys := map[string]string{}
	domainByName := map[string]*mailv1alpha1.MailDomain{}
	var mailboxes []*mailv1alpha1.Mailbox
	var aliases []mailv1alpha1.MailAlias
	seenMailbox, seenAlias := map[string]bool{}, map[string]bool{}
	for i := range domains.Items {
		d := &domains.Items[i]
		domainByName[domainKey(d.Spec.Domain)] = d
		var key corev1.Secret
		if err := r.Get(ctx, types.NamespacedName{Namespace: mc.Namespace, Name: names.DKIMSecret(d.Name)}, &key); err == nil {
			dkimKeys[domainKey(d.Spec.Domain)] = string(key.Data["private.pem"])
		}
		// Without deep copies: a cluster's thousands of Mailboxes are only read here; a
		// status write carries the new status alone.
		var mbs mailv1alpha1.MailboxList
		if err := r.List(ctx, &mbs, ns, client.MatchingFields{indexDomain: domainKey(d.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
			return 0, directoryCounts{}, 0, err
		}
		for i := range mbs.Items {
			mb := &mbs.Items[i]
			if !seenMailbox[mb.Name] && mb.DeletionTimestamp.IsZero() && addressDomain(mb.Spec.Address) == domainKey(d.Spec.Domain) {
				seenMailbox[mb.Name] = true
				mailboxes = append(mailboxes, mb)
			}
		}
		var als mailv1alpha1.MailAliasList
		if err := r.List(ctx, &als, ns, client.MatchingFields{indexDomain: domainKey(d.Spec.Domain)}, client.UnsafeDisableDeepCopy); err != nil {
			return 0, directoryCounts{}, 0, err
		}
		for _, al := range als.Items {
			if !seenAlias[al.Name] && al.DeletionTimestamp.IsZero() {
				seenAlias[al.Name] = true
				aliases = append(aliases, al)
			}
		}
	}
	sort.Slice(mailboxes, func(i, j int) bool { return mailboxes[i].Name < mailboxes[j].Name })
	sort.Slice(aliases, func(i, j int) bool { return aliases[i].Name < aliases[j].Name })

	fpKey, err := r.fingerprintKey(ctx, mc)
	if err != nil {
		return 0, directoryCounts{}, 0, err
	}
	inputs, awaiting, err := r.resolveMailboxes(ctx, mc, memo, mailboxes, domainByName, fpKey)
	if err != nil {
		return 0, directoryCounts{}, 0, err
	}
	res := builders.Directory(domains.Items, dkimKeys, inputs, aliases)
	previous := memo.dirMailboxes
	if res.Spec.UnavailableDomains, err = r.unavailableDomains(ctx, mc, memo.dirDomains, domainByName); err != nil {
		return 0, directoryCounts{}, 0, err
	}

	parts, generation, err := directoryParts(mc.Name, &res.Spec)
	if err != nil {
		return 0, directoryCounts{}, 0, err
	}
	// The servers may read only the parts their Role names, so the Role grows before the
	// directory does.
	if err := r.apply(ctx, mc, builders.Role(mc, len(parts))); err != nil {
		return 0, directoryCounts{}, 0, fmt.Errorf("role: %w", err)
	}
	if err := r.writeDirectory(ctx, mc, parts, generation, &res.Spec, previous); err != nil {
		return 0, directoryCounts{}, 0, err
	}
	memo.remember(generation, &res.Spec)
	if err := r.reportMembers(ctx, mc, memo, inputs, awaiting.names, aliases, res); err != nil {
		return len(parts), directoryCounts{}, 0, err
	}
	return len(parts), directoryCounts{domains: int32(len(res.Spec.Domains)), mailboxes: int32(len(res.Spec.Mailboxes))}, awaiting.recheck, nil
}

// unavailableDomains are the domains the directory served or listed as unavailable before
// (previous) that no MailDomain serves now while Mailboxes or MailAliases still use them: a
// MailDomain deleted with AnnotationForceDelete. Their mail gets a temporary error rather than
// a bounce, or worse, a trip to the outbound queue for addresses that were ours.
func (r *MailClusterReconciler) unavailableDomains(ctx context.Context, mc *mailv1alpha1.MailCluster, previous []string,
	served map[string]*mailv1alpha1.MailDomain) ([]string, error) {
	var out []string
	for _, d := range previous {
		if served[d] != nil || slices.Contains(out, d) {
			continue
		}
		users, err := domainUsers(ctx, r.Client, mc.Namespace, d)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// fingerprintKey returns the cluster's key for password fingerprints, creating it once.
func (r *MailClusterReconciler) fingerprintKey(ctx context.Context, mc *mailv1alpha1.MailCluster) ([]byte, error) {
	sec := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: mc.Name + "-operator", Namespace: mc.Namespace}}
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, &sec, func() error {
		sec.Labels = builders.Labels(mc)
		if len(sec.Data[keyFingerprint]) < 32 {
			sec.Data = map[string][]byte{keyFingerprint: []byte(newPassword() + newPassword())}
		}
		return controllerutil.SetControllerReference(mc, &sec, r.Scheme)
	})
	return sec.Data[keyFingerprint], err
}

func quotaBytes(q, def *resource.Quantity) int64 {
	if q != nil {
		return q.Value()
	}
	if def != nil {
		return def.Value()
	}
	return 0
}

// directoryParts splits spec into the data of its Secrets, each stamped with a generation
// derived from the content, so an unchanged directory is never rewritten. The generation is
// only in each part's KeyGeneration, so the content is serialized once.
func directoryParts(cluster string, spec *directory.Spec) ([]dirsecret.Part, string, error) {
	parts, err := dirsecret.Split(cluster, spec, "", 0)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write(p.Data[dirsecret.KeyDirectory])
	}
	generation := hex.EncodeToString(h.Sum(nil))[:16]
	for _, p := range parts {
		p.Data[dirsecret.KeyGeneration] = []byte(generation)
	}
	return parts, generation, nil
}

// writeDirectory stores the directory's parts in the cluster's Secrets, touching only parts
// whose content changed: the other parts first, the first part last, then removes surplus parts.
func (r *MailClusterReconciler) writeDirectory(ctx context.Context, mc *mailv1alpha1.MailCluster, parts []dirsecret.Part, generation string,
	spec *directory.Spec, previous map[string]directory.MailboxSpec) error {
	changed := false
	order := append(slices.Clone(parts[1:]), parts[0])
	for _, p := range order {
		sec := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: mc.Namespace}}
		res, err := controllerutil.CreateOrUpdate(ctx, r.Client, &sec, func() error {
			sec.Labels = builders.Labels(mc)
			if !equalData(sec.Data, p.Data) {
				sec.Data = p.Data
			}
			return controllerutil.SetControllerReference(mc, &sec, r.Scheme)
		})
		if err != nil {
			return err
		}
		changed = changed || res != controllerutil.OperationResultNone
	}
	for i := len(parts); ; i++ {
		// Asking the cache first spares the API server a failing delete on every reconcile.
		key := types.NamespacedName{Namespace: mc.Namespace, Name: dirsecret.SecretName(mc.Name, i)}
		var surplus corev1.Secret
		if err := r.Get(ctx, key, &surplus, client.UnsafeDisableDeepCopy); err != nil {
			if apierrors.IsNotFound(err) {
				break
			}
			return err
		}
		if err := r.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	if changed {
		removed, disabled := directoryLosses(previous, spec)
		note := ""
		if len(removed) > 0 {
			note = "; removed " + someOf(removed)
		}
		if len(spec.UnavailableDomains) > 0 {
			note += "; mail to " + strings.Join(spec.UnavailableDomains, ", ") + " is refused with a temporary error (MailDomain deleted while still in use)"
		}
		r.Recorder.Eventf(mc, nil, corev1.EventTypeNormal, "DirectoryUpdated", "Update",
			"directory %s: %d domains, %d mailboxes, %d aliases in %d Secret(s)%s", generation,
			len(spec.Domains), len(spec.Mailboxes), len(spec.Aliases), len(parts), note)
		if len(disabled) > 0 {
			r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "LoginDisabled", "Update",
				"directory %s disabled the logins of %s (mail is still accepted); see each Mailbox's Ready condition", generation, someOf(disabled))
		}
	}
	return nil
}

// directoryLosses compares the directory before and after a change: the mailboxes it no longer
// has, and those whose logins it disabled (with why).
func directoryLosses(previous map[string]directory.MailboxSpec, spec *directory.Spec) (removed, disabled []string) {
	now := make(map[string]bool, len(spec.Mailboxes))
	for _, mb := range spec.Mailboxes {
		now[mb.Address] = true
		if prev, ok := previous[mb.Address]; ok && mb.Disabled && !prev.Disabled {
			disabled = append(disabled, mb.Address+" ("+mb.DisabledReason+")")
		}
	}
	for addr := range previous {
		if !now[addr] {
			removed = append(removed, addr)
		}
	}
	sort.Strings(removed)
	sort.Strings(disabled)
	return removed, disabled
}

func equalData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
