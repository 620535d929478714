package helm_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubemail/kubemail/test/testenv"
)

func kustomizeBuild(t *testing.T, dir string) objects {
	t.Helper()
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, nil, filepath.Join(assets, "kubectl"), "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, out)
}

// essence is what an object does, without the labels and annotations that only say who
// installed it (Helm's chart and version labels, the chart's keep annotation).
func essence(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	unstructured.RemoveNestedField(c.Object, "spec", "template", "metadata", "labels")
	ann := c.GetAnnotations()
	delete(ann, "helm.sh/resource-policy")
	c.SetAnnotations(ann)
	return c.Object
}

// TestKustomizeMatchesChart: `make deploy` (config/default) installs the same objects, doing the
// same things, as the chart with default values and release name "kubemail" — plus the
// namespace, which helm's --create-namespace makes.
func TestKustomizeMatchesChart(t *testing.T) {
	kust := kustomizeBuild(t, filepath.Join(root, "config", "default"))
	out, err := template(t)
	if err != nil {
		t.Fatal(err)
	}
	chart := parse(t, out)

	ns := kust.get(t, "Namespace", "", namespace)
	if ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s labels %v: want the restricted Pod Security Standard enforced", namespace, ns.GetLabels())
	}
	delete(kust, key("Namespace", "", namespace))
	if k, c := kust.keys(), chart.keys(); !slices.Equal(k, c) {
		t.Fatalf("config/default installs\n  %v\nthe chart\n  %v", k, c)
	}
	for k, u := range kust {
		if got, want := essence(u), essence(chart[k]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s differs between config/default and the chart:\nconfig/default: %s\nchart:          %s", k, mustJSON(t, got), mustJSON(t, want))
		}
	}
}

// TestKustomizeOnAPIServer: the API server accepts config/default, and `make deploy IMG=...`
// installs an operator that runs, and hands the mail servers, that image.
func TestKustomizeOnAPIServer(t *testing.T) {
	c := startCluster(t)
	// A dry run cannot create the namespace the other objects go into.
	c.kubectlOK(t, "apply", "-f", filepath.Join(root, "config", "manager", "namespace.yaml"))

	out, stderr, err := run(t, nil, c.kubectl, "--kubeconfig", c.env.Kubeconfig, "apply", "--dry-run=server", "-k", "config/default")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr, "PodSecurity") {
		t.Errorf("config/default breaks the restricted Pod Security Standard:\n%s", stderr)
	}
	if n, want := strings.Count(out, "(server dry run)"), len(kustomizeBuild(t, "config/default")); n != want {
		t.Errorf("the API server accepted %d of %d objects:\n%s", n, want, out)
	}

	const img = "registry.example.com/mail/kubemail:v9.9.9"
	cmd := exec.Command("make", "-s", "deploy", "IMG="+img)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.env.Kubeconfig)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deploy: %v\n%s", err, out)
	} else if strings.Contains(string(out), "Warning") {
		t.Errorf("make deploy warned:\n%s", out)
	}
	image := c.kubectlOK(t, "get", "deployment", "kubemail", "-n", namespace, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	operand := c.kubectlOK(t, "get", "deployment", "kubemail", "-n", namespace, "-o", `jsonpath={.spec.template.spec.containers[0].env[?(@.name=="KUBEMAIL_IMAGE")].value}`)
	if image != img || operand != img {
		t.Errorf("make deploy IMG=%s: the operator runs %q and starts mail servers from %q; want both %q", img, image, operand, img)
	}
	c.checkGrants(t, "system:serviceaccount:"+namespace+":kubemail", clusterWideGrants)
}
