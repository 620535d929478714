package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/test/testenv"
)

// decodeAll reads every object of a multi-document YAML stream.
func decodeAll(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

func createNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// crdTests are TestCRDs' subtests: one API server with the CRDs, and a client that refuses
// unknown fields.
type crdTests struct {
	env    *testenv.Env
	strict client.Client
}

func TestCRDs(t *testing.T) {
	env := testenv.Start(t)
	s := crdTests{env: env, strict: client.WithFieldValidation(env.Client, metav1.FieldValidationStrict)}
	t.Run("samples apply and re-apply as a no-op", s.samplesReapply)
	t.Run("minimal manifests get defaults", s.minimalDefaults)
	t.Run("internationalised domains and addresses are accepted", s.internationalised)
	t.Run("invalid manifests are rejected with a clear message", s.invalidRejected)
	t.Run("kubectl get mail lists every kind with its columns", s.kubectlGetMail)
}

func (s crdTests) samplesReapply(t *testing.T) {
	env, strict := s.env, s.strict
	first := applySamples(t, env, strict, "samples")
	second := applySamples(t, env, strict, "samples")
	for k, v := range first {
		if second[k] != v {
			t.Errorf("re-applying %s changed it (resourceVersion %s -> %s)", k, v, second[k])
		}
	}
}

func (s crdTests) minimalDefaults(t *testing.T) {
	env, strict := s.env, s.strict
	ctx := context.Background()
	createNamespace(t, env.Client, "minimal")
	objs := decodeAll(t, []byte(`
apiVersion: mail.kubemail.io/v1alpha1
kind: MailCluster
metadata: {name: m, namespace: minimal}
spec: {hostname: mail.example.net}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: d, namespace: minimal}
spec: {domain: example.net, clusterRef: {name: m}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: b, namespace: minimal}
spec: {address: o'brien+tag@example.net}
`))
	for _, o := range objs {
		if err := strict.Create(ctx, o); err != nil {
			t.Fatalf("creating minimal %s: %v", o.GetKind(), err)
		}
	}
	var mc mailv1alpha1.MailCluster
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "minimal", Name: "m"}, &mc); err != nil {
		t.Fatal(err)
	}
	if mc.Spec.Replicas == nil || *mc.Spec.Replicas != 1 || mc.Spec.Storage.Size == nil || mc.Spec.Storage.Size.String() != "10Gi" ||
		mc.Spec.Service.Type != corev1.ServiceTypeLoadBalancer || mc.Spec.Limits.MaxMessageSize == nil || mc.Spec.Limits.MaxMessageSize.String() != "25Mi" ||
		mc.Spec.Limits.MaxRecipients != 100 || mc.Spec.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("MailCluster defaults not applied: %+v", mc.Spec)
	}
	var md mailv1alpha1.MailDomain
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "minimal", Name: "d"}, &md); err != nil {
		t.Fatal(err)
	}
	if md.Spec.DKIM.Enabled == nil || !*md.Spec.DKIM.Enabled || md.Spec.DKIM.Selector != "kubemail" ||
		md.Spec.DKIM.Algorithm != "rsa-sha256" || md.Spec.DMARC.Policy != "none" {
		t.Errorf("MailDomain defaults not applied: %+v", md.Spec)
	}
	var mb mailv1alpha1.Mailbox
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "minimal", Name: "b"}, &mb); err != nil {
		t.Fatal(err)
	}
	if mb.Spec.DeletionPolicy != mailv1alpha1.DeletionPolicyRetain || mb.Spec.Suspended {
		t.Errorf("Mailbox defaults not applied: %+v", mb.Spec)
	}
}

