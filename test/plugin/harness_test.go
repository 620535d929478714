// Package plugin_test runs the kubectl-mail binary as a user would, with a kubeconfig, against
// the real API server.
package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/testenv"
)

// plugin is the built binary and the control plane it talks to.
type plugin struct {
	bin string
	env *testenv.Env
}

// result is what one run of the plugin printed and how it exited.
type result struct {
	stdout, stderr string
	code           int
}

func startPlugin(t *testing.T) *plugin {
	t.Helper()
	env := testenv.Start(t)
	bin, err := launch.Build(context.Background(), t.TempDir(), "kubectl-mail")
	if err != nil {
		t.Fatal(err)
	}
	return &plugin{bin: bin, env: env}
}

// run runs kubectl-mail with the admin kubeconfig and stdin.
func (p *plugin) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return p.runWith(t, p.env.Kubeconfig, stdin, args...)
}

func (p *plugin) runWith(t *testing.T, kubeconfig, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewBufferString(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running kubectl-mail %v: %v", args, err)
	}
	t.Logf("kubectl mail %v -> exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	return r
}

// kubeconfigInNamespace writes a copy of the admin kubeconfig whose context names ns.
func (p *plugin) kubeconfigInNamespace(t *testing.T, ns string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(p.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = ns
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

func createNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// setStatus writes obj's status as the operator would, through the status subresource.
func setStatus(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Status().Update(context.Background(), obj); err != nil {
		t.Fatalf("writing the status of %T %s: %v", obj, obj.GetName(), err)
	}
}

func condition(typ string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
}
