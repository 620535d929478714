//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// loadBalancerPending: this cluster has no load balancer, so a MailCluster whose Service is of
// type LoadBalancer (the default) must not claim to be Ready: it says why, as a condition and a
// Warning event, while its pod still runs.
func (s *suite) loadBalancerPending(t *testing.T) {
	mc := &mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: s.ns},
		Spec: mailv1alpha1.MailClusterSpec{Hostname: "lb.example.com", Service: mailv1alpha1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}}
	if err := s.c.Create(ctx(), mc); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.c.Delete(ctx(), mc); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting MailCluster lb: %v", err)
		}
	}()
	poll(t, "MailCluster lb Ready=False with reason LoadBalancerPending", readyTimeout, func() (bool, error) {
		if err := s.c.Get(ctx(), client.ObjectKeyFromObject(mc), mc); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != mailv1alpha1.ReasonLoadBalancerPending ||
			!strings.Contains(c.Message, "<pending>") {
			return false, fmt.Errorf("Ready condition %+v", c)
		}
		return true, nil
	})
	poll(t, "a Warning event LoadBalancerPending on MailCluster lb", time.Minute, func() (bool, error) {
		var evs eventsv1.EventList
		if err := s.c.List(ctx(), &evs, client.InNamespace(s.ns)); err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "MailCluster" && e.Regarding.Name == "lb" && e.Type == corev1.EventTypeWarning &&
				e.Reason == mailv1alpha1.ReasonLoadBalancerPending {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events in the namespace, none of them", len(evs.Items))
	})
	out := s.kubectlMust("get", "mailcluster", "lb", "-n", s.ns, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}")
	t.Logf("kubectl says: %s", out)
}

// helmUpgradeHandsOver: on a helm upgrade the old operator hands its leader lease back as it
// stops, so the new one reconciles within 5 s of the old one going, not after the lease (15 s)
// runs out.
func (s *suite) helmUpgradeHandsOver(t *testing.T) {
	old := s.operatorPods(t)
	if len(old) != 1 {
		t.Fatalf("want one operator pod before the upgrade, have %v", old)
	}
	upgrade := make(chan error, 1)
	go func() {
		// A new pod annotation is a new pod template: the Deployment rolls the operator.
		_, err := s.run("", s.helm, "upgrade", release, s.root+"/charts/kubemail", "--namespace", operatorNS, "--reuse-values",
			"--set", "podAnnotations.kubemail-e2e/upgrade="+randomHex(4), "--wait", "--timeout", readyTimeout.String())
		upgrade <- err
	}()
	var gone time.Time
	poll(t, "the old operator pod "+old[0]+" to be gone", readyTimeout, func() (bool, error) {
		var p corev1.Pod
		err := s.c.Get(ctx(), client.ObjectKey{Namespace: operatorNS, Name: old[0]}, &p)
		if apierrors.IsNotFound(err) {
			gone = time.Now()
			return true, nil
		}
		return false, err
	})
	// Something for the new operator to do, created once the old one can no longer do it: the
	// first thing a new Mailbox's reconcile does is generate its password Secret.
	probe := &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "upgrade-probe", Namespace: s.ns},
		Spec: mailv1alpha1.MailboxSpec{Address: "upgrade-probe@example.com"}}
	if err := s.c.Create(ctx(), probe); err != nil {
		t.Fatal(err)
	}
	poll(t, "the new operator to generate the probe Mailbox's password", readyTimeout, func() (bool, error) {
		err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: "upgrade-probe-credentials"}, &corev1.Secret{})
		return err == nil, err
	})
	took := time.Since(gone)
	t.Logf("the new operator reconciled %.1f s after the old pod was gone", took.Seconds())
	if took > 5*time.Second {
		t.Errorf("the new operator took %.1f s to reconcile after the old one stopped; want under 5 s (is the leader lease released on shutdown?)", took.Seconds())
	}
	if err := <-upgrade; err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if err := s.c.Delete(ctx(), probe); err != nil {
		t.Fatal(err)
	}
}

// operatorPods names the operator's pods that are not being deleted.
func (s *suite) operatorPods(t *testing.T) []string {
	var pods corev1.PodList
	if err := s.c.List(ctx(), &pods, client.InNamespace(operatorNS), client.MatchingLabels{"app.kubernetes.io/instance": release}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p.Name)
		}
	}
	return out
}