func (s crdTests) internationalised(t *testing.T) {
	env, strict := s.env, s.strict
	ctx := context.Background()
	createNamespace(t, env.Client, "idn")
	objs := decodeAll(t, []byte(`
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: buecher, namespace: idn}
spec: {domain: bücher.example, clusterRef: {name: m}, catchAll: info@bücher.example, dmarc: {reportAddress: dmarc-берichte@bücher.example}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: greek, namespace: idn}
spec: {domain: παράδειγμα.δοκιμή, clusterRef: {name: m}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: alabel, namespace: idn}
spec: {domain: xn--mller-kva.example, clusterRef: {name: m}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: joerg, namespace: idn}
spec: {address: jörg@bücher.example, aliases: [Jörg.Müller@bücher.example, 用户@xn--mller-kva.example], forwarding: {to: [δοκιμή@παράδειγμα.δοκιμή]}}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: MailAlias
metadata: {name: alle, namespace: idn}
spec: {address: alle@bücher.example, members: [jörg@bücher.example, søren@example.dk]}
`))
	for _, o := range objs {
		if err := strict.Create(ctx, o); err != nil {
			t.Errorf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func (s crdTests) invalidRejected(t *testing.T) {
	env, strict := s.env, s.strict
	createNamespace(t, env.Client, "invalid")
	for i, tc := range invalidCases {
		name := fmt.Sprintf("bad-%d", i)
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var err error
			if tc.before != "" {
				before := decodeAll(t, []byte(tc.before))[0]
				before.SetNamespace("invalid")
				before.SetName(name)
				if err := strict.Create(ctx, before); err != nil {
					t.Fatalf("creating the valid original: %v", err)
				}
				after := decodeAll(t, []byte(tc.manifest))[0]
				after.SetNamespace("invalid")
				after.SetName(name)
				after.SetResourceVersion(before.GetResourceVersion())
				err = strict.Update(ctx, after)
			} else {
				obj := decodeAll(t, []byte(tc.manifest))[0]
				obj.SetNamespace("invalid")
				obj.SetName(name)
				err = strict.Create(ctx, obj)
			}
			if err == nil {
				t.Fatalf("accepted; want a rejection mentioning %q", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid or BadRequest error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err.Error(), tc.want)
			}
		})
	}
}

func (s crdTests) kubectlGetMail(t *testing.T) {
	env, strict := s.env, s.strict
	applySamples(t, env, strict, "kubectl-demo")
	out, err := exec.Command(filepath.Join(env.AssetsDir, "kubectl"), "--kubeconfig", env.Kubeconfig,
		"get", "mail", "-A").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get mail -A: %v\n%s", err, out)
	}
	text := string(out)
	t.Logf("kubectl get mail -A:\n%s", text)
	for _, want := range []string{
		"HOSTNAME", "REPLICAS", "mail.example.com", // MailCluster
		"DOMAIN", "CLUSTER", "MAILBOXES", "example.org", // MailDomain
		"ADDRESS", "QUOTA", "USED", "alice@example.com", // Mailbox
		"MEMBERS", "team@example.com", // MailAlias
		"maildomain.mail.kubemail.io/example-com", "mailcluster.mail.kubemail.io/mail",
		"mailbox.mail.kubemail.io/carol", "mailalias.mail.kubemail.io/team",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("kubectl get mail -A output lacks %q", want)
		}
	}
}

type invalidCase struct {
	name     string
	before   string // when set, created first; manifest is then an update of it
	manifest string
	want     string
}

const (
	clusterHead = "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailCluster\nmetadata: {name: bad}\n"
	domainHead  = "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailDomain\nmetadata: {name: bad}\n"
	mailboxHead = "apiVersion: mail.kubemail.io/v1alpha1\nkind: Mailbox\nmetadata: {name: bad}\n"
	aliasHead   = "apiVersion: mail.kubemail.io/v1alpha1\nkind: MailAlias\nmetadata: {name: bad}\n"
)

