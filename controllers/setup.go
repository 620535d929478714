package controllers

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
)

// batchDelay is how long a change to a Mailbox, MailAlias or Secret waits before its cluster or
// domain is reconciled. Each reconcile handles all of a cluster's mailboxes, so a burst of
// thousands of changes becomes one reconcile per delay (or per reconcile, when one takes
// longer) instead of one per change.
const batchDelay = time.Second

// mailboxWorkers bounds concurrent Mailbox reconciles: each waits on a write or two (generated
// password, finalizer), so a burst of new Mailboxes would otherwise be served one at a time.
const mailboxWorkers = 32

// specChanged passes creations, deletions and changes of an object's spec (which bump its
// generation, as does the start of a deletion), not status or metadata-only updates: the
// operator's own status writes must not trigger more reconciles.
var specChanged = builder.WithPredicates(predicate.GenerationChangedPredicate{})

// Options are the operator's settings that the reconcilers use.
type Options struct {
	// OperandImage is the image the mail servers run when a MailCluster names none.
	OperandImage string
	// UsageInterval is how often the replicas' admin APIs are read for mailbox usage and
	// handoff backlogs (0: never).
	UsageInterval time.Duration
	// HandoffBacklogAge is how long mail may wait for another replica before its cluster is
	// Degraded (0: five minutes).
	HandoffBacklogAge time.Duration
	// MoveInterval is how often the Mover takes each mailbox move a step further (0: a
	// second).
	MoveInterval time.Duration
}

// Setup registers every reconciler and index with the manager.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := SetupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	// The clusters decide about Mailboxes and MailAliases; their own reconcilers write it.
	vs := newVerdicts()
	bl := newBacklogs(opts.HandoffBacklogAge)
	if opts.UsageInterval > 0 {
		collector := &UsageCollector{Client: mgr.GetClient(), Interval: opts.UsageInterval, Log: mgr.GetLogger().WithName("usage"), Backlogs: bl}
		if err := mgr.Add(collector); err != nil {
			return err
		}
	}
	moves := make(chan event.GenericEvent, 64)
	mover := &Mover{Client: mgr.GetClient(), Interval: cmp.Or(opts.MoveInterval, time.Second), Log: mgr.GetLogger().WithName("mover"),
		Recorder: mgr.GetEventRecorder("kubemail-mover"), Wake: moves}
	if err := mgr.Add(mover); err != nil {
		return err
	}
	for _, setup := range []func(ctrl.Manager) error{
		func(mgr ctrl.Manager) error { return setupClusters(mgr, opts.OperandImage, vs, bl, moves) },
		setupDomains,
		func(mgr ctrl.Manager) error { return setupMailboxes(mgr, vs) },
		func(mgr ctrl.Manager) error { return setupAliases(mgr, vs) },
	} {
		if err := setup(mgr); err != nil {
			return err
		}
	}
	return nil
}

// setupClusters registers the MailClusterReconciler: a cluster is reconciled when it, an object
// it owns, or anything that goes into its directory changes.
func setupClusters(mgr ctrl.Manager, operandImage string, vs *verdicts, bl *backlogs, moves <-chan event.GenericEvent) error {
	c := mgr.GetClient()
	cluster := &MailClusterReconciler{Client: c, Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder("kubemail-mailcluster"),
		OperandImage: operandImage, Verdicts: vs, Backlogs: bl}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mailv1alpha1.MailCluster{}, specChanged).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		WatchesRawSource(source.Channel(bl.changed, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(source.Channel(moves, &handler.EnqueueRequestForObject{})).
		Watches(&mailv1alpha1.MailDomain{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			md := o.(*mailv1alpha1.MailDomain)
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: md.Namespace, Name: md.Spec.ClusterRef.Name}}}
		}), specChanged).
		// Every domain an object uses: a forwarding target or member in a domain the cluster
		// lists as unavailable keeps that listing alive.
		Watches(&mailv1alpha1.Mailbox{}, batched(func(ctx context.Context, o client.Object) []reconcile.Request {
			return clustersOfDomains(ctx, c, o.GetNamespace(), referencedDomains(o)...)
		}), specChanged).
		Watches(&mailv1alpha1.MailAlias{}, batched(func(ctx context.Context, o client.Object) []reconcile.Request {
			return clustersOfDomains(ctx, c, o.GetNamespace(), referencedDomains(o)...)
		}), specChanged).
		Watches(&corev1.Secret{}, batched(func(ctx context.Context, o client.Object) []reconcile.Request {
			return clustersOfSecret(ctx, c, o)
		})).
		// Mail servers running as local processes (make dev) announce themselves this way.
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetAnnotations()[names.AnnotationLocalAddress] == "" {
				return nil
			}
			cluster, ok := strings.CutSuffix(o.GetLabels()[discoveryv1.LabelServiceName], names.HeadlessService(""))
			if !ok || cluster == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: cluster}}}
		})).
		Complete(calm{cluster})
}

