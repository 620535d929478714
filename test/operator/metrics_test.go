package operator_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/testenv"
)

// TestSecureMetrics runs the operator binary with --metrics-secure against the real API server:
// /metrics answers only over HTTPS, 401 without a token, 403 to a ServiceAccount without the
// metrics-reader role, and the metrics to one bound to it.
func TestSecureMetrics(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	manager, err := launch.Build(ctx, t.TempDir(), "manager")
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	op, err := launch.Start(launch.Options{Name: "operator", Ready: "starting",
		Command: []string{manager, "--metrics-bind-address", addr, "--metrics-secure", "--health-probe-bind-address", "127.0.0.1:0"},
		Env:     []string{"KUBECONFIG=" + env.Kubeconfig, "KUBEMAIL_IMAGE=kubemail:test"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { op.Stop(10 * time.Second) })

	reader := serviceAccountToken(t, env, "prometheus", true)
	stranger := serviceAccountToken(t, env, "stranger", false)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The operator's certificate is self-signed; the token is what is checked here.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body)
	}
	testutil.Poll{Within: 30 * time.Second, Every: 100 * time.Millisecond}.Until(t, "the metrics endpoint to serve the reader", func() (bool, string) {
		code, body := get(reader)
		return code == http.StatusOK && strings.Contains(body, "# HELP"), fmt.Sprintf("%d %.200s", code, body)
	})
	if code, body := get(""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d %.200s, want 401", code, body)
	}
	if code, body := get(stranger); code != http.StatusForbidden {
		t.Errorf("a ServiceAccount without the metrics-reader role: %d %.200s, want 403", code, body)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("metrics served over plain HTTP")
		}
	}
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serviceAccountToken creates a ServiceAccount, bound to a role like the chart's metrics-reader
// when reader, and returns a token for it.
func serviceAccountToken(t *testing.T, env *testenv.Env, name string, reader bool) string {
	t.Helper()
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(env.Config)
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if reader {
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name + "-metrics-reader"},
			Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-metrics-reader"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "default"}}}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}
