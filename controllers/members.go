package controllers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
)

// statusWorkers bounds concurrent status writes when many mailboxes change at once.
const statusWorkers = 32

// reportMembers writes the status of every Mailbox and MailAlias of the cluster: Ready when it
// is in the directory just written, otherwise the reason it was left out. Only changed statuses
// are written, and none for the Mailboxes in awaiting, whose password is still being generated.
func (r *MailClusterReconciler) reportMembers(ctx context.Context, mc *mailv1alpha1.MailCluster, memo *clusterMemo, inputs []builders.MailboxInput,
	awaiting map[string]bool, aliases []mailv1alpha1.MailAlias, res builders.DirectoryResult) error {
	sw := &statusWriter{earlier: memo.statusWrites, unseen: map[types.UID]statusWrite{}}
	defer func() { memo.statusWrites = sw.unseen }()
	var todo []func() error
	for _, in := range inputs {
		mb := in.Mailbox
		if awaiting[mb.Name] {
			continue
		}
		st := mb.Status.DeepCopy()
		p, bad := res.Problems[builders.ObjectKey("Mailbox", mb.Name)]
		switch {
		case bad && !p.Served:
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
			st.Login = ""
		case bad:
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
			st.Shard, st.Login = ptr.To(int32(in.Shard)), mailv1alpha1.LoginDisabled
		case mb.Spec.Suspended:
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonSuspended,
				fmt.Sprintf("served by MailCluster %q and suspended: mail is accepted and stored, logins and submission are refused", mc.Name))
			st.Shard, st.Login = ptr.To(int32(in.Shard)), mailv1alpha1.LoginSuspended
		default:
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
				fmt.Sprintf("served by MailCluster %q", mc.Name))
			st.Shard, st.Login = ptr.To(int32(in.Shard)), mailv1alpha1.LoginEnabled
		}
		if bad && !p.Served {
			// The mail stored under its address, if any, is another object's.
			st.Usage, st.Messages = nil, 0
		}
		st.ObservedGeneration = mb.Generation
		st.Quota = nil
		if in.Quota > 0 {
			st.Quota = resource.NewQuantity(in.Quota, resource.BinarySI)
		}
		st.CredentialsSecretName = ""
		if mb.Spec.PasswordSecretRef == nil {
			st.CredentialsSecretName, _ = passwordSecretName(mb)
		}
		if write, needed := sw.needed(mb, &mb.Status, st, st.Conditions); needed {
			// The patch is the difference of the statuses alone; with thousands waiting, copies
			// of whole Mailboxes would cost more memory than anything else in the reconcile.
			key := metav1.ObjectMeta{Name: mb.Name, Namespace: mb.Namespace, UID: mb.UID}
			was := mb.Status
			todo = append(todo, func() error {
				patch := client.MergeFrom(&mailv1alpha1.Mailbox{ObjectMeta: key, Status: was})
				next := &mailv1alpha1.Mailbox{ObjectMeta: key, Status: *st}
				if err := r.Status().Patch(ctx, next, patch); err != nil {
					return client.IgnoreNotFound(err)
				}
				sw.wrote(write)
				readyEvent(r.Recorder, next, meta.FindStatusCondition(was.Conditions, mailv1alpha1.ConditionReady),
					meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
				return nil
			})
		}
	}
	for i := range aliases {
		al := aliases[i].DeepCopy()
		st := al.Status.DeepCopy()
		if p, bad := res.Problems[builders.ObjectKey("MailAlias", al.Name)]; bad {
			setCondition(&st.Conditions, al.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
			st.Members = 0
		} else {
			setCondition(&st.Conditions, al.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
				fmt.Sprintf("served by MailCluster %q", mc.Name))
			st.Members = int32(len(al.Spec.Members))
		}
		st.ObservedGeneration = al.Generation
		if write, needed := sw.needed(al, &al.Status, st, st.Conditions); needed {
			todo = append(todo, func() error {
				patch := client.MergeFrom(al.DeepCopy())
				was := meta.FindStatusCondition(al.Status.Conditions, mailv1alpha1.ConditionReady)
				al.Status = *st
				if err := r.Status().Patch(ctx, al, patch); err != nil {
					return client.IgnoreNotFound(err)
				}
				sw.wrote(write)
				readyEvent(r.Recorder, al, was, meta.FindStatusCondition(st.Conditions, mailv1alpha1.ConditionReady))
				return nil
			})
		}
	}
	return runParallel(todo, statusWorkers)
}

// statusWrite is a status this process wrote: over which resourceVersion of which object, and
// a digest of the status.
type statusWrite struct {
	uid  types.UID
	over string
	sum  [sha256.Size]byte
}

// statusWriter decides which statuses one reconcile writes. The cache shows a status write a
// little after it succeeded; during a burst the next reconcile often comes first, and without
// the writes remembered here it would repeat thousands of them.
type statusWriter struct {
	earlier map[types.UID]statusWrite // from the previous reconcile
	mu      sync.Mutex
	unseen  map[types.UID]statusWrite // for the next one
}

// needed reports whether obj's status, now current, must be written to become want (whose
// conditions are conds): not when it already is, nor when this process already wrote want over
// the very version the cache still shows. A write of someone else in between changes the
// version, so theirs is never ignored.
func (sw *statusWriter) needed(obj client.Object, current, want any, conds []metav1.Condition) (statusWrite, bool) {
	cur, err1 := json.Marshal(current)
	next, err2 := json.Marshal(want)
	if err1 == nil && err2 == nil && bytes.Equal(cur, next) {
		return statusWrite{}, false
	}
	// The digest leaves out when conditions last changed: a reconcile that still sees the
	// status from before its own write computes the same status, only stamped later.
	stamps := make([]metav1.Time, len(conds))
	for i := range conds {
		stamps[i], conds[i].LastTransitionTime = conds[i].LastTransitionTime, metav1.Time{}
	}
	unstamped, _ := json.Marshal(want)
	for i := range conds {
		conds[i].LastTransitionTime = stamps[i]
	}
	write := statusWrite{uid: obj.GetUID(), over: obj.GetResourceVersion(), sum: sha256.Sum256(unstamped)}
	if sw.earlier[write.uid] == write {
		sw.wrote(write) // still not in the cache
		return write, false
	}
	return write, true
}

func (sw *statusWriter) wrote(w statusWrite) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.unseen[w.uid] = w
}

func runParallel(fns []func() error, workers int) error {
	var mu sync.Mutex
	var first error
	ch := make(chan func() error)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range ch {
				if err := fn(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, fn := range fns {
		ch <- fn
	}
	close(ch)
	wg.Wait()
	return first
}

// equalJSON compares two API values by their serialized form (what the API server stores).
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