// setupDomains registers the MailDomainReconciler.
func setupDomains(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	domainsOfCluster := func(ctx context.Context, ns, cluster string) []reconcile.Request {
		var list mailv1alpha1.MailDomainList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexClusterRef: cluster}); err != nil {
			return nil
		}
		return requestsFor(list.Items)
	}
	return ctrl.NewControllerManagedBy(mgr).
		// The force-delete annotation lets a held deletion go: annotation changes count too.
		For(&mailv1alpha1.MailDomain{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Watches(&mailv1alpha1.MailCluster{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return domainsOfCluster(ctx, o.GetNamespace(), o.GetName())
		}), specChanged).
		// The client Service's external address goes into the domain's A/AAAA and PTR records.
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			owner := metav1.GetControllerOf(o)
			if owner == nil || owner.Kind != "MailCluster" || o.GetName() != names.ClientService(owner.Name) {
				return nil
			}
			return domainsOfCluster(ctx, o.GetNamespace(), owner.Name)
		})).
		// A domain counts its Mailboxes, and a domain being deleted waits for what uses it.
		Watches(&mailv1alpha1.Mailbox{}, batched(func(ctx context.Context, o client.Object) []reconcile.Request {
			return domainsNamed(ctx, c, o.GetNamespace(), referencedDomains(o)...)
		}), specChanged).
		Watches(&mailv1alpha1.MailAlias{}, batched(func(ctx context.Context, o client.Object) []reconcile.Request {
			return domainsNamed(ctx, c, o.GetNamespace(), referencedDomains(o)...)
		}), specChanged).
		Complete(calm{&MailDomainReconciler{Client: c, Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder("kubemail-maildomain")}})
}

// unserved maps a MailDomain or MailCluster to the objects (Mailboxes, or MailAliases when
// aliases) of its domains: their appearing or going changes whether those are served.
func unserved(c client.Client, aliases bool) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var doms []string
		switch x := o.(type) {
		case *mailv1alpha1.MailDomain:
			doms = []string{domainKey(x.Spec.Domain)}
		case *mailv1alpha1.MailCluster:
			var list mailv1alpha1.MailDomainList
			if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexClusterRef: o.GetName()}); err != nil {
				return nil
			}
			for _, d := range list.Items {
				doms = append(doms, domainKey(d.Spec.Domain))
			}
		}
		var reqs []reconcile.Request
		for _, d := range doms {
			in := []client.ListOption{client.InNamespace(o.GetNamespace()), client.MatchingFields{indexDomain: d}, client.UnsafeDisableDeepCopy}
			if aliases {
				var list mailv1alpha1.MailAliasList
				if c.List(ctx, &list, in...) == nil {
					reqs = append(reqs, requestsFor(list.Items)...)
				}
			} else {
				var list mailv1alpha1.MailboxList
				if c.List(ctx, &list, in...) == nil {
					reqs = append(reqs, requestsFor(list.Items)...)
				}
			}
		}
		return reqs
	})
}

// setupMailboxes registers the MailboxReconciler, woken also by its cluster's verdicts.
func setupMailboxes(mgr ctrl.Manager, vs *verdicts) error {
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&mailv1alpha1.Mailbox{}, specChanged).
		Owns(&corev1.Secret{}).
		WatchesRawSource(source.Channel(vs.mailboxes, &handler.EnqueueRequestForObject{})).
		Watches(&mailv1alpha1.MailDomain{}, unserved(c, false), specChanged).
		Watches(&mailv1alpha1.MailCluster{}, unserved(c, false), specChanged).
		WithOptions(controller.Options{MaxConcurrentReconciles: mailboxWorkers}).
		Complete(calm{&MailboxReconciler{Client: c, Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorder("kubemail-mailbox"), Verdicts: vs}})
}

// setupAliases registers the MailAliasReconciler, woken also by its cluster's verdicts.
func setupAliases(mgr ctrl.Manager, vs *verdicts) error {
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&mailv1alpha1.MailAlias{}, specChanged).
		WatchesRawSource(source.Channel(vs.aliases, &handler.EnqueueRequestForObject{})).
		Watches(&mailv1alpha1.MailDomain{}, unserved(c, true), specChanged).
		Watches(&mailv1alpha1.MailCluster{}, unserved(c, true), specChanged).
		Complete(calm{&MailAliasReconciler{Client: c, Recorder: mgr.GetEventRecorder("kubemail-mailalias"), Verdicts: vs}})
}

// errNotCachedYet: an object the reconcile just created is not in the cache yet.
var errNotCachedYet = errors.New("just created, not in the cache yet")

// calm retries quietly, with the work queue's back-off, what is part of normal operation: a
// write that lost an optimistic-concurrency race, an object just created that the cache does
// not show yet, or a create of an object that exists but is not in the cache yet. The error log
// then holds only real problems.
type calm struct{ reconcile.Reconciler }

func (c calm) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := c.Reconciler.Reconcile(ctx, req)
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || errors.Is(err, errNotCachedYet) {
		log.FromContext(ctx).V(1).Info("retrying", "reason", err.Error())
		return reconcile.Result{Requeue: true}, nil
	}
	return res, err
}

