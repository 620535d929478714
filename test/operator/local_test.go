package operator_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/localcluster"
	"github.com/kubemail/kubemail/test/testenv"
)

// startLocalCluster starts a real API server and the operator binary against it, until the test
// ends; the test starts mail servers with RunMailserver. It returns the cluster and the folder
// that holds its kubeconfig, logs and mail data.
func startLocalCluster(t *testing.T) (*localcluster.Cluster, string) {
	t.Helper()
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	manager, mailserver := buildBinaries(t)
	work := t.TempDir()
	lc, err := localcluster.Start(localcluster.Options{RepoRoot: testenv.RepoRoot(), AssetsDir: assets,
		ManagerBinary: manager, MailserverBinary: mailserver, WorkDir: work, AnyPorts: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Stop)
	return lc, work
}

// buildBinaries builds the operator and the mail server for one test.
func buildBinaries(t *testing.T) (manager, mailserver string) {
	t.Helper()
	bins := t.TempDir()
	var built [2]string
	for i, name := range []string{"manager", "mailserver"} {
		var err error
		if built[i], err = launch.Build(context.Background(), bins, name); err != nil {
			t.Fatal(err)
		}
	}
	return built[0], built[1]
}

func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testutil.Program(t, "curl"), append([]string{"-sS", "-k"}, args...)...).CombinedOutput()
	return string(out), err
}

// operatorAndMailserver is TestOperatorAndMailserver's world: the operator binary and one mail
// server process against a real API server, with mailboxes alice, carol and dave in namespace
// mail.
type operatorAndMailserver struct {
	t       *testing.T
	ctx     context.Context
	c       client.Client
	ns      string
	work    string
	ms      *localcluster.Process
	imapURL string
}

// logins is how soon a changed password or a deleted Mailbox must show at the IMAP login.
var logins = testutil.Poll{Within: 5 * time.Second, Every: 100 * time.Millisecond}

// TestOperatorAndMailserver runs the real operator binary and a real mail server process
// configured as its pod would be, against the real API server: mail is delivered and read, a
// password change takes effect within seconds, and a deleted Mailbox can no longer log in.
func TestOperatorAndMailserver(t *testing.T) {
	s := startOperatorAndMailserver(t)
	s.deliverAndRead()
	s.usageReported()
	s.passwordChange()
	s.deletedMailboxRefused()
	s.deletionPolicy()
}

// startOperatorAndMailserver starts the API server and the operator, creates the mail objects,
// and once the operator has reconciled them starts the mail server.
func startOperatorAndMailserver(t *testing.T) *operatorAndMailserver {
	lc, work := startLocalCluster(t)
	ctx, c, ns := context.Background(), lc.Client, "mail"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw", Namespace: ns}, StringData: map[string]string{"password": "first-password"}},
		&mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns}, Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail.example.com"}},
		&mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com", Namespace: ns},
			Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"}}},
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{
			Address: "alice@example.com", PasswordSecretRef: &mailv1alpha1.PasswordSecretRef{Name: "alice-pw"}}},
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "carol", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{
			Address: "carol@example.com", DeletionPolicy: mailv1alpha1.DeletionPolicyDelete}},
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "dave", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{
			Address: "dave@example.com"}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"alice", "carol", "dave"} {
		waitMailbox(t, c, ns, name, metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	}
	ms, err := lc.RunMailserver(ctx, ns, "mail", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mail server log:\n%s", ms.Logs())
		}
	})
	return &operatorAndMailserver{t: t, ctx: ctx, c: c, ns: ns, work: work, ms: ms, imapURL: "imaps://" + ms.Addrs["imaps"] + "/INBOX;UID=1"}
}

// deliverAndRead sends alice a message by SMTP and reads it by IMAP.
func (s *operatorAndMailserver) deliverAndRead() {
	t, ms, imapURL := s.t, s.ms, s.imapURL
	out, err := exec.Command(testutil.Program(s.t, "swaks"), "--server", ms.Addrs["smtp"], "--from", "x@elsewhere.net", "--to", "alice@example.com",
		"--header", "Subject: through the operator", "--hide-informational").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if out, err := curl(s.t, "--url", imapURL, "--user", "alice@example.com:first-password"); err != nil || !strings.Contains(out, "Subject: through the operator") {
		t.Fatalf("reading by IMAP: %v\n%s", err, out)
	}
}

