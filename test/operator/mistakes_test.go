package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/localcluster"
	"github.com/kubemail/kubemail/test/testenv"
)

// imapScript logs in with Python's imaplib and prints the number of messages in INBOX, or the
// server's refusal.
const imapScript = `
import imaplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
try:
    c.login(sys.argv[2], sys.argv[3])
except imaplib.IMAP4.error as e:
    print("REFUSED", e); sys.exit(0)
typ, data = c.select("INBOX")
print("EXISTS", int(data[0]))
c.logout()
`

// mistakes drives one real operator and one real mail server through the mistakes a new user
// makes, checking after each that mail is kept (or tempfailed) and the user is told.
type mistakes struct {
	t    *testing.T
	ctx  context.Context
	c    client.Client
	lc   *localcluster.Cluster
	ms   *localcluster.Process
	ns   string
	kctl string
	// acknowledged counts the messages answered 250, by the mailbox they went to.
	acknowledged map[string]int
}

// send delivers one message to rcpt with swaks and reports the outcome: "250" when the
// message was accepted, else the code of the refusal ("451", "550", ...).
func (m *mistakes) send(rcpt string) string {
	m.t.Helper()
	out, err := exec.Command(testutil.Program(m.t, "swaks"), "--server", m.ms.Addrs["smtp"], "--from", "sender@elsewhere.net", "--to", rcpt,
		"--header", "Subject: to "+rcpt, "--hide-informational", "--timeout", "30").CombinedOutput()
	if err == nil && strings.Contains(string(out), "250 2.0.0 OK: queued") {
		return "250"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "<** "); ok && len(rest) >= 3 {
			return rest[:3]
		}
	}
	return "unexpected: " + string(out)
}

// deliver sends to rcpt, which must be accepted, and counts it for owner.
func (m *mistakes) deliver(rcpt, owner string) {
	m.t.Helper()
	if code := m.send(rcpt); code != "250" {
		m.t.Fatalf("mail to %s was not accepted: %s", rcpt, code)
	}
	m.acknowledged[owner]++
}

