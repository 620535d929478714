package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// MailClusterReconciler turns a MailCluster into its StatefulSet, Services, configuration,
// certificate and directory, and reports the status of the cluster and of every Mailbox and
// MailAlias in its directory. Each concern is a sub-reconciler in a file of its own:
// cluster_tls.go (the certificate), cluster_directory.go with passwords.go and members.go (the
// directory and its members' status), cluster_workload.go (the objects that run the servers)
// and cluster_status.go (the cluster's status); usage.go reads what the servers store.
type MailClusterReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder recorder.EventRecorder
	// OperandImage is the mail server image when a MailCluster names none: the operator's own.
	OperandImage string
	// HashWorkers bounds concurrent password hashing (0: 2).
	HashWorkers int
	// Verdicts takes what the directory decided about each Mailbox and MailAlias to their own
	// reconcilers, which write their status.
	Verdicts *verdicts
	// Backlogs tells of replicas holding mail too long for others (read by the UsageCollector).
	Backlogs *backlogs

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

func (r *MailClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
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
	tls, err := r.reconcileTLS(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("TLS certificate: %w", err)
	}
	dir, err := r.reconcileDirectory(ctx, &mc)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("directory: %w", err)
	}
	wl, err := r.reconcileWorkload(ctx, &mc, tls, dir)
	if err != nil {
		return ctrl.Result{}, err
	}
	log.FromContext(ctx).V(1).Info("reconciled", "parts", dir.parts, "mailboxes", dir.mailboxes)
	return r.reconcileStatus(ctx, &mc, tls, dir, wl)
}
