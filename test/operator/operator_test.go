// Package operator_test runs kubemail's controllers against a real API server.
package operator_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/testenv"
)

// startOperator runs the controllers in this process against env until the test ends.
func startOperator(t *testing.T, env *testenv.Env) {
	t.Helper()
	// Several tests run a manager in this one process: the controller names repeat.
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptrTo(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Options{OperandImage: "kubemail:test"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// reconciled is how long a test waits for the operator to act on a change.
var reconciled = testutil.Poll{Within: 30 * time.Second, Every: 50 * time.Millisecond}

func readyReason(conds []metav1.Condition) (metav1.ConditionStatus, string, string) {
	c := meta.FindStatusCondition(conds, mailv1alpha1.ConditionReady)
	if c == nil {
		return "", "", ""
	}
	return c.Status, c.Reason, c.Message
}

func waitMailbox(t *testing.T, c client.Client, ns, name string, status metav1.ConditionStatus, reason string) *mailv1alpha1.Mailbox {
	t.Helper()
	var mb mailv1alpha1.Mailbox
	reconciled.Until(t, "Mailbox "+name+" "+reason, func() (bool, string) {
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &mb); err != nil {
			return false, err.Error()
		}
		s, r, m := readyReason(mb.Status.Conditions)
		return s == status && r == reason && mb.Status.ObservedGeneration == mb.Generation, string(s) + " " + r + ": " + m
	})
	return &mb
}

func readDirectory(t *testing.T, c client.Client, ns, cluster string) (*dirspec.Spec, map[string][]byte) {
	t.Helper()
	var first corev1.Secret
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: dirsecret.SecretName(cluster, 0)}, &first); err != nil {
		return nil, nil
	}
	spec, err := dirsecret.Assemble([]map[string][]byte{first.Data})
	if err != nil {
		return nil, nil
	}
	return spec, first.Data
}

func inDirectory(spec *dirspec.Spec, addr string) *dirspec.MailboxSpec {
	if spec == nil {
		return nil
	}
	for i := range spec.Mailboxes {
		if spec.Mailboxes[i].Address == addr {
			return &spec.Mailboxes[i]
		}
	}
	return nil
}

// operatorScenario is TestOperator's namespace on an API server with the operator running. The
// steps run in order, each building on what the ones before created.
type operatorScenario struct {
	c   client.Client
	ctx context.Context
	ns  string
}

// create creates obj in the scenario's namespace.
func (o *operatorScenario) create(t *testing.T, obj client.Object) {
	t.Helper()
	obj.SetNamespace(o.ns)
	if err := o.c.Create(o.ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func TestOperator(t *testing.T) {
	env := testenv.Start(t)
	startOperator(t, env)
	o := &operatorScenario{c: env.Client, ctx: context.Background(), ns: "mail"}
	if err := o.c.Create(o.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.ns}}); err != nil {
		t.Fatal(err)
	}
	o.beforeCluster(t)
	o.clusterAndMailboxes(t)
	t.Run("cluster objects with owner references", o.clusterObjects)
	t.Run("missing password Secret, then it appears", o.missingPasswordSecret)
	t.Run("generated password, hashed in the directory", o.generatedPassword)
	t.Run("a password put in place of the generated one gets the full-strength hash", o.ownPasswordFullStrength)
	t.Run("changed password Secret re-hashes", o.changedPasswordRehashes)
	t.Run("address conflict: the older object keeps the address", o.addressConflict)
	t.Run("domain appears later", o.domainAppearsLater)
	t.Run("domain DNS records and DKIM key", o.domainRecordsAndDKIM)
	t.Run("deleting a mailbox removes it from the directory", o.deleteMailbox)
	t.Run("scaling down below a replica that holds mailboxes keeps it", o.scaleDownHeld)
	t.Run("smarthost: settings, credentials volume, and a missing Secret said so", o.smarthost)
}