// imap logs in as user and returns "EXISTS n" or "REFUSED <the server's words>".
func (m *mistakes) imap(user, password string) string {
	m.t.Helper()
	out, err := exec.Command(testutil.Program(m.t, "python3"), "-c", imapScript, m.ms.Addrs["imaps"], user, password).CombinedOutput()
	if err != nil {
		m.t.Fatalf("imaplib: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// told is how long a user may wait to be told of a mistake: the 5 seconds the issue gives.
var told = testutil.Poll{Within: 5 * time.Second, Every: 50 * time.Millisecond}

// event waits for an event of type and reason on the named object whose note contains text.
func (m *mistakes) event(kind, name, typ, reason, text string) {
	m.t.Helper()
	told.Until(m.t, fmt.Sprintf("%s event %s on %s %s", typ, reason, kind, name), func() (bool, string) {
		var evs eventsv1.EventList
		if err := m.c.List(m.ctx, &evs, client.InNamespace(m.ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name {
				seen = append(seen, e.Type+"/"+e.Reason+": "+e.Note)
				if e.Type == typ && e.Reason == reason && strings.Contains(e.Note, text) {
					return true, ""
				}
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

// mailboxState waits for a Mailbox's Ready condition and login state.
func (m *mistakes) mailboxState(name string, status metav1.ConditionStatus, reason string, login mailv1alpha1.LoginState, text string) *mailv1alpha1.Mailbox {
	m.t.Helper()
	var mb mailv1alpha1.Mailbox
	told.Until(m.t, fmt.Sprintf("Mailbox %s %s/%s, login %q", name, status, reason, login), func() (bool, string) {
		if err := m.c.Get(m.ctx, types.NamespacedName{Namespace: m.ns, Name: name}, &mb); err != nil {
			return false, err.Error()
		}
		s, r, msg := readyReason(mb.Status.Conditions)
		return s == status && r == reason && mb.Status.Login == login && strings.Contains(msg, text),
			fmt.Sprintf("%s %s %q login %q", s, r, msg, mb.Status.Login)
	})
	return &mb
}

// kubectlRow returns the line `kubectl get mailbox` prints for name.
func (m *mistakes) kubectlRow(name string) string {
	m.t.Helper()
	out, err := exec.Command(m.kctl, "--kubeconfig", m.lc.Kubeconfig, "get", "mailbox", "-n", m.ns, name, "--no-headers").CombinedOutput()
	if err != nil {
		m.t.Fatalf("kubectl get mailbox: %v\n%s", err, out)
	}
	return string(out)
}

func (m *mistakes) setPassword(secret string, pw []byte) {
	m.t.Helper()
	var sec corev1.Secret
	if err := m.c.Get(m.ctx, types.NamespacedName{Namespace: m.ns, Name: secret}, &sec); err != nil {
		m.t.Fatal(err)
	}
	sec.Data = map[string][]byte{"password": pw}
	if err := m.c.Update(m.ctx, &sec); err != nil {
		m.t.Fatal(err)
	}
}

// outboundQueue returns what the mail server's outbound queue holds, through its admin API.
func (m *mistakes) outboundQueue() []map[string]any {
	m.t.Helper()
	var admin corev1.Secret
	if err := m.c.Get(m.ctx, types.NamespacedName{Namespace: m.ns, Name: names.AdminSecret("mail")}, &admin); err != nil {
		m.t.Fatal(err)
	}
	out, err := curl(m.t, "-H", "Authorization: Bearer "+string(admin.Data[names.AdminTokenKey]), "http://"+m.ms.Addrs["http"]+"/admin/v1/queue")
	if err != nil {
		m.t.Fatalf("reading the queue: %v\n%s", err, out)
	}
	var q []map[string]any
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		m.t.Fatalf("queue: %v\n%s", err, out)
	}
	return q
}

// TestConfigurationMistakesKeepMail makes the mistakes of a new user one after the other
// against the real operator and a real mail server: a broken password Secret, an address
// conflict, an unknown domain and the deletion of a domain still in use. Mail to the affected
// addresses is kept (or tempfailed, never relayed), the user is told by a Warning event and a
// condition within 5 s, fixing it says so and restores logins, and no acknowledged message is
// lost.
func TestConfigurationMistakesKeepMail(t *testing.T) {
	m := startMistakes(t)
	bobPW := m.startMailserver()
	m.suspendedMailbox()
	for _, mistake := range m.passwordMistakes() {
		m.passwordMistake(mistake)
	}
	m.addressConflict()
	m.unknownDomain()
	md := m.domainInUse()
	m.forcedDomainDeletion(md)
	m.domainBack()
	m.nothingLost(bobPW)
}

// kubectlBinary is the kubectl built with the test control plane.
func kubectlBinary(t *testing.T) string {
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(assets, "kubectl")
}

// startMistakes starts the API server, the operator, and creates the cluster, its two domains,
// alice (password from a Secret), bob (generated password), suspended carol and alias team.
func startMistakes(t *testing.T) *mistakes {
	lc, _ := startLocalCluster(t)
	m := &mistakes{t: t, ctx: context.Background(), c: lc.Client, lc: lc, ns: "mail", kctl: kubectlBinary(t),
		acknowledged: map[string]int{}}
	ctx, c, ns := m.ctx, m.c, m.ns
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw", Namespace: ns}, StringData: map[string]string{"password": "alice-first"}},
		&mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "mail", Namespace: ns}, Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail.example.com"}},
		m.domain("example-com", "example.com"),
		m.domain("example-org", "example.org"),
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{
			Address: "alice@example.com", Aliases: []mailv1alpha1.EmailAddress{"postmaster@example.com", "alice@example.org"},
			PasswordSecretRef: &mailv1alpha1.PasswordSecretRef{Name: "alice-pw"}}},
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "bob", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{Address: "bob@example.org"}},
		&mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "carol", Namespace: ns}, Spec: mailv1alpha1.MailboxSpec{
			Address: "carol@example.com", Suspended: true}},
		&mailv1alpha1.MailAlias{ObjectMeta: metav1.ObjectMeta{Name: "team", Namespace: ns}, Spec: mailv1alpha1.MailAliasSpec{
			Address: "team@example.com", Members: []mailv1alpha1.EmailAddress{"alice@example.com", "bob@example.org"}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// domain returns MailDomain name, serving dom for cluster mail.
func (m *mistakes) domain(name, dom string) *mailv1alpha1.MailDomain {
	return &mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: m.ns},
		Spec: mailv1alpha1.MailDomainSpec{Domain: mailv1alpha1.MailDomainName(dom), ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"}}}
}

// startMailserver waits for alice and bob, starts the mail server and returns bob's generated
// password.
func (m *mistakes) startMailserver() (bobPW string) {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	waitMailbox(t, c, ns, "alice", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	waitMailbox(t, c, ns, "bob", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	var err error
	m.ms, err = m.lc.RunMailserver(ctx, ns, "mail", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mail server log:\n%s", m.ms.Logs())
		}
	})
	var bobCreds corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bob-credentials"}, &bobCreds); err != nil {
		t.Fatal(err)
	}
	return string(bobCreds.Data["password"])
}

func (m *mistakes) suspendedMailbox() {
	t := m.t
	t.Log("a suspended mailbox is visible at a glance and keeps receiving")
	m.mailboxState("carol", metav1.ConditionTrue, mailv1alpha1.ReasonSuspended, mailv1alpha1.LoginSuspended, "suspended")
	if row := m.kubectlRow("carol"); !strings.Contains(row, "Suspended") {
		t.Errorf("kubectl get mailbox carol: %q, want Suspended in it", row)
	}
	if row := m.kubectlRow("alice"); !strings.Contains(row, "Enabled") {
		t.Errorf("kubectl get mailbox alice: %q, want Enabled in it", row)
	}
	m.deliver("carol@example.com", "carol")
}

// passwordMistake is one way to break alice's password Secret.
type passwordMistake struct {
	what, reason, text string
	apply              func()
}

func (m *mistakes) passwordMistakes() []passwordMistake {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	return []passwordMistake{
		{"an emptied password", mailv1alpha1.ReasonPasswordInvalid, "is empty", func() { m.setPassword("alice-pw", []byte{}) }},
		{"a password with NUL and bytes that are not UTF-8", mailv1alpha1.ReasonPasswordInvalid, "not valid UTF-8",
			func() { m.setPassword("alice-pw", []byte("bad\x00\xff")) }},
		{"a deleted password Secret", mailv1alpha1.ReasonSecretMissing, `Secret "alice-pw" not found`, func() {
			if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw", Namespace: ns}}); err != nil {
				t.Fatal(err)
			}
		}},
	}
}

// passwordMistake applies the mistake: logins are disabled, mail is kept, and fixing it
// restores logins.
func (m *mistakes) passwordMistake(mistake passwordMistake) {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	t.Logf("%s: logins disabled, mail kept", mistake.what)
	mistake.apply()
	m.mailboxState("alice", metav1.ConditionFalse, mistake.reason, mailv1alpha1.LoginDisabled, mistake.text)
	m.event("Mailbox", "alice", corev1.EventTypeWarning, mistake.reason, mistake.text)
	m.event("MailCluster", "mail", corev1.EventTypeWarning, "LoginDisabled", "alice@example.com")
	if row := m.kubectlRow("alice"); !strings.Contains(row, "LoginDisabled") || !strings.Contains(row, mistake.reason) {
		t.Errorf("kubectl get mailbox alice: %q, want LoginDisabled and %s", row, mistake.reason)
	}
	for _, rcpt := range []string{"alice@example.com", "postmaster@example.com", "alice+tag@example.com"} {
		m.deliver(rcpt, "alice")
	}
	m.deliver("team@example.com", "alice")
	m.acknowledged["bob"]++
	// The last good hash is kept: the old password gets the disabled answer, not a failure.
	if got := m.imap("alice@example.com", "alice-first"); !strings.Contains(got, "CONTACTADMIN") {
		t.Errorf("login with the last good password while disabled: %s, want a CONTACTADMIN refusal", got)
	}
	if got := m.imap("alice@example.com", "wrong"); !strings.Contains(got, "AUTHENTICATIONFAILED") {
		t.Errorf("a wrong password while disabled: %s, want AUTHENTICATIONFAILED", got)
	}
	// Fixed: a valid password again.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw", Namespace: ns}}); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	m.mailboxState("alice", metav1.ConditionFalse, mailv1alpha1.ReasonSecretMissing, mailv1alpha1.LoginDisabled, "")
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw", Namespace: ns},
		StringData: map[string]string{"password": "alice-first"}}); err != nil {
		t.Fatal(err)
	}
	m.mailboxState("alice", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, mailv1alpha1.LoginEnabled, "")
	m.event("Mailbox", "alice", corev1.EventTypeNormal, "Resolved", "SecretMissing resolved")
	told.Until(m.t, "alice logs in again", func() (bool, string) {
		got := m.imap("alice@example.com", "alice-first")
		return got == fmt.Sprintf("EXISTS %d", m.acknowledged["alice"]), got
	})
}

func (m *mistakes) addressConflict() {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	t.Log("an address conflict: the younger Mailbox is told, and shows none of the older one's mail")
	if err := c.Create(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice-again", Namespace: ns},
		Spec: mailv1alpha1.MailboxSpec{Address: "alice@example.com"}}); err != nil {
		t.Fatal(err)
	}
	m.mailboxState("alice-again", metav1.ConditionFalse, mailv1alpha1.ReasonAddressConflict, "", `claimed by Mailbox "alice"`)
	m.event("Mailbox", "alice-again", corev1.EventTypeWarning, mailv1alpha1.ReasonAddressConflict, `claimed by Mailbox "alice"`)
	reconciled.Until(t, "alice's usage reported", func() (bool, string) {
		var mb mailv1alpha1.Mailbox
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alice"}, &mb)
		return mb.Status.Messages == int64(m.acknowledged["alice"]), fmt.Sprint(mb.Status.Messages)
	})
	var again mailv1alpha1.Mailbox
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alice-again"}, &again); err != nil {
		t.Fatal(err)
	}
	if again.Status.Usage != nil || again.Status.Messages != 0 {
		t.Errorf("the Mailbox that lost the conflict shows usage %v, %d messages", again.Status.Usage, again.Status.Messages)
	}
	if err := c.Delete(ctx, &again); err != nil {
		t.Fatal(err)
	}
}

