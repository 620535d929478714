package helm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

func appVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || c.AppVersion == "" {
		t.Fatalf("Chart.yaml has no appVersion (%v)", err)
	}
	return c.AppVersion
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", "--kube-version", kubeVersion, chartDir}, vs.flags(t)...)
			if out, _, err := run(t, nil, helmBinary(t), args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// operator returns the chart's operator Deployment and its one container.
func operator(t *testing.T, objs objects) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	deps := objs.ofKind("Deployment")
	if len(deps) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deps))
	}
	d := deployment(t, deps[0])
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func argWithPrefix(c corev1.Container, prefix string) (string, bool) {
	for _, a := range c.Args {
		if strings.HasPrefix(a, prefix) {
			return a, true
		}
	}
	return "", false
}

// renderedChart is the chart rendered with one value set: its objects, the operator
// Deployment and its container, and the rules the RBAC must grant.
type renderedChart struct {
	objs  objects
	d     *appsv1.Deployment
	c     corev1.Container
	rules []any
}

// TestRender renders every value set and checks what the install would do.
func TestRender(t *testing.T) {
	rules := configRules(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			out, err := template(t, vs.flags(t)...)
			if err != nil {
				t.Fatal(err)
			}
			objs := parse(t, out)
			d, c := operator(t, objs)
			r := renderedChart{objs: objs, d: d, c: c, rules: rules}

			// What every install shares.
			r.checkOperatorPod(t)
			r.checkBindingsAndSelectors(t)

			switch vs.name {
			case "default":
				r.checkDefault(t)
			case "namespaced":
				r.checkNamespaced(t)
			case "monitoring":
				r.checkMonitoring(t)
			case "custom-image":
				r.checkCustomImage(t)
			case "bring-your-own":
				r.checkBringYourOwn(t)
			}
		})
	}
}

// checkOperatorPod: the operator runs its own release's image for the mail servers, with leader
// election, restricted security, resource limits and health probes.
func (r renderedChart) checkOperatorPod(t *testing.T) {
	d, c := r.d, r.c
	if got := env(c, "KUBEMAIL_IMAGE"); got != c.Image {
		t.Errorf("KUBEMAIL_IMAGE = %q, want the operator's own image %q: mail servers must run the operator's release", got, c.Image)
	}
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("args %v lack --leader-elect", c.Args)
	}
	if res := restrictedViolations(t, d); !res.Allowed {
		t.Errorf("the operator's pods would be refused in a restricted namespace: %s", res.ForbiddenDetail())
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container securityContext %+v: want readOnlyRootFilesystem", sc)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want memory requests and limits", c.Resources)
	}
	healthPort := int32(0)
	for _, p := range c.Ports {
		if p.Name == "health" {
			healthPort = p.ContainerPort
		}
	}
	if healthPort != 8081 {
		t.Errorf("health port %d, want 8081", healthPort)
	}
	for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "health" {
			t.Errorf("probe %+v: want GET %s on the health port", probe, path)
		}
	}
	if a, _ := argWithPrefix(c, "--health-probe-bind-address="); a != "--health-probe-bind-address=:8081" {
		t.Errorf("health flag %q, want :8081", a)
	}
}

// checkBindingsAndSelectors: the bindings name the operator's ServiceAccount and existing roles,
// every namespaced object has its namespace, and the selectors pick the right pods.
func (r renderedChart) checkBindingsAndSelectors(t *testing.T) {
	objs, d := r.objs, r.d
	sa := d.Spec.Template.Spec.ServiceAccountName
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, b := range objs.ofKind(kind) {
			roleKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
			roleName, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			objs.get(t, roleKind, b.GetNamespace(), roleName)
			if strings.HasSuffix(b.GetName(), "-metrics-reader") {
				continue // binds the scrapers named in metrics.readers; see checkMonitoring
			}
			subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
			want := []any{map[string]any{"kind": "ServiceAccount", "name": sa, "namespace": namespace}}
			if !reflect.DeepEqual(subjects, want) {
				t.Errorf("%s %s binds %v, want the operator's ServiceAccount %s/%s", kind, b.GetName(), subjects, namespace, sa)
			}
		}
	}
	le := objs.get(t, "Role", namespace, d.Name+"-leader-election")
	if !strings.Contains(mustJSON(t, le.Object["rules"]), `"coordination.k8s.io"],"resources":["leases"]`) {
		t.Errorf("leader-election Role lacks leases: %s", mustJSON(t, le.Object["rules"]))
	}
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetKind(), "Cluster") && o.GetNamespace() == "" {
			t.Errorf("%s %s has no namespace: `helm template | kubectl apply` would put it in the wrong one", o.GetKind(), o.GetName())
		}
	}
	for _, svc := range objs.ofKind("Service") {
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s selects %v, which misses the operator's pods %v", svc.GetName(), sel, d.Spec.Template.Labels)
		}
	}
	mailserverPod := labels.Set{"app.kubernetes.io/name": "kubemail", "app.kubernetes.io/instance": release, "app.kubernetes.io/component": "mailserver"}
	if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(mailserverPod) {
		t.Errorf("the operator's selector %v also matches the mail server pods it creates", d.Spec.Selector.MatchLabels)
	}
}