// beforeCluster creates a domain whose cluster does not exist yet and a mailbox whose domain
// does not exist yet, and waits for both to say so.
func (o *operatorScenario) beforeCluster(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	o.create(t, &mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com"},
		Spec: mailv1alpha1.MailDomainSpec{Domain: "example.com", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"},
			DefaultQuota: resource.NewQuantity(1<<30, resource.BinarySI)}})
	o.create(t, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}, Spec: mailv1alpha1.MailboxSpec{Address: "x@example.net"}})
	reconciled.Until(t, "MailDomain ClusterNotFound", func() (bool, string) {
		var md mailv1alpha1.MailDomain
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "example-com"}, &md)
		s, r, m := readyReason(md.Status.Conditions)
		return s == metav1.ConditionFalse && r == mailv1alpha1.ReasonClusterNotFound, m
	})
	waitMailbox(t, c, ns, "orphan", metav1.ConditionFalse, mailv1alpha1.ReasonDomainNotFound)
}

// clusterAndMailboxes creates the cluster with two replicas, alice (whose password Secret does
// not exist yet) and bob (whose password the operator generates).
func (o *operatorScenario) clusterAndMailboxes(t *testing.T) {
	o.create(t, &mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: "mail"},
		Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail.example.com", Replicas: ptrTo(int32(2))}})
	o.create(t, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice"}, Spec: mailv1alpha1.MailboxSpec{
		Address: "alice@example.com", PasswordSecretRef: &mailv1alpha1.PasswordSecretRef{Name: "alice-pw", Key: "password"},
		Aliases: []mailv1alpha1.EmailAddress{"postmaster@example.com"}}})
	o.create(t, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "bob"}, Spec: mailv1alpha1.MailboxSpec{Address: "bob@example.com"}})
}

// clusterCertificates checks the replicas' internal TLS: a CA of the cluster's own, a
// certificate it issued that covers every pod under the headless Service, mounted into the pods,
// and a NetworkPolicy that admits only the cluster's pods to the internal port.
func (o *operatorScenario) clusterCertificates(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	var ca, leaf corev1.Secret
	for name, sec := range map[string]*corev1.Secret{"mail-cluster-ca": &ca, "mail-cluster-tls": &leaf} {
		reconciled.Until(t, "Secret "+name, func() (bool, string) {
			err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, sec)
			return err == nil, errString(err)
		})
	}
	if _, ok := leaf.Data["ca.key"]; ok || len(ca.Data["ca.key"]) == 0 {
		t.Errorf("the CA key belongs in mail-cluster-ca alone, not in what the pods mount")
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.Data["ca.crt"])
	block, _ := pem.Decode(leaf.Data["tls.crt"])
	if block == nil {
		t.Fatalf("mail-cluster-tls has no certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"mail-0.mail-headless." + ns + ".svc", "mail-1.mail-headless." + ns + ".svc"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("the replicas' certificate for %s: %v", host, err)
		}
	}
	var np networkingv1.NetworkPolicy
	reconciled.Until(t, "NetworkPolicy", func() (bool, string) {
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &np)
		return err == nil, errString(err)
	})
	if len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[1].From) != 1 || np.Spec.Ingress[1].Ports[0].Port.IntVal != 7993 {
		t.Errorf("NetworkPolicy ingress: %+v", np.Spec.Ingress)
	}
}

func (o *operatorScenario) clusterObjects(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	var sts appsv1.StatefulSet
	reconciled.Until(t, "StatefulSet", func() (bool, string) {
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &sts)
		return err == nil, errString(err)
	})
	if *sts.Spec.Replicas != 2 || sts.Spec.Template.Spec.Containers[0].Image != "kubemail:test" {
		t.Errorf("StatefulSet replicas %d image %q", *sts.Spec.Replicas, sts.Spec.Template.Spec.Containers[0].Image)
	}
	for _, obj := range []client.Object{&sts, &corev1.Service{}, &corev1.ConfigMap{}, &corev1.ServiceAccount{},
		&rbacv1.Role{}, &rbacv1.RoleBinding{}, &policyv1.PodDisruptionBudget{}, &corev1.Secret{}} {
		name := map[string]string{"*v1.ConfigMap": "mail-config", "*v1.ServiceAccount": "mail-mailserver", "*v1.Role": "mail-mailserver",
			"*v1.RoleBinding": "mail-mailserver", "*v1.Secret": "mail-tls-selfsigned"}[typeName(obj)]
		if name == "" {
			name = "mail"
		}
		reconciled.Until(t, typeName(obj)+" "+name, func() (bool, string) {
			err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
			return err == nil, errString(err)
		})
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "MailCluster" || refs[0].Name != "mail" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Errorf("%s %s owner references: %+v", typeName(obj), name, refs)
		}
	}
	o.clusterCertificates(t)
	var svc corev1.Service
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &svc)
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		svc.Spec.Ports[0].Port != 25 || svc.Spec.Ports[0].TargetPort.StrVal != "smtp" {
		t.Errorf("client Service: %+v", svc.Spec)
	}
	var role rbacv1.Role
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail-mailserver"}, &role)
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].ResourceNames, ",") != "mail-directory" {
		t.Errorf("Role rules: %+v", role.Rules)
	}
	var mc mailv1alpha1.MailCluster
	reconciled.Until(t, "MailCluster status", func() (bool, string) {
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc)
		ss := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionSelfSignedCertificate)
		// No kubelet runs here, so no replica becomes ready.
		s, _, _ := readyReason(mc.Status.Conditions)
		return ss != nil && ss.Status == metav1.ConditionTrue && s == metav1.ConditionFalse && mc.Status.Selector != "" &&
			mc.Status.ObservedGeneration == mc.Generation, mc.Status.Selector
	})
}