// batched is EnqueueRequestsFromMapFunc with every request delayed by batchDelay. The work
// queue holds a request once, at its earliest time, so later changes join the waiting one.
func batched(mapFn handler.MapFunc) handler.EventHandler {
	enqueue := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			for _, req := range mapFn(ctx, o) {
				q.AddAfter(req, batchDelay)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, q, e.Object)
		},
	}
}

func requestsFor[T any, P interface {
	*T
	metav1.Object
}](items []T) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(items))
	for i := range items {
		o := P(&items[i])
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}})
	}
	return out
}

func domainsNamed(ctx context.Context, c client.Client, ns string, domains ...string) []reconcile.Request {
	var out []reconcile.Request
	for _, domain := range domains {
		var list mailv1alpha1.MailDomainList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexDomain: domain}); err == nil {
			out = append(out, requestsFor(list.Items)...)
		}
	}
	return out
}

// referencedDomains are the domains a Mailbox or MailAlias uses: of its address, its aliases,
// and the addresses its mail is passed on to.
func referencedDomains(o client.Object) []string {
	var out []string
	add := func(a mailv1alpha1.EmailAddress) {
		if d := addressDomain(a); !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	switch x := o.(type) {
	case *mailv1alpha1.Mailbox:
		add(x.Spec.Address)
		for _, a := range x.Spec.Aliases {
			add(a)
		}
	case *mailv1alpha1.MailAlias:
		add(x.Spec.Address)
	}
	for _, d := range targetDomains(o) {
		add(mailv1alpha1.EmailAddress("@" + d))
	}
	return out
}

// clustersOfDomains maps domains to the MailClusters that serve them.
func clustersOfDomains(ctx context.Context, c client.Client, ns string, domains ...string) []reconcile.Request {
	seen := map[string]bool{}
	var out []reconcile.Request
	for _, dom := range domains {
		var list mailv1alpha1.MailDomainList
		if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{indexDomain: dom}); err != nil {
			continue
		}
		if len(list.Items) == 0 {
			// A domain no MailDomain serves may be one a cluster still lists as unavailable
			// (see unavailableDomains), which it drops once the last user of it is gone.
			var clusters mailv1alpha1.MailClusterList
			if c.List(ctx, &clusters, client.InNamespace(ns), client.UnsafeDisableDeepCopy) == nil {
				for _, mc := range clusters.Items {
					list.Items = append(list.Items, mailv1alpha1.MailDomain{Spec: mailv1alpha1.MailDomainSpec{ClusterRef: mailv1alpha1.LocalObjectReference{Name: mc.Name}}})
				}
			}
		}
		for _, d := range list.Items {
			if !seen[d.Spec.ClusterRef.Name] {
				seen[d.Spec.ClusterRef.Name] = true
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: d.Spec.ClusterRef.Name}})
			}
		}
	}
	return out
}

// clustersOfSecret maps a Secret to the clusters whose directory depends on it: the password
// Secret a Mailbox names, the generated password of the Mailbox that owns it, or a domain's
// DKIM key.
func clustersOfSecret(ctx context.Context, c client.Client, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	var mbs mailv1alpha1.MailboxList
	if err := c.List(ctx, &mbs, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexPasswordSecret: o.GetName()},
		client.UnsafeDisableDeepCopy); err == nil {
		for _, mb := range mbs.Items {
			out = append(out, clustersOfDomains(ctx, c, mb.Namespace, addressDomain(mb.Spec.Address))...)
		}
	}
	// The Secret cert-manager writes for a cluster with spec.tls.issuerRef (it sets no owner).
	if cluster, ok := strings.CutSuffix(o.GetName(), names.IssuedTLS("")); ok && cluster != "" {
		var mc mailv1alpha1.MailCluster
		if c.Get(ctx, types.NamespacedName{Namespace: o.GetNamespace(), Name: cluster}, &mc) == nil && mc.Spec.TLS != nil && mc.Spec.TLS.IssuerRef != nil {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: mc.Namespace, Name: mc.Name}})
		}
	}
	var clusters mailv1alpha1.MailClusterList
	if err := c.List(ctx, &clusters, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexRelaySecret: o.GetName()},
		client.UnsafeDisableDeepCopy); err == nil {
		out = append(out, requestsFor(clusters.Items)...)
	}
	for _, ref := range o.GetOwnerReferences() {
		if ref.APIVersion != mailv1alpha1.GroupVersion.String() {
			continue
		}
		key := types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}
		switch ref.Kind {
		case "Mailbox":
			var mb mailv1alpha1.Mailbox
			if c.Get(ctx, key, &mb, client.UnsafeDisableDeepCopy) == nil && mb.Spec.PasswordSecretRef == nil && o.GetName() == names.CredentialsSecret(mb.Name) {
				out = append(out, clustersOfDomains(ctx, c, mb.Namespace, addressDomain(mb.Spec.Address))...)
			}
		case "MailDomain":
			var md mailv1alpha1.MailDomain
			if c.Get(ctx, key, &md) == nil {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: md.Namespace, Name: md.Spec.ClusterRef.Name}})
			}
		}
	}
	return out
}
