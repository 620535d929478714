package testenv_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/test/testenv"
)

// TestControlPlane starts the real kube-apiserver and etcd, checks the version the server
// reports (clients such as helm and kubectl refuse unparseable ones), writes an object and reads
// it back.
func TestControlPlane(t *testing.T) {
	env := testenv.Start(t)

	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" || v.Major != "1" || v.Minor != "37" {
		t.Fatalf("server reports version %q (major %q, minor %q), want v1.37.2", v.GitVersion, v.Major, v.Minor)
	}

	ctx := context.Background()
	want := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Data:       map[string]string{"greeting": "hello, kubemail"},
	}
	if err := env.Client.Create(ctx, want); err != nil {
		t.Fatal(err)
	}
	var got corev1.ConfigMap
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(want), &got); err != nil {
		t.Fatal(err)
	}
	if got.Data["greeting"] != "hello, kubemail" || got.UID == "" {
		t.Fatalf("read back %+v", got)
	}
}

// TestUserConfigIsAuthorizedByRBAC checks that a user without Roles is refused, so tests of
// least-privilege Roles prove something.
func TestUserConfigIsAuthorizedByRBAC(t *testing.T) {
	env := testenv.Start(t)
	cs, err := kubernetes.NewForConfig(env.UserConfig(t, "nobody", nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Secrets("default").List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("a user without Roles listed Secrets: err = %v, want Forbidden", err)
	}
}