func (o *operatorScenario) missingPasswordSecret(t *testing.T) {
	c, ns := o.c, o.ns
	waitMailbox(t, c, ns, "alice", metav1.ConditionFalse, mailv1alpha1.ReasonSecretMissing)
	o.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "alice-pw"}, StringData: map[string]string{"password": "alice-initial"}})
	mb := waitMailbox(t, c, ns, "alice", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	if mb.Status.Shard == nil || mb.Status.Quota == nil || mb.Status.Quota.Value() != 1<<30 {
		t.Errorf("alice status: %+v", mb.Status)
	}
}

func (o *operatorScenario) generatedPassword(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	mb := waitMailbox(t, c, ns, "bob", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	var cred corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bob-credentials"}, &cred); err != nil {
		t.Fatal(err)
	}
	pw := string(cred.Data["password"])
	if len(pw) < 20 || mb.Status.CredentialsSecretName != "bob-credentials" {
		t.Fatalf("generated password %d chars, status %+v", len(pw), mb.Status)
	}
	spec, raw := readDirectory(t, c, ns, "mail")
	entry := inDirectory(spec, "bob@example.com")
	if entry == nil {
		t.Fatal("bob is not in the directory")
	}
	if ok, err := passwordhash.Verify(entry.PasswordHash, pw); !ok || err != nil {
		t.Fatalf("directory hash does not verify bob's password: %v", err)
	}
	if strings.Contains(string(raw[dirsecret.KeyDirectory]), pw) || strings.Contains(string(raw[dirsecret.KeyDirectory]), "alice-initial") {
		t.Fatal("a plain-text password is in the directory")
	}
	// Two replicas: the two mailboxes are spread over both.
	alice := waitMailbox(t, c, ns, "alice", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
	if *alice.Status.Shard == *mb.Status.Shard {
		t.Errorf("both mailboxes on shard %d; the least-loaded replica should get the second", *mb.Status.Shard)
	}
}

func (o *operatorScenario) ownPasswordFullStrength(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	spec, _ := readDirectory(t, c, ns, "mail")
	entry := inDirectory(spec, "bob@example.com")
	if entry == nil {
		t.Fatal("bob is not in the directory")
	}
	// Random, 144 bits: the cheap parameters protect it as well as any.
	if cheap := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$", passwordhash.GeneratedArgon2Memory, passwordhash.GeneratedArgon2Time); !strings.HasPrefix(entry.PasswordHash, cheap) {
		t.Errorf("generated password hashed as %.40s..., want %s...", entry.PasswordHash, cheap)
	}
	var cred corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bob-credentials"}, &cred); err != nil {
		t.Fatal(err)
	}
	cred.Data["password"] = []byte("bobs-own-choice")
	if err := c.Update(ctx, &cred); err != nil {
		t.Fatal(err)
	}
	full := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=1$", passwordhash.Argon2Memory, passwordhash.Argon2Time)
	reconciled.Until(t, "bob's own password hashed at full strength", func() (bool, string) {
		spec, _ := readDirectory(t, c, ns, "mail")
		e := inDirectory(spec, "bob@example.com")
		if e == nil {
			return false, "bob is not in the directory"
		}
		if ok, _ := passwordhash.Verify(e.PasswordHash, "bobs-own-choice"); !ok {
			return false, "the hash does not verify the new password yet"
		}
		return strings.HasPrefix(e.PasswordHash, full), fmt.Sprintf("hashed as %.40s...", e.PasswordHash)
	})
}

