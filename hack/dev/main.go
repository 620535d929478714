// Command dev runs kubemail on this machine without a Kubernetes node: a local control plane
// (kube-apiserver and etcd), the CRDs, the operator, config/samples, and the sample cluster's
// mail server as a local process configured exactly as its pod would be. `make dev` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubemail/kubemail/test/localcluster"
)

func main() {
	root := flag.String("root", ".", "repository root")
	bin := flag.String("bin", "bin", "folder with manager and mailserver")
	assets := flag.String("assets", "bin/k8s/1.37.2", "folder with kube-apiserver, etcd and kubectl")
	work := flag.String("work", "bin/dev", "folder for kubeconfig, logs and mail data")
	verbose := flag.Bool("v", false, "print the operator's and the mail server's logs")
	flag.Parse()
	restore := takeTerminal()
	err := run(*root, *bin, *assets, *work, *verbose)
	restore()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run(root, bin, assets, work string, verbose bool) error {
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	work = abs(work)
	os.RemoveAll(work) // a fresh control plane each time: its state lives in memory
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	opts := localcluster.Options{RepoRoot: abs(root), AssetsDir: abs(assets), ManagerBinary: abs(filepath.Join(bin, "manager")),
		MailserverBinary: abs(filepath.Join(bin, "mailserver")), WorkDir: work}
	if verbose {
		opts.Log = os.Stderr
	}
	fmt.Println("starting the control plane and the operator ...")
	lc, err := localcluster.Start(opts)
	if err != nil {
		return err
	}
	defer lc.Stop()

	kubectl := filepath.Join(opts.AssetsDir, "kubectl")
	apply := exec.Command(kubectl, "--kubeconfig", lc.Kubeconfig, "apply", "-n", "default", "-k", filepath.Join(opts.RepoRoot, "config", "samples"))
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("applying config/samples: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("starting the mail server of MailCluster default/mail (replica 0) ...")
	ms, err := lc.RunMailserver(ctx, "default", "mail", 0)
	if err != nil {
		return err
	}
	var bob corev1.Secret
	deadline := time.Now().Add(30 * time.Second)
	for lc.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "bob-credentials"}, &bob) != nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf(`
kubemail is running locally: a control plane, the operator, and the mail server of the sample
MailCluster as a process (there is no kubelet here, so no pods; the process runs with the
settings, arguments, environment and ServiceAccount its pod would have, and the MailCluster
says so: Ready, reason LocalProcesses).

  export KUBECONFIG=%s
  %s get mail -A

Send a message to alice and read it back (her password is in Secret alice-password):

%s
bob's generated password: %s
Logs and mail data: %s. Ctrl-C stops everything.
`, lc.Kubeconfig, kubectl, tryIt(ms.Addrs["smtp"], ms.Addrs["imaps"]), string(bob.Data["password"]), work)
	<-ctx.Done()
	fmt.Println("\nstopping ...")
	return nil
}

// tryIt returns the commands that send alice a message and read it back, with the mail
// clients this machine has, or what to install.
func tryIt(smtpAddr, imapsAddr string) string {
	const alice = "alice@example.com:correct-horse-battery-staple"
	_, errSwaks := exec.LookPath("swaks")
	_, errCurl := exec.LookPath("curl")
	read := fmt.Sprintf("  curl -k --url 'imaps://%s/INBOX;UID=1' --user '%s'\n", imapsAddr, alice)
	send := fmt.Sprintf("  swaks --server %s --from someone@example.net --to alice@example.com\n", smtpAddr)
	switch {
	case errSwaks == nil && errCurl == nil:
		return send + read
	case errCurl == nil:
		return fmt.Sprintf("  printf 'Subject: hello\\r\\n\\r\\nhello alice\\r\\n' | curl --url 'smtp://%s' --mail-from someone@example.net --mail-rcpt alice@example.com -T -\n",
			smtpAddr) + read + "  (swaks is not installed; `apt-get install swaks` gives a friendlier sender)\n"
	case errSwaks == nil:
		return send + "  curl is not installed, to read the message: `apt-get install curl` (Debian/Ubuntu), then\n" + read
	default:
		return "  curl is not installed, and neither is swaks: `apt-get install curl swaks` (Debian/Ubuntu), then send with\n" + send + read
	}
}
