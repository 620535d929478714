// Package testenv starts kubemail's test control plane: a real kube-apiserver and etcd, built
// from the Go module proxy by hack/envtest, driven through controller-runtime's envtest.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
)

// Env is a running control plane with kubemail's CRDs installed.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for the running API server (admin user).
	Kubeconfig string
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string

	env *envtest.Environment
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns the folder with the control plane binaries, or an error that says how to
// build them. KUBEBUILDER_ASSETS wins when set.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s", "1.37.2")
	}
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("test control plane binary %s not found in %s: run `make envtest-assets` "+
				"(builds kube-apiserver, etcd and kubectl from the Go module proxy) or set KUBEBUILDER_ASSETS", name, dir)
		}
	}
	return dir, nil
}

// Start starts a control plane with kubemail's CRDs and stops it when the test ends. A missing
// binary fails the test; it never skips.
func Start(t testing.TB) *Env {
	t.Helper()
	dir, err := AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := mailv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the test control plane from %s: %v", dir, err)
	}
	e := &Env{Config: cfg, Scheme: scheme, AssetsDir: dir, env: env}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the test control plane: %v", err)
		}
	})
	e.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	e.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// UserConfig adds a user authenticated by a client certificate and returns a client
// configuration for it. The API server authorizes with RBAC, so the user may do only what
// Roles bound to name or groups allow.
func (e *Env) UserConfig(t testing.TB, name string, groups []string) *rest.Config {
	t.Helper()
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("adding test user %s: %v", name, err)
	}
	return user.Config()
}