// checkDefault: the default values install cluster-wide, with the CRDs and a metrics Service.
func (r renderedChart) checkDefault(t *testing.T) {
	objs, c, rules := r.objs, r.c, r.rules
	if want := "kubemail/kubemail:" + appVersion(t); c.Image != want {
		t.Errorf("image %q, want %q (repository:appVersion)", c.Image, want)
	}
	cr := objs.get(t, "ClusterRole", "", "kubemail-manager")
	if !reflect.DeepEqual(cr.Object["rules"], rules) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml")
	}
	objs.get(t, "ClusterRoleBinding", "", "kubemail-manager")
	if a, ok := argWithPrefix(c, "--watch-namespaces"); ok {
		t.Errorf("cluster-wide install passes %s", a)
	}
	if n := len(objs.ofKind("CustomResourceDefinition")); n != 4 {
		t.Errorf("%d CRDs, want 4", n)
	}
	if a, _ := argWithPrefix(c, "--metrics-bind-address="); a != "--metrics-bind-address=:8080" {
		t.Errorf("metrics flag %q, want :8080", a)
	}
	svc := objs.get(t, "Service", namespace, "kubemail-metrics")
	if got := mustJSON(t, svc.Object["spec"].(map[string]any)["ports"]); got != `[{"name":"metrics","port":8080,"protocol":"TCP","targetPort":"metrics"}]` {
		t.Errorf("metrics Service ports %s", got)
	}
	if len(objs.ofKind("ServiceMonitor")) != 0 {
		t.Error("ServiceMonitor rendered although metrics.serviceMonitor.enabled is false")
	}
}

// checkNamespaced: an install limited to some namespaces grants nothing cluster-wide but what
// secure metrics need: asking the API server who calls /metrics (token and access reviews),
// and a role for whoever scrapes it.
func (r renderedChart) checkNamespaced(t *testing.T) {
	objs, c, rules := r.objs, r.c, r.rules
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		for _, o := range objs.ofKind(kind) {
			if n := o.GetName(); n != "kubemail-metrics-auth" && n != "kubemail-metrics-reader" {
				t.Errorf("namespaced install grants cluster-wide: %s %s", kind, n)
			}
		}
	}
	auth := objs.get(t, "ClusterRole", "", "kubemail-metrics-auth")
	if got := mustJSON(t, auth.Object["rules"]); got != `[{"apiGroups":["authentication.k8s.io"],"resources":["tokenreviews"],"verbs":["create"]},{"apiGroups":["authorization.k8s.io"],"resources":["subjectaccessreviews"],"verbs":["create"]}]` {
		t.Errorf("metrics-auth rules %s", got)
	}
	for _, ns := range []string{"mail-a", "mail-b"} {
		r := objs.get(t, "Role", ns, "kubemail-manager")
		if !reflect.DeepEqual(r.Object["rules"], rules) {
			t.Errorf("Role in %s: rules differ from config/rbac/role.yaml", ns)
		}
		objs.get(t, "RoleBinding", ns, "kubemail-manager")
	}
	if a, _ := argWithPrefix(c, "--watch-namespaces"); a != "--watch-namespaces=mail-a,mail-b" {
		t.Errorf("watch flag %q, want --watch-namespaces=mail-a,mail-b", a)
	}
}