func (m *mistakes) unknownDomain() {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	t.Log("a Mailbox in a domain nobody serves gets no password and says why")
	if err := c.Create(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "dave", Namespace: ns},
		Spec: mailv1alpha1.MailboxSpec{Address: "dave@unknown.example"}}); err != nil {
		t.Fatal(err)
	}
	m.mailboxState("dave", metav1.ConditionFalse, mailv1alpha1.ReasonDomainNotFound, "", "unknown.example")
	m.event("Mailbox", "dave", corev1.EventTypeWarning, mailv1alpha1.ReasonDomainNotFound, "unknown.example")
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dave-credentials"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Mailbox nothing serves got a generated password Secret: %v", err)
	}
}

func (m *mistakes) domainInUse() *mailv1alpha1.MailDomain {
	t, ctx, c, ns := m.t, m.ctx, m.c, m.ns
	t.Log("deleting a domain that Mailboxes still use: held, named, mail keeps flowing")
	if err := c.Delete(ctx, m.domain("example-org", "example.org")); err != nil {
		t.Fatal(err)
	}
	var md mailv1alpha1.MailDomain
	told.Until(m.t, "example-org held with DomainInUse naming bob and team", func() (bool, string) {
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "example-org"}, &md); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(md.Status.Conditions, mailv1alpha1.ConditionReady)
		return md.DeletionTimestamp != nil && cond != nil && cond.Reason == mailv1alpha1.ReasonDomainInUse &&
			strings.Contains(cond.Message, "Mailbox bob") && strings.Contains(cond.Message, "MailAlias team"), fmt.Sprintf("%+v", cond)
	})
	m.event("MailDomain", "example-org", corev1.EventTypeWarning, mailv1alpha1.ReasonDomainInUse, "Mailbox bob")
	m.deliver("bob@example.org", "bob")
	m.deliver("team@example.com", "alice")
	m.acknowledged["bob"]++
	return &md
}

