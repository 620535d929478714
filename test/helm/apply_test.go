package helm_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/testenv"
)

// serviceMonitorCRD stands in for prometheus-operator's CRD, which the test API server does
// not have: enough for the server to accept a monitoring.coreos.com/v1 ServiceMonitor, not a
// check of its fields (TestRender checks those).
const serviceMonitorCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// cluster is the test API server with the clients the tests drive it with.
type cluster struct {
	env     *testenv.Env
	kubectl string
	helmEnv []string
}

func startCluster(t *testing.T, namespaces ...string) *cluster {
	t.Helper()
	env := testenv.Start(t)
	home := t.TempDir()
	c := &cluster{
		env:     env,
		kubectl: filepath.Join(env.AssetsDir, "kubectl"),
		// Keep helm's cache and settings out of the user's home.
		helmEnv: []string{"KUBECONFIG=" + env.Kubeconfig, "HELM_CACHE_HOME=" + home + "/cache",
			"HELM_CONFIG_HOME=" + home + "/config", "HELM_DATA_HOME=" + home + "/data"},
	}
	for _, ns := range namespaces {
		// Restricted namespaces: the API server warns about any pod template that breaks the
		// restricted Pod Security Standard, and the tests fail on warnings.
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}
		if err := env.Client.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *cluster) helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := run(t, c.helmEnv, helmBinary(t), args...)
	return out, err
}

// kubectlApply applies a manifest and fails on any warning (PodSecurity, deprecated APIs).
func (c *cluster) kubectlApply(t *testing.T, manifest string, args ...string) string {
	t.Helper()
	return c.kubectlOK(t, append([]string{"apply", "-f", writeTemp(t, manifest)}, args...)...)
}

