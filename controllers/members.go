package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers/builders"
)

// statusWorkers bounds concurrent status writes when many mailboxes change at once.
const statusWorkers = 8

// reportMembers writes the status of every Mailbox and MailAlias of the cluster: Ready when it
// is in the directory just written, otherwise the reason it was left out. Only changed statuses
// are written.
func (r *MailClusterReconciler) reportMembers(ctx context.Context, mc *mailv1alpha1.MailCluster, inputs []builders.MailboxInput,
	aliases []mailv1alpha1.MailAlias, res builders.DirectoryResult) error {
	var todo []func() error
	for _, in := range inputs {
		mb := in.Mailbox
		st := mb.Status.DeepCopy()
		if p, bad := res.Problems[builders.ObjectKey("Mailbox", mb.Name)]; bad {
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionFalse, p.Reason, p.Message)
		} else {
			setCondition(&st.Conditions, mb.Generation, mailv1alpha1.ConditionReady, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled,
				fmt.Sprintf("served by MailCluster %q", mc.Name))
			st.Shard = ptr.To(int32(in.Shard))
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
		if !equalJSON(&mb.Status, st) {
			mb := mb.DeepCopy()
			todo = append(todo, func() error {
				patch := client.MergeFrom(mb.DeepCopy())
				mb.Status = *st
				return client.IgnoreNotFound(r.Status().Patch(ctx, mb, patch))
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
		if !equalJSON(&al.Status, st) {
			todo = append(todo, func() error {
				patch := client.MergeFrom(al.DeepCopy())
				al.Status = *st
				return client.IgnoreNotFound(r.Status().Patch(ctx, al, patch))
			})
		}
	}
	return runParallel(todo, statusWorkers)
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