func (m *mistakes) forcedDomainDeletion(md *mailv1alpha1.MailDomain) {
	t, ctx, c := m.t, m.ctx, m.c
	t.Log("forced: the domain goes, its mail is tempfailed and never relayed")
	md.Annotations = map[string]string{names.AnnotationForceDelete: "true"}
	if err := c.Update(ctx, md); err != nil {
		t.Fatal(err)
	}
	told.Until(m.t, "bob's mail tempfailed", func() (bool, string) {
		code := m.send("bob@example.org")
		return code == "451", code
	})
	if code := m.send("team@example.com"); code != "451" {
		t.Errorf("mail to an alias with a member in the deleted domain: %s, want 451", code)
	}
	if code := m.send("alice@example.org"); code != "451" {
		t.Errorf("mail to alice's alias in the deleted domain: %s, want 451", code)
	}
	// alice keeps her own address, her logins and her mail; only her alias there waits.
	m.deliver("alice@example.com", "alice")
	if q := m.outboundQueue(); len(q) != 0 {
		t.Errorf("mail for addresses that were ours is in the outbound queue: %+v", q)
	}
	m.mailboxState("bob", metav1.ConditionFalse, mailv1alpha1.ReasonDomainNotFound, "", "example.org")
	m.mailboxState("alice", metav1.ConditionFalse, mailv1alpha1.ReasonDomainUnavailable, mailv1alpha1.LoginEnabled, "alice@example.org")
	m.event("Mailbox", "alice", corev1.EventTypeWarning, mailv1alpha1.ReasonDomainUnavailable, "alice@example.org")
	m.aliasState("team", metav1.ConditionFalse, mailv1alpha1.ReasonDomainUnavailable, "bob@example.org")
	m.event("MailAlias", "team", corev1.EventTypeWarning, mailv1alpha1.ReasonDomainUnavailable, "bob@example.org")
	if got := m.imap("alice@example.com", "alice-first"); !strings.HasPrefix(got, "EXISTS") {
		t.Errorf("alice cannot log in while only her alias's domain is gone: %s", got)
	}
}