func (o *operatorScenario) changedPasswordRehashes(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	spec, _ := readDirectory(t, c, ns, "mail")
	before := inDirectory(spec, "alice@example.com").PasswordHash
	var sec corev1.Secret
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alice-pw"}, &sec)
	sec.Data["password"] = []byte("alice-changed")
	if err := c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	reconciled.Until(t, "a new hash for alice", func() (bool, string) {
		spec, _ := readDirectory(t, c, ns, "mail")
		e := inDirectory(spec, "alice@example.com")
		if e == nil || e.PasswordHash == before {
			return false, "unchanged"
		}
		ok, _ := passwordhash.Verify(e.PasswordHash, "alice-changed")
		return ok, "hash does not verify the new password"
	})
}

func (o *operatorScenario) addressConflict(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	o.create(t, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "alice-again"}, Spec: mailv1alpha1.MailboxSpec{Address: "alice@example.com"}})
	mb := waitMailbox(t, c, ns, "alice-again", metav1.ConditionFalse, mailv1alpha1.ReasonAddressConflict)
	if _, _, msg := readyReason(mb.Status.Conditions); !strings.Contains(msg, `Mailbox "alice"`) {
		t.Errorf("conflict message %q does not name the owner", msg)
	}
	o.create(t, &mailv1alpha1.MailAlias{ObjectMeta: metav1.ObjectMeta{Name: "pm"}, Spec: mailv1alpha1.MailAliasSpec{
		Address: "postmaster@example.com", Members: []mailv1alpha1.EmailAddress{"bob@example.com"}}})
	o.create(t, &mailv1alpha1.MailAlias{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Spec: mailv1alpha1.MailAliasSpec{
		Address: "team@example.com", Members: []mailv1alpha1.EmailAddress{"bob@example.com", "alice@example.com"}}})
	for name, want := range map[string]string{"pm": mailv1alpha1.ReasonAddressConflict, "team": mailv1alpha1.ReasonReconciled} {
		reconciled.Until(t, "MailAlias "+name, func() (bool, string) {
			var al mailv1alpha1.MailAlias
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &al)
			_, r, m := readyReason(al.Status.Conditions)
			return r == want, r + ": " + m
		})
	}
	if spec, _ := readDirectory(t, c, ns, "mail"); len(spec.Aliases) != 1 || spec.Aliases[0].Address != "team@example.com" {
		t.Errorf("directory aliases: %+v", spec.Aliases)
	}
}

func (o *operatorScenario) domainAppearsLater(t *testing.T) {
	c, ns := o.c, o.ns
	o.create(t, &mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-net"},
		Spec: mailv1alpha1.MailDomainSpec{Domain: "example.net", ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"}}})
	waitMailbox(t, c, ns, "orphan", metav1.ConditionTrue, mailv1alpha1.ReasonReconciled)
}

func (o *operatorScenario) domainRecordsAndDKIM(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	var md mailv1alpha1.MailDomain
	reconciled.Until(t, "MailDomain Ready", func() (bool, string) {
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "example-com"}, &md)
		s, r, m := readyReason(md.Status.Conditions)
		return s == metav1.ConditionTrue && md.Status.Mailboxes == 3, r + ": " + m
	})
	got := map[string]string{}
	for _, rec := range md.Status.DNSRecords {
		got[rec.Purpose] = rec.Name + " " + rec.Type + " " + rec.Value
	}
	for purpose, want := range map[string]string{
		"mx":    "example.com. MX mail.example.com.",
		"spf":   "example.com. TXT v=spf1 mx -all",
		"dkim":  "kubemail._domainkey.example.com. TXT v=DKIM1; k=rsa; p=MII",
		"dmarc": "_dmarc.example.com. TXT v=DMARC1; p=none",
	} {
		if !strings.HasPrefix(got[purpose], want) {
			t.Errorf("%s record %q, want prefix %q", purpose, got[purpose], want)
		}
	}
	var key corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: md.Status.DKIMSecretName}, &key); err != nil {
		t.Fatal(err)
	}
	spec, _ := readDirectory(t, c, ns, "mail")
	for _, d := range spec.Domains {
		if d.Name == "example.com" && (d.DKIM == nil || d.DKIM.Selector != "kubemail") {
			t.Errorf("directory domain example.com lacks its DKIM key: %+v", d)
		}
	}
}