func (c *cluster) kubectlOK(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := run(t, nil, c.kubectl, append([]string{"--kubeconfig", c.env.Kubeconfig}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "Warning") {
		t.Fatalf("kubectl %s warned:\n%s", strings.Join(args, " "), stderr)
	}
	return out
}

// can asks the API server's authorizer whether user may do verb on resource in namespace
// (empty: across all namespaces).
func (c *cluster) can(t *testing.T, user, verb, group, resource, namespace string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               user,
		Groups:             []string{"system:serviceaccounts", "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace},
	}}
	if err := c.env.Client.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// clusterWideGrants are what the operator installed cluster-wide (ServiceAccount kubemail in
// kubemail-system) may and may not do.
var clusterWideGrants = []grant{
	{"list", "mail.kubemail.io", "mailboxes", "", true},
	{"update", "mail.kubemail.io", "mailclusters/status", "mail-c", true},
	{"create", "apps", "statefulsets", "mail-c", true},
	{"create", "rbac.authorization.k8s.io", "roles", "mail-a", true},
	{"update", "coordination.k8s.io", "leases", namespace, true},
	{"update", "coordination.k8s.io", "leases", "mail-a", false},
	{"delete", "mail.kubemail.io", "mailboxes", "mail-a", false},
	{"create", "", "pods", "mail-a", false},
}

type grant struct {
	verb, group, resource, namespace string
	allowed                          bool
}

func (c *cluster) checkGrants(t *testing.T, user string, grants []grant) {
	t.Helper()
	for _, g := range grants {
		if got := c.can(t, user, g.verb, g.group, g.resource, g.namespace); got != g.allowed {
			where := "in namespace " + g.namespace
			if g.namespace == "" {
				where = "in all namespaces"
			}
			t.Errorf("%s may %s %s.%s %s: %v, want %v", user, g.verb, g.resource, g.group, where, got, g.allowed)
		}
	}
}

// TestChartOnAPIServer applies every value set's output with server-side dry-run, then installs,
// upgrades and uninstalls the chart with helm, cluster-wide and namespaced.
func TestChartOnAPIServer(t *testing.T) {
	c := startCluster(t, namespace, "mail-a", "mail-b", "mail-c", "scoped-system")
	c.kubectlOK(t, "apply", "--server-side", "-f", writeTemp(t, serviceMonitorCRD))
	c.kubectlOK(t, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")

	for _, vs := range valueSets {
		t.Run("dry-run/"+vs.name, func(t *testing.T) { c.dryRun(t, vs) })
	}

	t.Run("install-upgrade-uninstall", c.installUpgradeUninstall)
	t.Run("namespaced-install", c.namespacedInstall)
}

// dryRun applies the value set's output with server-side dry-run: the API server must accept
// every object.
func (c *cluster) dryRun(t *testing.T, vs valueSet) {
	out, err := template(t, vs.flags(t)...)
	if err != nil {
		t.Fatal(err)
	}
	objs := parse(t, out)
	applied := c.kubectlApply(t, out, "--server-side", "--dry-run=server", "--field-manager=helm-test")
	if n := strings.Count(applied, "(server dry run)"); n != len(objs) {
		t.Errorf("the API server accepted %d of %d objects:\n%s", n, len(objs), applied)
	}
}

// installUpgradeUninstall takes over the CRDs, installs the chart cluster-wide, checks the
// notes' example and the grants, upgrades, and uninstalls keeping the CRDs.
func (c *cluster) installUpgradeUninstall(t *testing.T) {
	// The test API server already has the CRDs (installed without Helm, as by make deploy):
	// take them over as the chart README says.
	for _, crd := range []string{"mailclusters", "maildomains", "mailboxes", "mailaliases"} {
		name := "crd/" + crd + ".mail.kubemail.io"
		c.kubectlOK(t, "label", name, "app.kubernetes.io/managed-by=Helm")
		c.kubectlOK(t, "annotate", name, "meta.helm.sh/release-name="+release, "meta.helm.sh/release-namespace="+namespace)
	}
	out, err := c.helm(t, "install", release, chartDir, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	// The notes' example must be accepted as it stands.
	example := notesExample(t, out)
	applied := c.kubectlApply(t, example, "--dry-run=server", "--namespace", "mail-a")
	for _, want := range []string{"mailcluster.mail.kubemail.io/mail created", "maildomain.mail.kubemail.io/example-com created", "mailbox.mail.kubemail.io/alice created"} {
		if !strings.Contains(applied, want) {
			t.Errorf("applying the notes' example: no %q in\n%s", want, applied)
		}
	}

	c.checkGrants(t, "system:serviceaccount:"+namespace+":kubemail", clusterWideGrants)

	if _, err := c.helm(t, "upgrade", release, chartDir, "--namespace", namespace, "--reuse-values", "--set", "logLevel=debug"); err != nil {
		t.Fatal(err)
	}
	args := c.kubectlOK(t, "get", "deployment", "kubemail", "-n", namespace, "-o", "jsonpath={.spec.template.spec.containers[0].args}")
	if !strings.Contains(args, "--zap-log-level=debug") {
		t.Errorf("after helm upgrade the operator runs with %s", args)
	}
	manifest, err := c.helm(t, "get", "manifest", release, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(parse(t, manifest).ofKind("CustomResourceDefinition")); n != 4 {
		t.Errorf("the release manages %d CRDs, want 4: helm upgrade would not upgrade them", n)
	}

	out, err = c.helm(t, "uninstall", release, "--namespace", namespace)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kept due to the resource policy") {
		t.Errorf("helm uninstall did not report keeping the CRDs:\n%s", out)
	}
	crds := c.kubectlOK(t, "get", "crd", "-o", "name")
	for _, crd := range []string{"mailclusters", "maildomains", "mailboxes", "mailaliases"} {
		if !strings.Contains(crds, crd+".mail.kubemail.io") {
			t.Errorf("helm uninstall deleted CRD %s (and every object of it)", crd)
		}
	}
	if deps := c.kubectlOK(t, "get", "deployments", "-n", namespace, "-o", "name"); deps != "" {
		t.Errorf("helm uninstall left %s", deps)
	}
}

// namespacedInstall installs the chart a second time, limited to mail-a and mail-b, and runs
// the operator with only the rights it grants.
func (c *cluster) namespacedInstall(t *testing.T) {
	// A second install next to CRDs it does not own: crds.install=false, as the README says.
	if _, err := c.helm(t, "install", "scoped", chartDir, "--namespace", "scoped-system",
		"--set", "crds.install=false", "--set", "watchNamespaces={mail-a,mail-b}"); err != nil {
		t.Fatal(err)
	}
	sa := "system:serviceaccount:scoped-system:scoped-kubemail"
	c.checkGrants(t, sa, []grant{
		{"list", "mail.kubemail.io", "mailboxes", "mail-a", true},
		{"watch", "", "secrets", "mail-b", true},
		{"create", "apps", "statefulsets", "mail-b", true},
		{"create", "events.k8s.io", "events", "mail-a", true},
		{"update", "coordination.k8s.io", "leases", "scoped-system", true},
		{"create", "", "events", "scoped-system", true},
		{"list", "mail.kubemail.io", "mailboxes", "mail-c", false},
		{"list", "mail.kubemail.io", "mailboxes", "", false},
		{"get", "", "secrets", "kube-system", false},
	})
	// The one cluster-wide grant: token and access reviews for the secure metrics endpoint.
	if crb := strings.TrimSpace(c.kubectlOK(t, "get", "clusterrolebindings", "-l", "app.kubernetes.io/instance=scoped", "-o", "name")); crb != "clusterrolebinding.rbac.authorization.k8s.io/scoped-kubemail-metrics-auth" {
		t.Errorf("namespaced install created %q", crb)
	}

	// The real operator, with the Deployment's arguments and only its ServiceAccount's
	// rights, serves a MailCluster in a watched namespace and ignores one elsewhere.
	d := deployment(t, c.getObject(t, "deployment", "scoped-system", "scoped-kubemail"))
	runOperator(t, c, d, "scoped-system")
	sample := filepath.Join(root, "config", "samples", "mail_v1alpha1_mailcluster.yaml")
	c.kubectlOK(t, "apply", "-n", "mail-a", "-f", sample)
	c.kubectlOK(t, "apply", "-n", "mail-c", "-f", sample)
	c.kubectlOK(t, "wait", "-n", "mail-a", "--for=create", "--timeout=60s", "statefulset/mail")
	c.kubectlOK(t, "wait", "-n", "mail-a", "--for=jsonpath={.status.observedGeneration}=1", "--timeout=60s", "mailcluster/mail")
	if got := c.kubectlOK(t, "get", "statefulsets", "-n", "mail-c", "-o", "name"); got != "" {
		t.Errorf("the operator watching mail-a and mail-b reconciled a MailCluster in mail-c: %s", got)
	}
}

func (c *cluster) getObject(t *testing.T, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	return parse(t, c.kubectlOK(t, "get", kind, name, "-n", ns, "-o", "yaml")).get(t, "Deployment", ns, name)
}

// runOperator runs the operator binary as the Deployment d in namespace would: its arguments
// and environment, authenticated as its ServiceAccount. Leader election is left out (it needs
// the in-cluster namespace file); the tests check the Lease grant instead. The probe and
// metrics endpoints move to free ports so tests can run side by side.
func runOperator(t *testing.T, c *cluster, d *appsv1.Deployment, namespace string) {
	t.Helper()
	ctx := context.Background()
	bin, err := launch.Build(ctx, t.TempDir(), "manager")
	if err != nil {
		t.Fatal(err)
	}

	cs, err := kubernetes.NewForConfig(c.env.Config)
	if err != nil {
		t.Fatal(err)
	}
	sa := d.Spec.Template.Spec.ServiceAccountName
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: c.env.Config.Host, CertificateAuthorityData: c.env.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["pod"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: sa, Namespace: namespace}
	kc.CurrentContext = "pod"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	container := d.Spec.Template.Spec.Containers[0]
	var args []string
	for _, a := range container.Args {
		switch {
		case a == "--leader-elect":
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			args = append(args, "--health-probe-bind-address=127.0.0.1:0")
		case strings.HasPrefix(a, "--metrics-bind-address="):
			args = append(args, "--metrics-bind-address=0")
		default:
			args = append(args, a)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"KUBECONFIG=" + kubeconfig}
	for _, e := range container.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if l := logs.String(); strings.Contains(l, "forbidden") {
			t.Errorf("the operator was refused access with the chart's RBAC:\n%s", l)
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", logs.String())
		}
	})
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// notesExample returns the indented YAML example in the install notes.
func notesExample(t *testing.T, installOutput string) string {
	t.Helper()
	_, notes, ok := strings.Cut(installOutput, "NOTES:")
	if !ok {
		t.Fatalf("helm install printed no notes:\n%s", installOutput)
	}
	m := regexp.MustCompile(`(?s)\n(  apiVersion: mail\.kubemail\.io/.*?)\n\n  kubectl apply`).FindStringSubmatch(notes)
	if m == nil {
		t.Fatalf("no YAML example in the notes:\n%s", notes)
	}
	var b strings.Builder
	for _, line := range strings.Split(m[1], "\n") {
		b.WriteString(strings.TrimPrefix(line, "  "))
		b.WriteByte('\n')
	}
	return b.String()
}