// aliasState waits for a MailAlias's Ready condition.
func (m *mistakes) aliasState(name string, status metav1.ConditionStatus, reason, text string) {
	m.t.Helper()
	told.Until(m.t, fmt.Sprintf("MailAlias %s %s/%s", name, status, reason), func() (bool, string) {
		var al mailv1alpha1.MailAlias
		if err := m.c.Get(m.ctx, types.NamespacedName{Namespace: m.ns, Name: name}, &al); err != nil {
			return false, err.Error()
		}
		s, r, msg := readyReason(al.Status.Conditions)
		return s == status && r == reason && strings.Contains(msg, text), fmt.Sprintf("%s %s %q", s, r, msg)
	})
}

func (m *mistakes) domainBack() {
	t, ctx, c := m.t, m.ctx, m.c
	t.Log("the domain back: mail and logins as before")
	if err := c.Create(ctx, m.domain("example-org", "example.org")); err != nil {
		t.Fatal(err)
	}
	m.mailboxState("bob", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, mailv1alpha1.LoginEnabled, "")
	m.mailboxState("alice", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, mailv1alpha1.LoginEnabled, "")
	m.aliasState("team", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled, "")
	m.event("MailAlias", "team", corev1.EventTypeNormal, "Resolved", "DomainUnavailable resolved")
	told.Until(m.t, "bob's mail accepted again", func() (bool, string) {
		code := m.send("bob@example.org")
		return code == "250", code
	})
	m.acknowledged["bob"]++
	m.deliver("alice@example.org", "alice")
}

func (m *mistakes) nothingLost(bobPW string) {
	t := m.t
	t.Log("no acknowledged message lost")
	for user, pw := range map[string]string{"alice@example.com": "alice-first", "bob@example.org": bobPW} {
		owner, _, _ := strings.Cut(user, "@")
		if got, want := m.imap(user, pw), fmt.Sprintf("EXISTS %d", m.acknowledged[owner]); got != want {
			t.Errorf("%s: %s, want %s (every acknowledged message)", user, got, want)
		}
	}
	if got := m.imap("carol@example.com", "x"); !strings.HasPrefix(got, "REFUSED") {
		t.Errorf("suspended carol logged in: %s", got)
	}
}
