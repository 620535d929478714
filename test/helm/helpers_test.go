// Package helm_test checks the Helm chart with the real helm (built from its Go module by
// hack/tools) and the real API server: it lints and renders the chart for several value sets,
// applies the output with server-side dry-run, installs, upgrades and uninstalls it, and compares
// it with the kustomize install in config/.
package helm_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/test/testenv"
)

const (
	release   = "kubemail"
	namespace = "kubemail-system"
	// kubeVersion is the test API server's; helm install reads it from the server, and
	// helm template needs it given (a helm built from source defaults to v1.20).
	kubeVersion = "1.37.2"
)

var (
	root     = testenv.RepoRoot()
	chartDir = filepath.Join(root, "charts", "kubemail")

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBinary returns bin/helm, building it from hack/tools (helm v3.22.0 from the Go module
// proxy) when `make test` has not already.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		helmPath = filepath.Join(root, "bin", "helm")
		if _, err := os.Stat(helmPath); err == nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", helmPath, "helm.sh/helm/v3/cmd/helm")
		cmd.Dir = filepath.Join(root, "hack", "tools")
		if out, err := cmd.CombinedOutput(); err != nil {
			helmErr = fmt.Errorf("building helm in hack/tools (or run `make %s`): %v\n%s", helmPath, err, out)
		}
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

// run runs a program and returns its standard output and standard error; the error carries
// standard error too.
func run(t *testing.T, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

// valueSet is one way of installing the chart.
type valueSet struct {
	name   string
	values string // a values file
}

var valueSets = []valueSet{
	{"default", ""},
	{"namespaced", `
watchNamespaces: [mail-a, mail-b]
`},
	{"monitoring", `
metrics:
  serviceMonitor:
    enabled: true
    interval: 30s
    scrapeTimeout: 10s
    labels:
      release: prometheus
  readers:
    - name: prometheus-k8s
      namespace: monitoring
logLevel: debug
logFormat: console
`},
	{"custom-image", `
image:
  repository: registry.example.com/mail/kubemail
  tag: v9.9.9
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  pullPolicy: Always
imagePullSecrets:
  - name: registry-credentials
replicaCount: 2
extraArgs: [--pprof-bind-address=127.0.0.1:6060]
podAnnotations:
  example.com/team: mail
`},
	{"bring-your-own", `
crds:
  install: false
metrics:
  enabled: false
serviceAccount:
  create: false
  name: mail-operator
fullnameOverride: mailop
`},
}

// valuesFile writes a value set to a file and returns the helm flags that use it.
func (v valueSet) flags(t *testing.T) []string {
	t.Helper()
	if v.values == "" {
		return nil
	}
	f := filepath.Join(t.TempDir(), v.name+".yaml")
	if err := os.WriteFile(f, []byte(v.values), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-f", f}
}

// template renders the chart as release "kubemail" in namespace "kubemail-system".
func template(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, _, err := run(t, nil, helmBinary(t), append([]string{"template", release, chartDir,
		"--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	return out, err
}

// objects is a rendered manifest, keyed by "Kind namespace/name".
type objects map[string]*unstructured.Unstructured

func key(kind, ns, name string) string { return kind + " " + ns + "/" + name }

func (o objects) get(t *testing.T, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj, ok := o[key(kind, ns, name)]
	if !ok {
		t.Fatalf("no %s %s/%s in the output; it has %v", kind, ns, name, o.keys())
	}
	return obj
}

func (o objects) keys() []string {
	var ks []string
	for k := range o {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (o objects) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, k := range o.keys() {
		if o[k].GetKind() == kind {
			out = append(out, o[k])
		}
	}
	return out
}

// parse splits a multi-document manifest into objects.
func parse(t *testing.T, manifest string) objects {
	t.Helper()
	out := objects{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if string(j) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatalf("rendered object does not parse: %v\n%s", err, doc)
		}
		k := key(u.GetKind(), u.GetNamespace(), u.GetName())
		if _, dup := out[k]; dup {
			t.Fatalf("%s rendered twice", k)
		}
		out[k] = u
	}
	return out
}

func readObjects(t *testing.T, paths ...string) objects {
	t.Helper()
	var all strings.Builder
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all.WriteString("\n---\n")
		all.Write(b)
	}
	return parse(t, all.String())
}

func deployment(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &d, true); err != nil {
		t.Fatalf("Deployment %s: %v", u.GetName(), err)
	}
	return &d
}

// restrictedViolations evaluates a pod template the way the API server's Pod Security admission
// does in a namespace labelled pod-security.kubernetes.io/enforce=restricted.
func restrictedViolations(t *testing.T, d *appsv1.Deployment) policy.AggregateCheckResult {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	return policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec))
}

// configRules is the operator's ClusterRole rules as controller-gen generated them.
func configRules(t *testing.T) []any {
	t.Helper()
	role := readObjects(t, filepath.Join(root, "config", "rbac", "role.yaml")).get(t, "ClusterRole", "", "kubemail-manager")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if len(rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return rules
}

// configCRDs is config/crd/bases.
func configCRDs(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	return readObjects(t, files...)
}