var invalidCases = []invalidCase{
	{name: "domain with a space", manifest: domainHead + "spec: {domain: 'not a domain', clusterRef: {name: m}}",
		want: "must be a fully qualified DNS name"},
	{name: "upper-case domain", manifest: domainHead + "spec: {domain: Example.COM, clusterRef: {name: m}}",
		want: "must be lowercase"},
	{name: "single-label domain", manifest: domainHead + "spec: {domain: localhost, clusterRef: {name: m}}",
		want: "must be a fully qualified DNS name"},
	{name: "domain with a trailing dot", manifest: domainHead + "spec: {domain: example.com., clusterRef: {name: m}}",
		want: "with no trailing dot"},
	{name: "domain without clusterRef", manifest: domainHead + "spec: {domain: example.com}",
		want: "spec.clusterRef: Required value"},
	{name: "changed domain", before: domainHead + "spec: {domain: example.com, clusterRef: {name: m}}",
		manifest: domainHead + "spec: {domain: example.net, clusterRef: {name: m}}",
		want:     "domain is immutable"},
	{name: "bad DKIM selector", manifest: domainHead + "spec: {domain: example.com, clusterRef: {name: m}, dkim: {selector: Bad_Sel}}",
		want: "selector must be one lowercase DNS label"},
	{name: "unknown DKIM algorithm", manifest: domainHead + "spec: {domain: example.com, clusterRef: {name: m}, dkim: {algorithm: rsa-sha1}}",
		want: `Unsupported value: "rsa-sha1"`},
	{name: "negative default quota", manifest: domainHead + "spec: {domain: example.com, clusterRef: {name: m}, defaultQuota: -5}",
		want: "defaultQuota must not be negative"},
	{name: "address without @", manifest: mailboxHead + "spec: {address: alice}",
		want: "must be an email address of the form local-part@domain"},
	{name: "address with two @", manifest: mailboxHead + "spec: {address: a@b@example.com}",
		want: "with exactly one @"},
	{name: "address with upper-case domain", manifest: mailboxHead + "spec: {address: alice@Example.com}",
		want: "the domain of an address must be lowercase"},
	{name: "address with double dot", manifest: mailboxHead + "spec: {address: al..ice@example.com}",
		want: "the part before @ must be"},
	{name: "address with bad domain", manifest: mailboxHead + "spec: {address: alice@example}",
		want: "the part after @ must be a fully qualified domain name"},
	{name: "changed address", before: mailboxHead + "spec: {address: alice@example.com}",
		manifest: mailboxHead + "spec: {address: alicia@example.com}",
		want:     "address is immutable"},
	{name: "negative quota", manifest: mailboxHead + "spec: {address: alice@example.com, quota: -1Gi}",
		want: "quota must not be negative"},
	{name: "invalid forwarding target", manifest: mailboxHead + "spec: {address: alice@example.com, forwarding: {to: [bob]}}",
		want: "must be an email address"},
	{name: "duplicate alias", manifest: mailboxHead + "spec: {address: alice@example.com, aliases: [a@example.com, a@example.com]}",
		want: "Duplicate value"},
	{name: "alias repeating the address", manifest: mailboxHead + "spec: {address: alice@example.com, aliases: [alice@example.com]}",
		want: "aliases must not repeat the mailbox's own address"},
	{name: "unknown deletion policy", manifest: mailboxHead + "spec: {address: alice@example.com, deletionPolicy: Keep}",
		want: `Unsupported value: "Keep"`},
	{name: "relay password without TLS", manifest: clusterHead + "spec: {hostname: mail.example.com, outbound: {relay: {host: relay.example.net, port: 25, tls: None, credentialsSecretRef: {name: relay}}}}",
		want: "with None the password would cross the network in clear text"},
	{name: "replicas 0", manifest: clusterHead + "spec: {hostname: mail.example.com, replicas: 0}",
		want: "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"},
	{name: "unknown field", manifest: clusterHead + "spec: {hostname: mail.example.com, replicaz: 2}",
		want: `unknown field "spec.replicaz"`},
	{name: "hostname not an FQDN", manifest: clusterHead + "spec: {hostname: mail}",
		want: "must be a fully qualified DNS name"},
	{name: "missing hostname", manifest: clusterHead + "spec: {replicas: 1}",
		want: "spec.hostname: Required value"},
	{name: "zero storage", manifest: clusterHead + "spec: {hostname: mail.example.com, storage: {size: '0'}}",
		want: "storage size must be greater than zero"},
	{name: "two TLS sources", manifest: clusterHead + "spec: {hostname: mail.example.com, tls: {secretName: s, issuerRef: {name: i}}}",
		want: "set secretName or issuerRef, not both"},
	{name: "traffic policy on ClusterIP", manifest: clusterHead + "spec: {hostname: mail.example.com, service: {type: ClusterIP, externalTrafficPolicy: Local}}",
		want: "externalTrafficPolicy applies only to LoadBalancer and NodePort"},
	{name: "trusted network not a CIDR", manifest: clusterHead + "spec: {hostname: mail.example.com, proxyProtocol: {trustedNetworks: [10.0.0.1]}}",
		want: "must be a CIDR"},
	{name: "alias without members", manifest: aliasHead + "spec: {address: team@example.com, members: []}",
		want: "should have at least 1 items"},
	{name: "alias listing itself", manifest: aliasHead + "spec: {address: team@example.com, members: [team@example.com]}",
		want: "an alias must not list itself as a member"},
	{name: "alias with bad member", manifest: aliasHead + "spec: {address: team@example.com, members: ['bob smith@example.com']}",
		want: "the part before @ must be"},
	{name: "upper-case U-label domain", manifest: domainHead + "spec: {domain: bÜcher.example, clusterRef: {name: m}}",
		want: "must be lowercase"},
	{name: "domain with a symbol", manifest: domainHead + "spec: {domain: ☃.example, clusterRef: {name: m}}",
		want: "must be a fully qualified DNS name such as example.com or bücher.example"},
	{name: "U-label domain with an underscore", manifest: domainHead + "spec: {domain: bü_cher.example, clusterRef: {name: m}}",
		want: "must be a fully qualified DNS name"},
	{name: "hostname in U-labels", manifest: clusterHead + "spec: {hostname: mail.bücher.example}",
		want: "must be a fully qualified DNS name such as example.com:"},
	{name: "address with upper-case U-label domain", manifest: mailboxHead + "spec: {address: jörg@bÜcher.example}",
		want: "the domain of an address must be lowercase"},
	{name: "UTF-8 local part over 64 octets", manifest: mailboxHead + "spec: {address: " + strings.Repeat("ö", 33) + "@bücher.example}",
		want: "the part before @ must be at most 64 octets in UTF-8"},
	{name: "local part with a no-break space", manifest: mailboxHead + "spec: {address: \"jörg\u00a0m@bücher.example\"}",
		want: "the part before @ must be letters (of any script)"},
	{name: "alias member with a zero-width space", manifest: aliasHead + "spec: {address: team@example.com, members: [\"a\u200bb@example.com\"]}",
		want: "the part before @ must be letters (of any script)"},
}

// applySamples server-side applies every object of config/samples into ns (creating it when
// needed) and returns their resourceVersions by kind/name.
func applySamples(t *testing.T, env *testenv.Env, c client.Client, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "mail_*.yaml"))
	if err != nil || len(files) != 4 {
		t.Fatalf("want 4 sample files, got %v (%v)", files, err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeAll(t, data)...)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["MailCluster"] != 1 || kinds["MailDomain"] != 2 || kinds["Mailbox"] != 3 || kinds["MailAlias"] != 1 {
		t.Fatalf("samples hold %v; want one cluster, two domains, three mailboxes, one alias", kinds)
	}
	versions := map[string]string{}
	for _, o := range objs {
		o := o.DeepCopy()
		o.SetNamespace(ns)
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.GetName()}, got); err != nil {
			t.Fatal(err)
		}
		versions[o.GetKind()+"/"+o.GetName()] = got.GetResourceVersion()
	}
	return versions
}