// checkMonitoring: a ServiceMonitor that finds the metrics Service, its scraper allowed to read
// /metrics, and debug logs.
func (r renderedChart) checkMonitoring(t *testing.T) {
	objs, c := r.objs, r.c
	sms := objs.ofKind("ServiceMonitor")
	if len(sms) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sms))
	}
	sm := sms[0]
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor %s with labels %v", sm.GetAPIVersion(), sm.GetLabels())
	}
	svc := objs.get(t, "Service", namespace, "kubemail-metrics")
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
		t.Errorf("ServiceMonitor selects %v; the metrics Service has labels %v", sel, svc.GetLabels())
	}
	if got := mustJSON(t, sm.Object["spec"].(map[string]any)["endpoints"]); got != `[{"bearerTokenFile":"/var/run/secrets/kubernetes.io/serviceaccount/token","interval":"30s","path":"/metrics","port":"metrics","scheme":"https","scrapeTimeout":"10s","tlsConfig":{"insecureSkipVerify":true}}]` {
		t.Errorf("ServiceMonitor endpoints %s", got)
	}
	crb := objs.get(t, "ClusterRoleBinding", "", "kubemail-metrics-reader")
	if got := mustJSON(t, crb.Object["subjects"]); got != `[{"kind":"ServiceAccount","name":"prometheus-k8s","namespace":"monitoring"}]` {
		t.Errorf("metrics-reader subjects %s", got)
	}
	if got := mustJSON(t, crb.Object["roleRef"]); got != `{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"kubemail-metrics-reader"}` {
		t.Errorf("metrics-reader roleRef %s", got)
	}
	for _, want := range []string{"--zap-log-level=debug", "--zap-encoder=console"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
}

// checkCustomImage: image, pull policy and secrets, replicas and pod annotations from the values.
func (r renderedChart) checkCustomImage(t *testing.T) {
	d, c := r.d, r.c
	want := "registry.example.com/mail/kubemail:v9.9.9@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if c.Image != want {
		t.Errorf("image %q, want %q", c.Image, want)
	}
	if c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("pull policy %q", c.ImagePullPolicy)
	}
	if ps := d.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "registry-credentials" {
		t.Errorf("imagePullSecrets %v", ps)
	}
	if *d.Spec.Replicas != 2 || !slices.Contains(c.Args, "--pprof-bind-address=127.0.0.1:6060") {
		t.Errorf("replicas %d, args %v", *d.Spec.Replicas, c.Args)
	}
	if d.Spec.Template.Annotations["example.com/team"] != "mail" {
		t.Errorf("pod annotations %v", d.Spec.Template.Annotations)
	}
}

