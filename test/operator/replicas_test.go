package operator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/localcluster"
)

// TestReplicasServeEveryMailbox runs the real operator and three real mail server processes as
// replicas 0 to 2 of one MailCluster, configured as their pods would be and reaching each other
// on loopback: mail for a mailbox of each shard, sent to each replica, is stored on the
// mailbox's replica alone, and reads the same, byte for byte, through every replica, by IMAP
// and by POP3 (curl).
func TestReplicasServeEveryMailbox(t *testing.T) {
	lc, work := startLocalCluster(t)
	ctx, c, ns := context.Background(), lc.Client, "mail"
	const password = "replicas-password"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pw", Namespace: ns}, StringData: map[string]string{"password": password}},
		&mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns},
			Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail.example.com", Replicas: ptr.To(int32(3))}},
		&mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com", Namespace: ns},
			Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"}}},
	}
	for i := range 6 {
		objs = append(objs, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("user%d", i), Namespace: ns},
			Spec: mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(fmt.Sprintf("user%d@example.com", i)), PasswordSecretRef: &mailv1alpha1.PasswordSecretRef{Name: "pw"}}})
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// One mailbox per shard.
	byShard := map[int32]string{}
	for i := range 6 {
		mb := waitMailbox(t, c, ns, fmt.Sprintf("user%d", i), metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
		if mb.Status.Shard != nil {
			byShard[*mb.Status.Shard] = string(mb.Spec.Address)
		}
	}
	if len(byShard) != 3 {
		t.Fatalf("mailboxes on shards %v, want one on each of 0, 1 and 2", byShard)
	}
	rs, err := lc.RunReplicas(ctx, ns, "mail", 3)
	if err != nil {
		t.Fatal(err)
	}
	replicas := rs.Procs

	for shard := range int32(3) {
		addr := byShard[shard]
		for via, r := range replicas {
			out, err := exec.Command(testutil.Program(t, "swaks"), "--server", r.Addrs["smtp"], "--from", "x@elsewhere.net",
				"--to", addr, "--header", fmt.Sprintf("Subject: to shard %d through replica %d", shard, via),
				"--hide-informational").CombinedOutput()
			if err != nil {
				t.Fatalf("swaks to %s through replica %d: %v\n%s", addr, via, err, out)
			}
		}
		var first []string // the messages as replica 0 reads them
		for via, r := range replicas {
			var got []string
			for uid := 1; uid <= 3; uid++ {
				out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=%d", r.Addrs["imaps"], uid), "--user", addr+":"+password)
				if err != nil {
					t.Fatalf("IMAP UID %d of %s through replica %d: %v\n%s", uid, addr, via, err, out)
				}
				got = append(got, out)
			}
			for i, msg := range got {
				if want := fmt.Sprintf("Subject: to shard %d through replica %d", shard, i); !strings.Contains(msg, want) {
					t.Errorf("%s through replica %d, UID %d: no %q in\n%s", addr, via, i+1, want, msg)
				}
			}
			pop, err := curl(t, "--url", fmt.Sprintf("pop3s://%s/1", r.Addrs["pop3s"]), "--user", addr+":"+password)
			if err != nil || normalise(pop) != normalise(got[0]) {
				t.Errorf("POP3 RETR 1 of %s through replica %d differs from IMAP UID 1 (%v):\n%s", addr, via, err, pop)
			}
			if first == nil {
				first = got
			} else if strings.Join(got, "\x00") != strings.Join(first, "\x00") {
				t.Errorf("%s reads differently through replica %d than through replica 0", addr, via)
			}
		}
		// Stored on the mailbox's replica alone.
		local := strings.TrimSuffix(addr, "@example.com")
		for k := range 3 {
			cur := filepath.Join(work, ns, fmt.Sprintf("mail-%d", k), "data", "mailboxes", "example.com", local, "INBOX", "cur")
			files, _ := os.ReadDir(cur)
			if want := map[bool]int{true: 3, false: 0}[int32(k) == shard]; len(files) != want {
				t.Errorf("%s (shard %d): %d messages on replica %d, want %d", addr, shard, len(files), k, want)
			}
		}
	}
	ownerDown(t, c, rs, byShard[2], password)
	moveMailbox(t, c, rs, work, byShard[2], password)
	scaleDownEvacuates(t, c, rs, work, password)
}

// ownerDown stops the replica of shard 2: mail for its mailbox is still acknowledged by the
// others, queued, and stored once it is back; meanwhile its user's logins get a temporary
// failure, never an empty mailbox, and the MailCluster tells of the mail waiting (the local
// processes keep their endpoints, so the cluster still counts three replicas, as it would
// with three Ready pods that cannot reach one another).
func ownerDown(t *testing.T, c client.Client, rs *localcluster.Replicas, addr, password string) {
	ctx := context.Background()
	if err := rs.Stop(ctx, 2); err != nil {
		t.Fatal(err)
	}
	front := rs.Procs[0]
	out, err := exec.Command(testutil.Program(t, "swaks"), "--server", front.Addrs["smtp"], "--from", "x@elsewhere.net",
		"--to", addr, "--header", "Subject: while its replica is down", "--hide-informational").CombinedOutput()
	if err != nil {
		t.Fatalf("mail for a mailbox whose replica is down: %v\n%s", err, out)
	}
	out2, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=4", front.Addrs["imaps"]), "--user", addr+":"+password, "-v")
	if err == nil || !strings.Contains(out2, "NO [UNAVAILABLE]") {
		t.Errorf("IMAP login while the mailbox's replica is down: %v\n%s", err, out2)
	}
	degraded := func(reason string) (bool, string) {
		var mc mailv1alpha1.MailCluster
		if err := c.Get(ctx, client.ObjectKey{Namespace: "mail", Name: "mail"}, &mc); err != nil {
			return false, err.Error()
		}
		d := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionDegraded)
		return d != nil && d.Reason == reason, fmt.Sprintf("Degraded: %+v", d)
	}
	reconciled.Until(t, "MailCluster Degraded with reason HandoffBacklog", func() (bool, string) {
		return degraded(mailv1alpha1.ReasonHandoffBacklog)
	})
	if err := rs.Start(ctx, 2); err != nil {
		t.Fatal(err)
	}
	reconciled.Until(t, "the queued message on its replica", func() (bool, string) {
		out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=4", front.Addrs["imaps"]), "--user", addr+":"+password)
		return err == nil && strings.Contains(out, "Subject: while its replica is down"), fmt.Sprint(err)
	})
	reconciled.Until(t, "the HandoffBacklog to be over", func() (bool, string) {
		return degraded(mailv1alpha1.ReasonReconciled)
	})
}

// normalise makes CRLF and LF line ends alike: curl writes POP3 and IMAP bodies as received.
func normalise(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
