//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

const replicas = 3

// account is a mailbox the three-replica steps send to, and the shard that holds it.
type account struct {
	address, password string
	shard             int32
}

// scaleOut grows the sample cluster to three replicas and adds two mailboxes, which go to the
// new replicas: alice stays on replica 0, so there is a mailbox on each. Mail sent through the
// client Service to each of them (landing on any replica) is stored once, on its owner's volume
// alone, and read back through the client Service with curl over IMAPS and POP3S.
func (s *suite) scaleOut(t *testing.T) {
	var mc mailv1alpha1.MailCluster
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Replicas = ptr.To(int32(replicas))
	if err := s.c.Patch(ctx(), &mc, patch); err != nil {
		t.Fatal(err)
	}
	s.spread = []account{{address: "alice@example.com", password: alicePassword}}
	for _, name := range []string{"dave", "erin"} {
		s.spread = append(s.spread, s.createMailbox(t, name, "example.com"))
	}
	s.waitReplicasReady(t)
	s.kubectlMust("wait", "--for=condition=Ready", "--timeout="+readyTimeout.String(), "-n", s.ns, "mailboxes", "--all")
	var shards []int32
	for i := range s.spread {
		var mb mailv1alpha1.Mailbox
		name, _, _ := strings.Cut(s.spread[i].address, "@")
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: name}, &mb); err != nil {
			t.Fatal(err)
		}
		if mb.Status.Shard == nil {
			t.Fatalf("Mailbox %s has no shard in its status", name)
		}
		s.spread[i].shard = *mb.Status.Shard
		shards = append(shards, *mb.Status.Shard)
	}
	slices.Sort(shards)
	if !slices.Equal(shards, []int32{0, 1, 2}) {
		t.Fatalf("the mailboxes are on shards %v, want one on each of 0, 1 and 2", shards)
	}

	ip := s.serviceIP()
	for _, a := range s.spread {
		s.spreadAcrossReplicas(t, ip, a)
	}
}

// createMailbox creates a Mailbox with a password of its own in a Secret.
func (s *suite) createMailbox(t *testing.T, name, domain string) account {
	t.Helper()
	a := account{address: name + "@" + domain, password: "e2e-" + randomHex(12)}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-password", Namespace: s.ns},
		StringData: map[string]string{"password": a.password}}
	mb := &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(a.address),
			PasswordSecretRef: &mailv1alpha1.PasswordSecretRef{Name: sec.Name}}}
	for _, o := range []client.Object{sec, mb} {
		if err := s.c.Create(ctx(), o); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// waitReplicasReady waits until the StatefulSet and the MailCluster report every replica Ready.
func (s *suite) waitReplicasReady(t *testing.T) {
	t.Helper()
	poll(t, fmt.Sprintf("%d Ready replicas", replicas), readyTimeout, func() (bool, error) {
		var sts appsv1.StatefulSet
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &sts); err != nil {
			return false, err
		}
		var mc mailv1alpha1.MailCluster
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
			return false, err
		}
		return sts.Status.ReadyReplicas == replicas && mc.Status.ReadyReplicas == replicas,
			fmt.Errorf("StatefulSet %d ready, MailCluster %d ready; %s", sts.Status.ReadyReplicas, mc.Status.ReadyReplicas, s.describePods())
	})
}

// spreadAcrossReplicas sends a to several messages through the client Service (which picks a
// replica for each connection) and expects each stored once, on the owner's volume and no
// other, and readable through the client Service by IMAP and POP3.
func (s *suite) spreadAcrossReplicas(t *testing.T, ip string, a account) {
	t.Helper()
	var tokens []string
	for range replicas {
		token := "spread-" + randomHex(4)
		// kube-proxy routes to a new pod a moment after it turns Ready: retry until it does.
		poll(t, "SMTP to "+a.address+" through the client Service", time.Minute, func() (bool, error) {
			_, err := s.swaks("--server", ip+":25", "--from", "someone@sender.e2e.test", "--to", a.address,
				"--header", "Subject: e2e "+token, "--body", "Spread over the replicas, "+token)
			return err == nil, err
		})
		tokens = append(tokens, token)
	}
	for _, token := range tokens {
		var uids []string
		poll(t, "the message "+token+" in "+a.address+"'s INBOX over IMAP", time.Minute, func() (bool, error) {
			var err error
			uids, err = s.imapUIDs(ip, a.address, a.password, token)
			return len(uids) > 0, err
		})
		if len(uids) != 1 {
			t.Fatalf("%s's INBOX holds the message %s %d times (UIDs %v), want once", a.address, token, len(uids), uids)
		}
		msg, err := s.imapFind(ip, a.address, a.password, token)
		if err != nil || !strings.Contains(msg, "Spread over the replicas, "+token) {
			t.Fatalf("IMAP FETCH of %s from %s: %v\n%s", token, a.address, err, msg)
		}
		if msg, err := s.pop3Find(ip, a.address, a.password, token); err != nil || msg == "" {
			t.Fatalf("the message %s over POP3 for %s: %q, %v", token, a.address, msg, err)
		}
	}
	for r := range int32(replicas) {
		files, _, err := mailboxFiles(s.volumePath(fmt.Sprintf("%s-%d", clusterName, r)), a.address)
		if err != nil {
			t.Fatal(err)
		}
		if r == a.shard && len(files) < len(tokens) || r != a.shard && len(files) > 0 {
			t.Fatalf("replica %d's volume holds %d messages of %s (shard %d); want them on its shard alone", r, len(files), a.address, a.shard)
		}
	}
}