func (o *operatorScenario) deleteMailbox(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	if err := c.Delete(ctx, &mailv1alpha1.Mailbox{ObjectMeta: metav1.ObjectMeta{Name: "bob", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	reconciled.Until(t, "bob gone", func() (bool, string) {
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "bob"}, &mailv1alpha1.Mailbox{})
		spec, _ := readDirectory(t, c, ns, "mail")
		return apierrors.IsNotFound(err) && inDirectory(spec, "bob@example.com") == nil, errString(err)
	})
}

func (o *operatorScenario) smarthost(t *testing.T) {
	c, ctx, ns := o.c, o.ctx, o.ns
	var mc mailv1alpha1.MailCluster
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Outbound = &mailv1alpha1.OutboundSpec{Relay: &mailv1alpha1.RelaySpec{Host: "smarthost.example.net", Port: 587, TLS: "StartTLS",
		CredentialsSecretRef: &mailv1alpha1.LocalObjectReference{Name: "relay-creds"}}}
	if err := c.Patch(ctx, &mc, patch); err != nil {
		t.Fatal(err)
	}
	condition := func(want string) {
		t.Helper()
		reconciled.Until(t, "MailCluster Ready reason "+want, func() (bool, string) {
			c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc)
			s, r, m := readyReason(mc.Status.Conditions)
			d := meta.FindStatusCondition(mc.Status.Conditions, mailv1alpha1.ConditionDegraded)
			if want == mailv1alpha1.ReasonRelayCredentialsMissing {
				return s == metav1.ConditionFalse && r == want && d != nil && d.Reason == want, r + ": " + m
			}
			return r != mailv1alpha1.ReasonRelayCredentialsMissing && d != nil && d.Reason != mailv1alpha1.ReasonRelayCredentialsMissing, r + ": " + m
		})
	}
	condition(mailv1alpha1.ReasonRelayCredentialsMissing)
	if _, _, m := readyReason(mc.Status.Conditions); !strings.Contains(m, "relay-creds") || !strings.Contains(m, "does not exist") {
		t.Errorf("Ready message %q does not name the missing Secret", m)
	}
	reconciled.Until(t, "relay settings in the ConfigMap and the credentials volume", func() (bool, string) {
		var cm corev1.ConfigMap
		var sts appsv1.StatefulSet
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail-config"}, &cm)
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &sts)
		cfg := cm.Data["config.yaml"]
		mounted := false
		for _, v := range sts.Spec.Template.Spec.Volumes {
			mounted = mounted || v.Secret != nil && v.Secret.SecretName == "relay-creds"
		}
		return strings.Contains(cfg, "host: smarthost.example.net") && strings.Contains(cfg, "usernameFile: /etc/kubemail/relay/username") && mounted, cfg
	})

	o.create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "relay-creds"}, StringData: map[string]string{"username": "mailer"}})
	reconciled.Until(t, "the missing key named", func() (bool, string) {
		c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "mail"}, &mc)
		_, r, m := readyReason(mc.Status.Conditions)
		return r == mailv1alpha1.ReasonRelayCredentialsMissing && strings.Contains(m, "lacks the key password"), m
	})
	var sec corev1.Secret
	c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "relay-creds"}, &sec)
	sec.StringData = map[string]string{"password": "s3cret-relay-pass"}
	if err := c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	condition("")
	if raw, _ := json.Marshal(mc.Status); strings.Contains(string(raw), "s3cret-relay-pass") {
		t.Error("the relay password reached the MailCluster's status")
	}
}

func ptrTo[T any](v T) *T { return &v }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func typeName(o any) string { return fmt.Sprintf("%T", o) }