// checkBringYourOwn: what the values turn off is not rendered, and the names they give are used.
func (r renderedChart) checkBringYourOwn(t *testing.T) {
	objs, d, c := r.objs, r.d, r.c
	sa := r.d.Spec.Template.Spec.ServiceAccountName
	for _, kind := range []string{"CustomResourceDefinition", "ServiceAccount", "Service"} {
		if n := len(objs.ofKind(kind)); n != 0 {
			t.Errorf("%d %s rendered; the values turn them off", n, kind)
		}
	}
	if d.Name != "mailop" || sa != "mail-operator" {
		t.Errorf("Deployment %s with ServiceAccount %s, want mailop with mail-operator", d.Name, sa)
	}
	if !slices.Contains(c.Args, "--metrics-bind-address=0") {
		t.Errorf("args %v: metrics off needs --metrics-bind-address=0", c.Args)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBadValues: a mistake in the values stops the install with a message naming it.
func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wrong type", []string{"--set", "replicaCount=two"}, "at '/replicaCount': got string, want integer"},
		{"unknown top-level key", []string{"--set", "replicas=2"}, "additional properties 'replicas' not allowed"},
		{"misspelt nested key", []string{"--set", "metrics.serviceMonitor.enable=true"}, "at '/metrics/serviceMonitor': additional properties 'enable' not allowed"},
		{"not a boolean", []string{"--set", "crds.install=yes"}, "at '/crds/install': got string, want boolean"},
		{"not a list", []string{"--set", "watchNamespaces=mail"}, "at '/watchNamespaces': got string, want array"},
		{"bad namespace name", []string{"--set", "watchNamespaces={Mail_A}"}, "at '/watchNamespaces/0': 'Mail_A' does not match pattern"},
		{"unknown log level", []string{"--set", "logLevel=verbose"}, "at '/logLevel': value must be one of 'debug', 'info', 'error'"},
		{"bad digest", []string{"--set", "image.digest=v1"}, "at '/image/digest': 'v1' does not match pattern"},
		// What `make image-tar` used to print as the tag: a whole image reference.
		{"a reference as the tag", []string{"--set", "image.tag=kubemail/kubemail:v1"}, "at '/image/tag': 'kubemail/kubemail:v1' does not match pattern"},
		{"a tag with a colon", []string{"--set", "image.tag=v1:x"}, "at '/image/tag': 'v1:x' does not match pattern"},
		{"port out of range", []string{"--set", "metrics.port=80800"}, "at '/metrics/port': maximum: got 80,800, want 65,535"},
		{"ServiceMonitor without metrics", []string{"--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"}, "metrics.serviceMonitor.enabled needs metrics.enabled"},
		{"one port for two endpoints", []string{"--set", "healthProbePort=8080"}, "healthProbePort and metrics.port are both 8080"},
		{"no ServiceAccount", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name is required when serviceAccount.create is false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := template(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded; want it to fail with %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template %v failed with\n%v\nwant a message containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// TestChartMatchesConfig: the chart installs exactly the CRDs and grants exactly the rules that
// controller-gen generated into config/ (make verify also catches a stale chart).
func TestChartMatchesConfig(t *testing.T) {
	out, err := template(t)
	if err != nil {
		t.Fatal(err)
	}
	objs := parse(t, out)
	want := configCRDs(t)
	got := objs.ofKind("CustomResourceDefinition")
	if len(got) != len(want) {
		t.Errorf("chart has %d CRDs, config/crd/bases %d", len(got), len(want))
	}
	for _, crd := range got {
		w, ok := want[key("CustomResourceDefinition", "", crd.GetName())]
		if !ok {
			t.Errorf("chart CRD %s is not in config/crd/bases", crd.GetName())
			continue
		}
		ann := crd.GetAnnotations()
		if ann["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s lacks helm.sh/resource-policy: keep; helm uninstall would delete every %s", crd.GetName(), crd.GetName())
		}
		c := crd.DeepCopy()
		delete(ann, "helm.sh/resource-policy")
		c.SetAnnotations(ann)
		if !reflect.DeepEqual(c.Object, w.Object) {
			t.Errorf("chart CRD %s differs from config/crd/bases; run make manifests", crd.GetName())
		}
	}
	if !reflect.DeepEqual(objs.get(t, "ClusterRole", "", "kubemail-manager").Object["rules"], configRules(t)) {
		t.Error("chart ClusterRole rules differ from config/rbac/role.yaml; run make manifests")
	}
}

// TestReadmeDocumentsEveryValue: every value in the schema has a default in values.yaml and a
// row in README.md, and the README documents no value that does not exist.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	var schema map[string]any
	b, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var leaves []string
	var walk func(prefix string, node map[string]any)
	walk = func(prefix string, node map[string]any) {
		props, ok := node["properties"].(map[string]any)
		if !ok {
			leaves = append(leaves, prefix)
			return
		}
		for k, v := range props {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, v.(map[string]any))
		}
	}
	walk("", schema)
	sort.Strings(leaves)

	b, err = os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `") {
			documented[strings.SplitN(line, "`", 3)[1]] = true
		}
	}
	for _, leaf := range leaves {
		var v any = values
		for _, part := range strings.Split(leaf, ".") {
			m, _ := v.(map[string]any)
			var ok bool
			if v, ok = m[part]; !ok {
				t.Errorf("value %s is in values.schema.json but has no default in values.yaml", leaf)
				break
			}
		}
		if !documented[leaf] {
			t.Errorf("value %s is not documented in README.md's table", leaf)
		}
		delete(documented, leaf)
	}
	for extra := range documented {
		t.Errorf("README.md documents %s, which is no value of the chart", extra)
	}
}
