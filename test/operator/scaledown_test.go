package operator_test

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// rolledOut writes into sts's status what the StatefulSet controller would once every replica
// runs the current revision and is Ready; it reports whether that changed anything.
func rolledOut(sts *appsv1.StatefulSet) bool {
	n := *sts.Spec.Replicas
	want := appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: n, ReadyReplicas: n, AvailableReplicas: n,
		UpdatedReplicas: n, CurrentReplicas: n, CurrentRevision: "r", UpdateRevision: "r"}
	if sts.Status.ObservedGeneration == want.ObservedGeneration && sts.Status.Replicas == n && sts.Status.ReadyReplicas == n &&
		sts.Status.UpdatedReplicas == n && sts.Status.CurrentRevision == "r" && sts.Status.UpdateRevision == "r" {
		return false
	}
	sts.Status = want
	return true
}

// scaleDownHeld: spec.replicas going below a replica that holds a mailbox does not shrink the
// StatefulSet (the mailbox would lose its home); the cluster says why, and the replica goes once
// no mailbox lives there.
func (o *operatorScenario) scaleDownHeld(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	// A mailbox on replica 1: new mailboxes go to the replica with the fewest.
	var held []string
	for i := 0; len(held) == 0 && i < 3; i++ {
		name := fmt.Sprintf("held%d", i)
		o.create(t, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(name + "@example.com")}})
		if mb := waitMailbox(t, c, ns, name, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled); mb.Status.Shard != nil && *mb.Status.Shard == 1 {
			held = append(held, name)
		}
	}
	if len(held) == 0 {
		t.Fatal("no mailbox went to replica 1")
	}
	setReplicas := func(n int32) {
		var mc mailv1alpha1.MailCluster
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc); err != nil {
			t.Fatal(err)
		}
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Spec.Replicas = ptrTo(n)
		if err := c.Patch(ctx, &mc, patch); err != nil {
			t.Fatal(err)
		}
	}
	state := func(replicas int32, progressing string) func() (bool, string) {
		return func() (bool, string) {
			var sts appsv1.StatefulSet
			var mc mailv1alpha1.MailCluster
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &sts); err != nil {
				return false, err.Error()
			}
			if rolledOut(&sts) {
				// No StatefulSet controller runs here: play its part, every replica up to date and Ready.
				if err := c.Status().Update(ctx, &sts); err != nil {
					return false, err.Error()
				}
			}
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc); err != nil {
				return false, err.Error()
			}
			p := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionProgressing)
			return *sts.Spec.Replicas == replicas && p != nil && p.ObservedGeneration == mc.Generation && p.Reason == progressing,
				fmt.Sprintf("StatefulSet replicas %d, Progressing %+v", *sts.Spec.Replicas, p)
		}
	}
	setReplicas(1)
	reconciled.Until(t, "the StatefulSet kept at 2 replicas, Progressing ScaleDownHeld", state(2, mailv1alpha1.ReasonScaleDownHeld))
	for _, name := range held {
		if err := c.Delete(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	// Any other mailbox on replica 1 holds it too.
	var mbs mailv1alpha1.MailboxList
	if err := c.List(ctx, &mbs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs.Items {
		if mb.Status.Shard != nil && *mb.Status.Shard == 1 && mb.DeletionTimestamp == nil {
			if err := c.Delete(ctx, &mb); err != nil {
				t.Fatal(err)
			}
		}
	}
	reconciled.Until(t, "the StatefulSet down to 1 replica once none holds a mailbox", state(1, mailv1alpha1.ReasonReconciled))
	setReplicas(2)
	reconciled.Until(t, "the StatefulSet back at 2 replicas", state(2, mailv1alpha1.ReasonReconciled))
}
