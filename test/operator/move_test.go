package operator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/localcluster"
)

// moveMailbox pins the mailbox addr of replica 2 to replica 0 while a client keeps sending to
// it through replica 1: the operator moves it; every message reads the same, under the same
// UID, through any replica afterwards, every message acknowledged during the move is there once,
// and replica 2 keeps no copy.
func moveMailbox(t *testing.T, c client.Client, rs *localcluster.Replicas, work, addr, password string) {
	ctx := context.Background()
	name := strings.TrimSuffix(addr, "@example.com")
	read := func(via int, uid int) string {
		t.Helper()
		out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=%d", rs.Procs[via].Addrs["imaps"], uid), "--user", addr+":"+password)
		if err != nil {
			t.Fatalf("IMAP UID %d of %s through replica %d: %v\n%s", uid, addr, via, err, out)
		}
		return out
	}
	var before []string
	for uid := 1; uid <= 4; uid++ {
		before = append(before, read(0, uid))
	}

	// A client sends through replica 1 throughout the move.
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			subject := fmt.Sprintf("during the move %03d", i)
			out, err := exec.Command(testutil.Program(t, "swaks"), "--server", rs.Procs[1].Addrs["smtp"], "--from", "x@elsewhere.net",
				"--to", addr, "--header", "Subject: "+subject, "--hide-informational").CombinedOutput()
			if err != nil {
				t.Errorf("sending during the move: %v\n%s", err, out)
				return
			}
			mu.Lock()
			acked = append(acked, subject)
			mu.Unlock()
		}
	}()

	var mb mailv1alpha1.Mailbox
	if err := c.Get(ctx, types.NamespacedName{Namespace: "mail", Name: name}, &mb); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mb.DeepCopy())
	mb.Spec.Shard = ptrTo(int32(0))
	pinned := time.Now()
	if err := c.Patch(ctx, &mb, patch); err != nil {
		t.Fatal(err)
	}
	testutil.Poll{Within: 2 * time.Minute, Every: 100 * time.Millisecond}.Until(t, "the move to replica 0", func() (bool, string) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: "mail", Name: name}, &mb); err != nil {
			return false, err.Error()
		}
		return mb.Status.Shard != nil && *mb.Status.Shard == 0 && mb.Status.Move == nil, fmt.Sprintf("shard %v, move %+v", mb.Status.Shard, mb.Status.Move)
	})
	took := time.Since(pinned)
	// The sender goes on after the move: mail for the new replica too.
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	testutil.Eventually(t, "a message acknowledged after the move", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) > n
	})
	close(stop)
	<-done

	for via := range 3 {
		for uid := 1; uid <= 4; uid++ {
			if got := read(via, uid); normalise(got) != normalise(before[uid-1]) {
				t.Errorf("UID %d through replica %d after the move differs from before:\n%s", uid, via, got)
			}
		}
	}
	for _, subject := range acked {
		testutil.Eventually(t, "\""+subject+"\" stored once", func() bool {
			out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX", rs.Procs[2].Addrs["imaps"]), "--user", addr+":"+password,
				"--request", "UID SEARCH SUBJECT \""+subject+"\"")
			return err == nil && len(strings.Fields(strings.TrimPrefix(strings.TrimSpace(out), "* SEARCH"))) == 1
		})
	}
	if _, err := os.Stat(filepath.Join(work, "mail", "mail-2", "data", "mailboxes", "example.com", name)); !os.IsNotExist(err) {
		t.Errorf("replica 2 keeps a copy of the moved mailbox: %v", err)
	}
	files, _ := os.ReadDir(filepath.Join(work, "mail", "mail-0", "data", "mailboxes", "example.com", name, "INBOX", "cur"))
	if want := 4 + len(acked); len(files) != want {
		t.Errorf("replica 0 stores %d messages of %s, want %d", len(files), addr, want)
	}
	t.Logf("moved %s in %.1f s, %d messages acknowledged meanwhile", addr, took.Seconds(), len(acked))
}

// scaleDownEvacuates lowers spec.replicas to 2: the operator moves the mailboxes of replica 2
// to the others, each readable as before, then lets the StatefulSet shrink.
func scaleDownEvacuates(t *testing.T, c client.Client, rs *localcluster.Replicas, work, password string) {
	ctx := context.Background()
	var mbs mailv1alpha1.MailboxList
	if err := c.List(ctx, &mbs, client.InNamespace("mail")); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{} // address: UID 1 as read before
	for _, mb := range mbs.Items {
		if mb.Status.Shard != nil && *mb.Status.Shard == 2 {
			addr := string(mb.Spec.Address)
			if out, err := exec.Command(testutil.Program(t, "swaks"), "--server", rs.Procs[0].Addrs["smtp"], "--from", "x@elsewhere.net",
				"--to", addr, "--header", "Subject: before the scale-down", "--hide-informational").CombinedOutput(); err != nil {
				t.Fatalf("mail for %s: %v\n%s", addr, err, out)
			}
			out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=1", rs.Procs[0].Addrs["imaps"]), "--user", addr+":"+password)
			if err != nil {
				t.Fatalf("%s before the scale-down: %v", addr, err)
			}
			before[addr] = out
		}
	}
	if len(before) == 0 {
		t.Fatal("no mailbox on replica 2 to move away")
	}
	var mc mailv1alpha1.MailCluster
	if err := c.Get(ctx, types.NamespacedName{Namespace: "mail", Name: "mail"}, &mc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Replicas = ptrTo(int32(2))
	if err := c.Patch(ctx, &mc, patch); err != nil {
		t.Fatal(err)
	}
	testutil.Poll{Within: 2 * time.Minute, Every: 200 * time.Millisecond}.Until(t, "replica 2's mailboxes moved away", func() (bool, string) {
		if err := c.List(ctx, &mbs, client.InNamespace("mail")); err != nil {
			return false, err.Error()
		}
		for _, mb := range mbs.Items {
			if mb.Status.Shard == nil || *mb.Status.Shard == 2 || mb.Status.Move != nil {
				return false, fmt.Sprintf("%s: shard %v, move %+v", mb.Name, mb.Status.Shard, mb.Status.Move)
			}
		}
		return true, ""
	})
	for addr, want := range before {
		out, err := curl(t, "--url", fmt.Sprintf("imaps://%s/INBOX;UID=1", rs.Procs[1].Addrs["imaps"]), "--user", addr+":"+password)
		if err != nil || normalise(out) != normalise(want) {
			t.Errorf("%s after moving off replica 2: %v\n%s", addr, err, out)
		}
	}
	left, _ := os.ReadDir(filepath.Join(work, "mail", "mail-2", "data", "mailboxes", "example.com"))
	if len(left) > 0 {
		t.Errorf("replica 2 still stores %d mailboxes", len(left))
	}
	reconciled.Until(t, "the StatefulSet down to 2 replicas", func() (bool, string) {
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, types.NamespacedName{Namespace: "mail", Name: "mail"}, &sts); err != nil {
			return false, err.Error()
		}
		return *sts.Spec.Replicas == 2, fmt.Sprint(*sts.Spec.Replicas)
	})
}
