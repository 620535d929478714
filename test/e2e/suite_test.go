//go:build e2e

// Package e2e runs kubemail on a real Kubernetes cluster: the Helm chart installs the operator
// from the locally built image, config/samples become a running mail server pod on a
// PersistentVolume, and real clients (swaks, curl, go-smtp and go-imap) talk to it through its
// Service. `make e2e` starts a single-node cluster (hack/e2e/cluster-up.sh), runs this suite on
// the node and tears the cluster down; the build tag keeps `go test ./...` from running it.
//
// Environment: KUBECONFIG (the cluster's admin kubeconfig), KUBEMAIL_E2E_IMAGE (the image, as
// repository:tag, already present on the node), and optionally KUBECTL and HELM (default: the
// binaries `make` builds under bin/).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/testutil"
)

const (
	release         = "kubemail"
	operatorNS      = "kubemail-system"
	clusterName     = "mail" // the MailCluster in config/samples
	alicePassword   = "correct-horse-battery-staple"
	readyTimeout    = 3 * time.Minute
	commandTimeout  = 2 * time.Minute
	pollInterval    = 250 * time.Millisecond
	mailPodName     = clusterName + "-0"
	dataClaimPrefix = "data-"
)

// suite is one run against the cluster: its clients and the namespace the samples live in.
type suite struct {
	t          *testing.T
	root       string // repository root
	kubeconfig string
	kubectl    string
	helm       string
	image      string // repository:tag
	ns         string
	cs         kubernetes.Interface
	c          client.Client
	spread     []account // a mailbox on each replica, once the cluster has three
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{t: t, root: root, kubeconfig: os.Getenv("KUBECONFIG"), image: os.Getenv("KUBEMAIL_E2E_IMAGE")}
	if s.kubeconfig == "" || s.image == "" {
		t.Fatal("KUBECONFIG and KUBEMAIL_E2E_IMAGE must be set: run the suite with `make e2e`")
	}
	s.kubectl = envOr("KUBECTL", filepath.Join(root, "bin/k8s/1.37.2/kubectl"))
	s.helm = envOr("HELM", filepath.Join(root, "bin/helm"))
	for _, tool := range []string{s.kubectl, s.helm, "swaks", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (%v): run the suite with `make e2e`", tool, err)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", s.kubeconfig, err)
	}
	s.cs = kubernetes.NewForConfigOrDie(cfg)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := mailv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if s.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	s.ns = "e2e-" + randomHex(3)
	return s
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// run runs a command with a deadline and returns its combined output; a failure carries the
// output, so the test log shows what the tool said.
func (s *suite) run(stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// must runs a command and fails the test when it fails.
func (s *suite) must(name string, args ...string) string {
	s.t.Helper()
	out, err := s.run("", name, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *suite) kubectlMust(args ...string) string {
	s.t.Helper()
	return s.must(s.kubectl, args...)
}

// poll calls cond every pollInterval until it reports true or timeout passes; the last error
// cond returned explains a timeout.
func poll(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	testutil.Poll{Within: timeout, Every: pollInterval}.Until(t, what, func() (bool, string) {
		ok, err := cond()
		if err != nil {
			return ok, err.Error()
		}
		return ok, ""
	})
}

func ctx() context.Context { return context.Background() }

// dump writes what explains a failure into the test log: objects, events, and the logs of the
// operator and the mail server pods (also of their previous containers).
func (s *suite) dump() {
	s.t.Log("---- cluster state after the failure ----")
	for _, args := range [][]string{
		{"get", "nodes,pv", "-o", "wide"},
		{"get", "all,pvc,mailclusters,maildomains,mailboxes,mailaliases", "-n", s.ns, "-o", "wide"},
		{"get", "all", "-n", operatorNS, "-o", "wide"},
		{"describe", "pods", "-n", s.ns},
		{"describe", "pods", "-n", operatorNS},
		{"get", "events", "-A", "--sort-by", ".lastTimestamp"},
		{"logs", "-n", operatorNS, "-l", "app.kubernetes.io/instance=" + release, "--tail", "300", "--all-containers"},
		{"logs", "-n", s.ns, "-l", "app.kubernetes.io/instance=" + clusterName, "--tail", "300"},
		{"logs", "-n", s.ns, "-l", "app.kubernetes.io/instance=" + clusterName, "--tail", "100", "--previous"},
	} {
		out, _ := s.run("", s.kubectl, args...)
		s.t.Logf("$ kubectl %s\n%s", strings.Join(args, " "), out)
	}
}

// service returns the ClusterIP of the sample cluster's client Service.
func (s *suite) serviceIP() string {
	s.t.Helper()
	var svc corev1.Service
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: clusterName}, &svc); err != nil {
		s.t.Fatalf("client Service: %v", err)
	}
	return svc.Spec.ClusterIP
}

// secretValue reads one key of a Secret in the suite's namespace.
func (s *suite) secretValue(name, key string) string {
	s.t.Helper()
	var sec corev1.Secret
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: name}, &sec); err != nil {
		s.t.Fatalf("Secret %s: %v", name, err)
	}
	v, ok := sec.Data[key]
	if !ok {
		s.t.Fatalf("Secret %s has no key %q", name, key)
	}
	return string(v)
}
