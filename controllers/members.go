package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
)

// verdict is what a cluster's directory decided about one Mailbox or MailAlias: the part of its
// status only the cluster knows. The Mailbox and MailAlias reconcilers alone write those
// objects' status; the cluster hands them its verdicts.
type verdict struct {
	// generation is the object's generation the verdict was made for.
	generation      int64
	ready           metav1.ConditionStatus
	reason, message string
	shard           *int32
	login           mailv1alpha1.LoginState
	quota           int64 // bytes; 0 is unlimited
	members         int32 // of an alias
}

// verdicts carries verdicts from the cluster reconciles to the Mailbox and MailAlias reconcilers,
// waking them through their event channels when a verdict changes. The zero value is not ready;
// use newVerdicts.
type verdicts struct {
	mu                 sync.Mutex
	byObject           map[verdictKey]verdict
	mailboxes, aliases chan event.GenericEvent
}

type verdictKey struct {
	alias bool
	types.NamespacedName
}

func newVerdicts() *verdicts {
	// The buffers only smooth bursts: a full channel makes the publishing cluster reconcile wait
	// until the reconcilers' queues have taken the events.
	return &verdicts{byObject: map[verdictKey]verdict{},
		mailboxes: make(chan event.GenericEvent, 1024), aliases: make(chan event.GenericEvent, 1024)}
}

// publish records v for obj (a Mailbox or MailAlias) and wakes obj's reconciler when it changed.
// It gives up waking it when ctx ends (the operator stops; its successor decides afresh), so a
// full channel never holds up a shutdown and the hand-over of the leader lease.
func (vs *verdicts) publish(ctx context.Context, obj client.Object, v verdict) {
	_, alias := obj.(*mailv1alpha1.MailAlias)
	key := verdictKey{alias: alias, NamespacedName: client.ObjectKeyFromObject(obj)}
	vs.mu.Lock()
	old, known := vs.byObject[key]
	vs.byObject[key] = v
	vs.mu.Unlock()
	if known && sameVerdict(old, v) {
		return
	}
	ch, stub := vs.mailboxes, client.Object(&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}})
	if alias {
		ch, stub = vs.aliases, &mailv1alpha1.MailAlias{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	}
	select {
	case ch <- event.GenericEvent{Object: stub}:
	case <-ctx.Done():
	}
}

func sameVerdict(a, b verdict) bool {
	return a.generation == b.generation && a.ready == b.ready && a.reason == b.reason && a.message == b.message &&
		ptr.Equal(a.shard, b.shard) && a.login == b.login && a.quota == b.quota && a.members == b.members
}

// get returns the verdict on a Mailbox (alias false) or MailAlias, if a cluster made one.
func (vs *verdicts) get(alias bool, key types.NamespacedName) (verdict, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	v, ok := vs.byObject[verdictKey{alias: alias, NamespacedName: key}]
	return v, ok
}

// forget drops the verdict on an object that is gone.
func (vs *verdicts) forget(alias bool, key types.NamespacedName) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	delete(vs.byObject, verdictKey{alias: alias, NamespacedName: key})
}

// reportMembers hands the verdict on every Mailbox and MailAlias of the cluster to their
// reconcilers: Ready when it is in the directory just written, otherwise the reason it was left
// out. Mailboxes in awaiting, whose password is still being generated, get none yet.
func (r *MailClusterReconciler) reportMembers(ctx context.Context, mc *mailv1alpha1.MailCluster, inputs []builders.MailboxInput,
	awaiting map[string]bool, aliases []mailv1alpha1.MailAlias, res builders.DirectoryResult) {
	for _, in := range inputs {
		if !awaiting[in.Mailbox.Name] {
			r.Verdicts.publish(ctx, in.Mailbox, mailboxVerdict(mc.Name, in, res))
		}
	}
	for i := range aliases {
		al := &aliases[i]
		v := verdict{generation: al.Generation, ready: metav1.ConditionTrue, reason: mailv1alpha1.ReasonReconciled,
			message: fmt.Sprintf("served by MailCluster %q", mc.Name), members: int32(len(al.Spec.Members))}
		if p, bad := res.Problems[builders.ObjectKey("MailAlias", al.Name)]; bad {
			v.ready, v.reason, v.message, v.members = metav1.ConditionFalse, p.Reason, p.Message, 0
		}
		r.Verdicts.publish(ctx, al, v)
	}
}

// mailboxVerdict is the directory's verdict on one Mailbox of cluster.
func mailboxVerdict(cluster string, in builders.MailboxInput, res builders.DirectoryResult) verdict {
	mb := in.Mailbox
	v := verdict{generation: mb.Generation, quota: in.Quota, shard: ptr.To(int32(in.Shard))}
	p, bad := res.Problems[builders.ObjectKey("Mailbox", mb.Name)]
	switch {
	case bad && !p.Served:
		v.ready, v.reason, v.message, v.shard = metav1.ConditionFalse, p.Reason, p.Message, nil
	case bad && p.LoginDisabled:
		v.ready, v.reason, v.message, v.login = metav1.ConditionFalse, p.Reason, p.Message, mailv1alpha1.LoginDisabled
	case bad:
		v.ready, v.reason, v.message, v.login = metav1.ConditionFalse, p.Reason, p.Message, mailv1alpha1.LoginEnabled
		if mb.Spec.Suspended {
			v.login = mailv1alpha1.LoginSuspended
		}
	case mb.Spec.Suspended:
		v.ready, v.reason, v.login = metav1.ConditionTrue, mailv1alpha1.ReasonSuspended, mailv1alpha1.LoginSuspended
		v.message = fmt.Sprintf("served by MailCluster %q and suspended: mail is accepted and stored, logins and submission are refused", cluster)
	default:
		v.ready, v.reason, v.login = metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, mailv1alpha1.LoginEnabled
		v.message = fmt.Sprintf("served by MailCluster %q", cluster)
	}
	return v
}

// applyMailboxVerdict sets the fields of st that v decides. A Mailbox left out of the directory
// keeps the shard it had: its mail is still there. The verdict places a mailbox only once:
// after that its shard changes when a move ends, written by the Mover alone (a verdict computed
// before the move ended must not put it back).
func applyMailboxVerdict(st *mailv1alpha1.MailboxStatus, mb *mailv1alpha1.Mailbox, v verdict) {
	setCondition(&st.Conditions, v.generation, mailv1alpha1.ConditionReady, v.ready, v.reason, v.message)
	st.ObservedGeneration = v.generation
	st.Login = v.login
	if v.shard != nil && st.Shard == nil {
		st.Shard = v.shard
	}
	st.Quota = nil
	if v.quota > 0 {
		st.Quota = resource.NewQuantity(v.quota, resource.BinarySI)
	}
	st.CredentialsSecretName = ""
	if mb.Spec.PasswordSecretRef == nil {
		st.CredentialsSecretName, _ = passwordSecretName(mb)
	}
}

// equalJSON compares two API values by their serialized form (what the API server stores).
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