// replicaDeletion deletes the pod of replica 1 while a client sends to a mailbox on each shard
// through the client Service: every accepted message is stored exactly once afterwards.
func (s *suite) replicaDeletion(t *testing.T) {
	ip := s.serviceIP()
	senders := s.startSenders(t, ip, s.spreadAddresses()...)
	victim := fmt.Sprintf("%s-%d", clusterName, 1)
	old := s.pod(t, victim)
	s.kubectlMust("delete", "pod", victim, "-n", s.ns, "--wait=false")
	s.waitPodReady(t, victim, old.UID)
	acked, retries := senders.finish(5, "messages accepted after the replacement of "+victim)
	t.Logf("while %s was replaced: %d attempts deferred and retried", victim, retries)
	s.spreadStoredOnce(t, ip, acked)
}

// replicasRoll rolls the three-replica StatefulSet with a spec change while a client sends to a
// mailbox on each shard through the client Service: no connection is refused, no reply is a
// 4xx, and every accepted message is stored exactly once.
func (s *suite) replicasRoll(t *testing.T) {
	ip := s.serviceIP()
	senders := s.startSenders(t, ip, s.spreadAddresses()...)
	s.roll(t)
	acked, retries := senders.finish(5, "messages accepted after the rollout")
	if retries > 0 {
		t.Fatalf("the rollout of %d replicas cost the clients %d refused connections or 4xx replies", replicas, retries)
	}
	s.spreadStoredOnce(t, ip, acked)
}

func (s *suite) spreadAddresses() []string {
	var out []string
	for _, a := range s.spread {
		out = append(out, a.address)
	}
	return out
}

func (s *suite) spreadStoredOnce(t *testing.T, ip string, acked map[string][]string) {
	t.Helper()
	for _, a := range s.spread {
		s.storedOnce(t, ip, a.address, a.password, acked[a.address])
		t.Logf("%s (shard %d): %d accepted messages, each stored once", a.address, a.shard, len(acked[a.address]))
	}
}

// scaleIn takes the cluster from three replicas to two while a client sends to a mailbox on
// every replica through the client Service: the mailbox of replica 2 moves to another replica
// first, then the StatefulSet shrinks; every accepted message is stored exactly once, and
// replica 2's claim is kept (whenScaled: Retain).
func (s *suite) scaleIn(t *testing.T) {
	ip := s.serviceIP()
	senders := s.startSenders(t, ip, s.spreadAddresses()...)
	var mc mailv1alpha1.MailCluster
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &mc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Replicas = ptr.To(int32(replicas - 1))
	if err := s.c.Patch(ctx(), &mc, patch); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll(t, "replica 2's mailboxes moved and the StatefulSet at 2 Ready replicas", readyTimeout, func() (bool, error) {
		var mbs mailv1alpha1.MailboxList
		if err := s.c.List(ctx(), &mbs, client.InNamespace(s.ns)); err != nil {
			return false, err
		}
		for _, mb := range mbs.Items {
			if mb.Status.Move != nil || mb.Status.Shard != nil && *mb.Status.Shard >= replicas-1 {
				return false, fmt.Errorf("Mailbox %s: shard %v, move %+v", mb.Name, ptr.Deref(mb.Status.Shard, -1), mb.Status.Move)
			}
		}
		var sts appsv1.StatefulSet
		if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &sts); err != nil {
			return false, err
		}
		st := sts.Status
		return *sts.Spec.Replicas == replicas-1 && st.Replicas == replicas-1 && st.ReadyReplicas == replicas-1,
			fmt.Errorf("StatefulSet: %d wanted, %d running, %d ready", *sts.Spec.Replicas, st.Replicas, st.ReadyReplicas)
	})
	t.Logf("scaled in after %.1f s", time.Since(start).Seconds())
	acked, retries := senders.finish(5, "messages accepted after the scale-in")
	t.Logf("during the scale-in: %d attempts deferred and retried", retries)
	s.spreadStoredOnce(t, ip, acked)
	var pvc corev1.PersistentVolumeClaim
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: dataClaimPrefix + clusterName + "-2"}, &pvc); err != nil {
		t.Errorf("the claim of the removed replica: %v", err)
	}
}