// usageReported: the operator reads the stored mail's size back from the server into the
// Mailbox's status.
func (s *operatorAndMailserver) usageReported() {
	t, ctx, c, ns := s.t, s.ctx, s.c, s.ns
	reconciled.Until(t, "alice's usage in her Mailbox status", func() (bool, string) {
		var mb mailv1alpha1.Mailbox
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alice"}, &mb); err != nil {
			return false, err.Error()
		}
		return mb.Status.Messages == 1 && mb.Status.Usage != nil && mb.Status.Usage.Value() > 100,
			fmt.Sprintf("messages %d usage %v", mb.Status.Messages, mb.Status.Usage)
	})
	reconciled.Until(t, "dave's empty mailbox reported as 0", func() (bool, string) {
		var mb mailv1alpha1.Mailbox
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dave"}, &mb)
		return mb.Status.Usage != nil && mb.Status.Usage.IsZero() && mb.Status.Messages == 0, fmt.Sprintf("%v", mb.Status.Usage)
	})
}

// passwordChange: a new password in the referenced Secret works within 5 seconds; the old one
// stops.
func (s *operatorAndMailserver) passwordChange() {
	t, ctx, c, ns, imapURL := s.t, s.ctx, s.c, s.ns, s.imapURL
	var sec corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alice-pw"}, &sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["password"] = []byte("second-password")
	if err := c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	logins.Until(t, "the new password accepted", func() (bool, string) {
		out, err := curl(s.t, "--url", imapURL, "--user", "alice@example.com:second-password")
		return err == nil, fmt.Sprintf("%v: %s", err, strings.TrimSpace(out))
	})
	t.Logf("new password accepted %v after the Secret changed", time.Since(changed).Round(time.Millisecond))
	if out, err := curl(s.t, "--url", imapURL, "--user", "alice@example.com:first-password"); err == nil {
		t.Fatalf("the old password still works:\n%s", out)
	}
}

// deletedMailboxRefused: deleting the Mailbox ends its logins.
func (s *operatorAndMailserver) deletedMailboxRefused() {
	t, ctx, c, ns, imapURL := s.t, s.ctx, s.c, s.ns, s.imapURL
	if err := c.Delete(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	logins.Eventually(t, "logins of the deleted Mailbox refused", func() bool {
		_, err := curl(s.t, "--url", imapURL, "--user", "alice@example.com:second-password")
		return err != nil
	})
	t.Logf("logins refused %v after the Mailbox was deleted", time.Since(deleted).Round(time.Millisecond))
}

// deletionPolicy Delete purges the stored mail before the Mailbox goes; Retain keeps it.
func (s *operatorAndMailserver) deletionPolicy() {
	t, ctx, c, ns, ms, work := s.t, s.ctx, s.c, s.ns, s.ms, s.work
	maildir := func(local string) string {
		return filepath.Join(work, ns, "mail-0", "data", "mailboxes", "example.com", local)
	}
	for _, to := range []string{"carol@example.com", "dave@example.com"} {
		if out, err := exec.Command(testutil.Program(s.t, "swaks"), "--server", ms.Addrs["smtp"], "--from", "x@elsewhere.net", "--to", to,
			"--hide-informational").CombinedOutput(); err != nil {
			t.Fatalf("swaks to %s: %v\n%s", to, err, out)
		}
	}
	for _, local := range []string{"carol", "dave"} {
		if _, err := os.Stat(maildir(local)); err != nil {
			t.Fatalf("%s has no stored mail before deletion: %v", local, err)
		}
		if err := c.Delete(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: local, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	reconciled.Until(t, "both Mailboxes gone", func() (bool, string) {
		e1 := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "carol"}, &mailv1alpha1.Mailbox{})
		e2 := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dave"}, &mailv1alpha1.Mailbox{})
		return apierrors.IsNotFound(e1) && apierrors.IsNotFound(e2), errString(e1) + " " + errString(e2)
	})
	if _, err := os.Stat(maildir("carol")); !os.IsNotExist(err) {
		t.Errorf("carol (deletionPolicy Delete) still has stored mail: %v", err)
	}
	if _, err := os.Stat(maildir("dave")); err != nil {
		t.Errorf("dave (deletionPolicy Retain) lost his stored mail: %v", err)
	}
}
