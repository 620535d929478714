// Package localcluster runs kubemail without a kubelet: a real kube-apiserver and etcd (from
// envtest), the real operator binary, and mail server processes configured exactly as the
// operator configures its pods — same settings (from the operator's ConfigMap), same
// arguments and environment, the directory watched through the API with the pod's own
// ServiceAccount. `make dev` and the operator's end-to-end tests use it.
package localcluster

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/names"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/test/launch"
)

// Options configure a local cluster.
type Options struct {
	// RepoRoot holds config/crd/bases.
	RepoRoot string
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string
	// ManagerBinary and MailserverBinary are the built programs.
	ManagerBinary, MailserverBinary string
	// WorkDir receives kubeconfigs, logs and mail data.
	WorkDir string
	// Log receives the operator's and mail servers' output (nil: files in WorkDir only).
	Log io.Writer
	// AnyPorts binds mail servers to free loopback ports instead of the pods' own ports (for
	// tests running side by side).
	AnyPorts bool
}

// Cluster is a running local control plane with the operator.
type Cluster struct {
	opts       Options
	env        *envtest.Environment
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string

	mu    sync.Mutex
	procs []*Process
}

// Start brings up the control plane with kubemail's CRDs and starts the operator.
func Start(opts Options) (*Cluster, error) {
	scheme := runtime.NewScheme()
	clientgoscheme.AddToScheme(scheme)
	mailv1alpha1.AddToScheme(scheme)
	env := &envtest.Environment{
		BinaryAssetsDirectory: opts.AssetsDir,
		CRDDirectoryPaths:     []string{filepath.Join(opts.RepoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	c := &Cluster{opts: opts, env: env, Config: cfg}
	fail := func(err error) (*Cluster, error) { c.Stop(); return nil, err }
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	user, err := env.AddUser(envtest.User{Name: "kubemail-dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fail(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fail(err)
	}
	c.Kubeconfig = filepath.Join(opts.WorkDir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	mgr, err := c.startProcess("operator", opts.ManagerBinary,
		// Mailbox usage every 2 s, so `kubectl get mailboxes` shows delivered mail at once; mail
		// held for another replica for 3 s is a backlog worth a condition.
		[]string{"--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:0", "--mailbox-usage-interval", "2s",
			"--handoff-backlog-age", "3s"},
		[]string{"KUBECONFIG=" + c.Kubeconfig, "KUBEMAIL_IMAGE=kubemail:dev"}, "starting")
	if err != nil {
		return fail(err)
	}
	_ = mgr
	return c, nil
}

// Stop ends every process and the control plane.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(30 * time.Second)
	}
	if c.env != nil {
		c.env.Stop()
	}
}

// Process is a program the cluster started: the operator or a mail server.
type Process = launch.Process

// startProcess runs a program with env added to its environment, its log in WorkDir and
// copied to Options.Log, and returns once it logged a line containing ready.
func (c *Cluster) startProcess(name, bin string, args, env []string, ready string) (*Process, error) {
	p, err := launch.Start(launch.Options{
		Name:    name,
		Command: append([]string{bin}, args...),
		Env:     env,
		Ready:   ready,
		LogFile: filepath.Join(c.opts.WorkDir, name+".log"),
		Log:     c.opts.Log,
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// RunMailserver starts the mail server of replica ordinal of cluster in namespace, as its pod
// would run: the operator's settings (paths and ports mapped to this machine), the pod's
// arguments and environment, and the pod's ServiceAccount for the API. It waits until the
// server is ready (its directory loaded).
func (c *Cluster) RunMailserver(ctx context.Context, namespace, cluster string, ordinal int) (*Process, error) {
	return c.runMailserver(ctx, namespace, cluster, ordinal, nil)
}

// Replicas are the local processes of a cluster's replicas.
type Replicas struct {
	c               *Cluster
	namespace, name string
	peers           []string
	Procs           []*Process
}

// RunReplicas starts replicas 0 to n-1 of cluster as RunMailserver does, reaching each other
// on loopback as the pods do under the headless Service: each one's internal listener on a
// loopback address of its own (127.A.B.i+1), and every replica's settings naming them all.
// The addresses are chosen before any replica starts; other listeners take ports of
// 127.0.0.1, so none of them can take a replica's internal port meanwhile.
func (c *Cluster) RunReplicas(ctx context.Context, namespace, cluster string, n int) (*Replicas, error) {
	r := &Replicas{c: c, namespace: namespace, name: cluster, peers: make([]string, n), Procs: make([]*Process, n)}
	a, b := 1+rand.IntN(254), rand.IntN(256)
	for i := range r.peers {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.%d.%d.%d:0", a, b, i+1))
		if err != nil {
			return nil, err
		}
		r.peers[i] = ln.Addr().String()
		ln.Close()
	}
	for i := range n {
		if err := r.Start(ctx, i); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Start starts replica i, again after Stop: on its data and its internal address, as a
// restarted pod keeps its volume and its name.
func (r *Replicas) Start(ctx context.Context, i int) error {
	p, err := r.c.runMailserver(ctx, r.namespace, r.name, i, r.peers)
	if err != nil {
		return fmt.Errorf("replica %d: %w", i, err)
	}
	r.Procs[i] = p
	return nil
}

// Stop ends replica i as the kubelet ends a pod (SIGTERM) and waits until it has exited.
func (r *Replicas) Stop(ctx context.Context, i int) error {
	p := r.Procs[i]
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.Exited():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cluster) runMailserver(ctx context.Context, namespace, cluster string, ordinal int, peers []string) (*Process, error) {
	var cm corev1.ConfigMap
	if err := waitGet(ctx, c.Client, types.NamespacedName{Namespace: namespace, Name: names.ConfigMap(cluster)}, &cm); err != nil {
		return nil, fmt.Errorf("waiting for the operator's ConfigMap: %w", err)
	}
	var cfg config.Config
	if err := yaml.UnmarshalStrict([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		return nil, fmt.Errorf("the operator's settings do not parse: %w", err)
	}
	var mc mailv1alpha1.MailCluster
	if err := c.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: cluster}, &mc); err != nil {
		return nil, err
	}
	tlsName := names.SelfSignedTLS(cluster)
	if mc.Spec.TLS != nil && mc.Spec.TLS.SecretName != "" {
		tlsName = mc.Spec.TLS.SecretName
	}
	var tlsSecret corev1.Secret
	if err := waitGet(ctx, c.Client, types.NamespacedName{Namespace: namespace, Name: tlsName}, &tlsSecret); err != nil {
		return nil, fmt.Errorf("waiting for the TLS Secret: %w", err)
	}
	pod := fmt.Sprintf("%s-%d", cluster, ordinal)
	dir := filepath.Join(c.opts.WorkDir, namespace, pod)
	// The pod's volumes, as local folders.
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, err
	}
	for k, v := range tlsSecret.Data {
		if err := os.WriteFile(filepath.Join(tlsDir, k), v, 0o600); err != nil {
			return nil, err
		}
	}
	if err := c.clusterVolume(ctx, namespace, cluster, dir, &cfg); err != nil {
		return nil, err
	}
	if peers != nil {
		cfg.Cluster.PeerAddress, cfg.Cluster.Peers, cfg.Cluster.Listen = "", peers, peers[ordinal]
	}
	var admin corev1.Secret
	if err := waitGet(ctx, c.Client, types.NamespacedName{Namespace: namespace, Name: names.AdminSecret(cluster)}, &admin); err != nil {
		return nil, fmt.Errorf("waiting for the admin Secret: %w", err)
	}
	adminDir := filepath.Join(dir, "admin")
	if err := os.MkdirAll(adminDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(adminDir, names.AdminTokenKey), admin.Data[names.AdminTokenKey], 0o600); err != nil {
		return nil, err
	}
	cfg.Admin.TokenFile = filepath.Join(adminDir, names.AdminTokenKey)
	// No Service sends clients to a local process: nothing to drain at its end.
	cfg.Limits.DrainDelay.Duration = 0
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.TLS = config.TLS{CertFile: filepath.Join(tlsDir, "tls.crt"), KeyFile: filepath.Join(tlsDir, "tls.key")}
	for _, l := range []*config.Listener{&cfg.Listeners.SMTP, &cfg.Listeners.Submission, &cfg.Listeners.Submissions,
		&cfg.Listeners.IMAP, &cfg.Listeners.IMAPS, &cfg.Listeners.POP3, &cfg.Listeners.POP3S, &cfg.Listeners.HTTP, &cfg.Listeners.Autoconfig} {
		if l.Address == "" {
			continue
		}
		_, port, _ := strings.Cut(l.Address, ":")
		if c.opts.AnyPorts {
			port = "0"
		}
		l.Address = "127.0.0.1:" + port
	}
	data, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		return nil, err
	}
	kubeconfig, err := c.serviceAccountKubeconfig(ctx, namespace, names.ServiceAccount(cluster), dir)
	if err != nil {
		return nil, err
	}
	p, err := c.startProcess(namespace+"-"+pod, c.opts.MailserverBinary, []string{"--config", cfgFile},
		[]string{"POD_NAME=" + pod, "POD_NAMESPACE=" + namespace, "KUBECONFIG=" + kubeconfig}, "mailserver started")
	if err != nil {
		return nil, err
	}
	// Ready means the directory arrived through the API.
	err = startup.Wait(ctx, "mail server "+pod+" ready", func() (bool, string) {
		resp, err := http.Get("http://" + p.Addrs["http"] + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.Logs())
	}
	return p, c.publishEndpoint(ctx, namespace, cluster, pod, p.Addrs["http"])
}

// clusterVolume writes the replicas' certificate where the pod mounts it, and lets the internal
// listener take any loopback port. The peers keep the addresses the operator gave them (the
// pods' names), which do not resolve here: a replica started alone serves the mailboxes of its
// shard (RunReplicas gives them loopback addresses).
func (c *Cluster) clusterVolume(ctx context.Context, namespace, cluster, dir string, cfg *config.Config) error {
	if !cfg.Cluster.Enabled() {
		return nil
	}
	var sec corev1.Secret
	if err := waitGet(ctx, c.Client, types.NamespacedName{Namespace: namespace, Name: names.ClusterTLS(cluster)}, &sec); err != nil {
		return fmt.Errorf("waiting for the cluster's certificate: %w", err)
	}
	clusterDir := filepath.Join(dir, "cluster")
	if err := os.MkdirAll(clusterDir, 0o700); err != nil {
		return err
	}
	for k, v := range sec.Data {
		if err := os.WriteFile(filepath.Join(clusterDir, k), v, 0o600); err != nil {
			return err
		}
	}
	cfg.Cluster.CertFile = filepath.Join(clusterDir, corev1.TLSCertKey)
	cfg.Cluster.KeyFile = filepath.Join(clusterDir, corev1.TLSPrivateKeyKey)
	cfg.Cluster.CAFile = filepath.Join(clusterDir, "ca.crt")
	cfg.Cluster.Listen = "127.0.0.1:0"
	return nil
}

// publishEndpoint does what the EndpointSlice controller does for a ready pod of the headless
// Service: it lets the operator find the replica (for purges and usage).
func (c *Cluster) publishEndpoint(ctx context.Context, namespace, cluster, pod, httpAddr string) error {
	_, portStr, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portStr)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: pod + "-local", Namespace: namespace,
			Labels:      map[string]string{discoveryv1.LabelServiceName: names.HeadlessService(cluster)},
			Annotations: map[string]string{names.AnnotationLocalAddress: httpAddr}},
		// Endpoint addresses may not be loopback IPs, so the slice names a placeholder and the
		// annotation carries the real loopback address.
		AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{pod + ".local.invalid"}, Hostname: ptr.To(pod),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To(names.PortHTTP.Name), Port: ptr.To(int32(port))}},
	}
	err = c.Client.Create(ctx, slice)
	if apierrors.IsAlreadyExists(err) {
		// A replica started again: its address changed.
		var cur discoveryv1.EndpointSlice
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(slice), &cur); err != nil {
			return err
		}
		slice.ResourceVersion = cur.ResourceVersion
		return c.Client.Update(ctx, slice)
	}
	return err
}

// serviceAccountKubeconfig writes a kubeconfig with a token of the ServiceAccount, so the mail
// server has exactly the rights its pod would have.
func (c *Cluster) serviceAccountKubeconfig(ctx context.Context, namespace, sa, dir string) (string, error) {
	var acct corev1.ServiceAccount
	if err := waitGet(ctx, c.Client, types.NamespacedName{Namespace: namespace, Name: sa}, &acct); err != nil {
		return "", fmt.Errorf("waiting for ServiceAccount %s: %w", sa, err)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 3600))}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for ServiceAccount %s: %w", sa, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["pod"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: sa, Namespace: namespace}
	kc.CurrentContext = "pod"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}

// waitGet reads key into obj, waiting for it to exist.
func waitGet(ctx context.Context, c client.Client, key types.NamespacedName, obj client.Object) error {
	return startup.Wait(ctx, key.String(), func() (bool, string) {
		err := c.Get(ctx, key, obj)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// startup bounds the wait for what a starting cluster creates.
var startup = testutil.Poll{Within: time.Minute, Every: 50 * time.Millisecond}
