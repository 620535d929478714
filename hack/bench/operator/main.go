// Command operator measures how the kubemail operator copes with a burst of Mailboxes: it starts
// the test control plane (test/testenv's kube-apiserver and etcd), runs the manager binary as a
// separate process against it, creates one MailCluster, one MailDomain and -mailboxes Mailboxes
// with generated passwords, and reports how long until every Mailbox is Ready and in the
// directory, the operator's peak memory and CPU, and how many writes it sent to the API server.
//
//	go run ./hack/bench/operator -mailboxes 10000
//
// It is a measurement, not a test: it fails only when the operator does not finish in -timeout.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirsecret"
	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/testenv"
)

const (
	namespace = "bench"
	cluster   = "mail"
	domain    = "example.com"
)

type options struct {
	mailboxes     int
	createWorkers int
	timeout       time.Duration
	manager       string
	managerArgs   string
	logFile       string
	cpuProfile    string
	cpuSeconds    int
	heapProfile   string
}

func main() {
	var o options
	flag.IntVar(&o.mailboxes, "mailboxes", 10000, "number of Mailboxes to create")
	flag.IntVar(&o.createWorkers, "create-workers", 32, "goroutines creating Mailboxes")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "give up when the operator has not caught up after this long")
	flag.StringVar(&o.manager, "manager", "", "manager binary to run (default: build ./cmd/manager)")
	flag.StringVar(&o.managerArgs, "manager-args", "", "further space-separated flags for the manager, such as --kube-api-qps=200")
	flag.StringVar(&o.logFile, "manager-log", "", "write the manager's log here (default: a temporary file, removed)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the operator, taken from the first Mailbox on, to this file")
	flag.IntVar(&o.cpuSeconds, "cpuprofile-seconds", 60, "length of the CPU profile")
	flag.StringVar(&o.heapProfile, "heapprofile", "", "write the operator's heap profile (in use and allocated), taken when it has caught up, to this file")
	flag.Parse()
	crlog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-operator:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "kubemail-bench-operator-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	env, cfg, kubeconfig, scheme, err := startControlPlane(tmp)
	if err != nil {
		return err
	}
	defer env.Stop()

	bin := o.manager
	if bin == "" {
		if bin, err = launch.Build(ctx, tmp, "manager"); err != nil {
			return err
		}
	}
	logPath := o.logFile
	if logPath == "" {
		logPath = filepath.Join(tmp, "manager.log")
	}
	op, err := startManager(ctx, bin, strings.Fields(o.managerArgs), kubeconfig, logPath, o.cpuProfile != "" || o.heapProfile != "")
	if err != nil {
		return err
	}
	defer op.stop()

	// The benchmark's own client must not be what limits creation.
	fast := rest.CopyConfig(cfg)
	fast.QPS, fast.Burst = 5000, 10000
	c, err := client.New(fast, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := setUp(ctx, c); err != nil {
		return err
	}
	tracker, err := trackMailboxes(ctx, fast, scheme)
	if err != nil {
		return err
	}
	writesBefore, err := op.writes()
	if err != nil {
		return err
	}
	apiBefore, err := apiserverWrites(ctx, cfg)
	if err != nil {
		return err
	}
	cpuBefore := op.cpuTime()

	var profileDone chan error
	if o.cpuProfile != "" {
		profileDone = make(chan error, 1)
		go func() {
			profileDone <- op.fetchProfile(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", o.cpuSeconds), o.cpuProfile)
		}()
	}

	start := time.Now()
	if err := createMailboxes(ctx, c, o.mailboxes, o.createWorkers); err != nil {
		return err
	}
	created := time.Since(start)
	fmt.Fprintf(os.Stderr, "created %d Mailboxes in %s; waiting for the operator\n", o.mailboxes, created.Round(time.Millisecond))

	var ready, dirCount int
	var gaveUp error
	deadline := time.After(o.timeout)
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
wait:
	for {
		if ready = tracker.ready(); ready == o.mailboxes {
			if dirCount, err = directorySize(ctx, c); err != nil {
				return err
			}
			if dirCount == o.mailboxes {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			gaveUp = fmt.Errorf("gave up after %s: %d of %d Mailboxes Ready", o.timeout, ready, o.mailboxes)
			break wait
		case <-op.exited:
			return fmt.Errorf("the manager exited; see its log %s", logPath)
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "  %5.0fs: %d Ready, operator RSS %d MiB\n", time.Since(start).Seconds(), ready, op.memory("VmRSS")>>20)
		case <-time.After(100 * time.Millisecond):
		}
	}
	total := time.Since(start)
	cpu := op.cpuTime() - cpuBefore
	peak := op.memory("VmHWM")
	writesAfter, err := op.writes()
	if err != nil {
		return err
	}
	apiAfter, err := apiserverWrites(ctx, cfg)
	if err != nil {
		return err
	}
	if o.heapProfile != "" {
		if err := op.fetchProfile(ctx, "/debug/pprof/heap", o.heapProfile); err != nil {
			return err
		}
	}
	if profileDone != nil {
		if err := <-profileDone; err != nil {
			return err
		}
	}
	reached := "all Ready after:"
	if gaveUp != nil {
		reached = fmt.Sprintf("only %d Ready after:", ready)
	}

	fmt.Printf("mailboxes:            %d (generated passwords, one MailCluster, one MailDomain)\n", o.mailboxes)
	fmt.Printf("machine:              %s\n", machine())
	fmt.Printf("created in:           %s (%d goroutines, %.0f creates/s)\n", created.Round(time.Millisecond), o.createWorkers, float64(o.mailboxes)/created.Seconds())
	fmt.Printf("%-22s%s from the first create (%s after the last)\n", reached, total.Round(time.Millisecond), (total - created).Round(time.Millisecond))
	fmt.Printf("operator peak RSS:    %d MiB (VmHWM)\n", peak>>20)
	fmt.Printf("operator CPU:         %.1f s user+system during the run\n", cpu.Seconds())
	fmt.Printf("operator API writes:  %s (rest_client_requests_total, method POST|PUT|PATCH|DELETE)\n", writesAfter.minus(writesBefore))
	fmt.Printf("API server writes:    %s (apiserver_request_total, all clients; the benchmark made %d creates)\n",
		apiAfter.minus(apiBefore), o.mailboxes)
	return gaveUp
}

func startControlPlane(tmp string) (*envtest.Environment, *rest.Config, string, *kruntime.Scheme, error) {
	dir, err := testenv.AssetsDir()
	if err != nil {
		return nil, nil, "", nil, err
	}
	scheme := kruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, nil, "", nil, err
	}
	if err := mailv1alpha1.AddToScheme(scheme); err != nil {
		return nil, nil, "", nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("starting the test control plane from %s: %w", dir, err)
	}
	user, err := env.AddUser(envtest.User{Name: "bench-operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		env.Stop()
		return nil, nil, "", nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		env.Stop()
		return nil, nil, "", nil, err
	}
	path := filepath.Join(tmp, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		env.Stop()
		return nil, nil, "", nil, err
	}
	return env, cfg, path, scheme, nil
}

// operator is the manager process under measurement.
type operator struct {
	cmd     *exec.Cmd
	metrics string // base URL of the metrics endpoint
	pprof   string // base URL of the pprof endpoints, or ""
	exited  chan struct{}
}

func startManager(ctx context.Context, bin string, extraArgs []string, kubeconfig, logPath string, pprof bool) (*operator, error) {
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0"}
	op := &operator{metrics: "http://" + metricsAddr, exited: make(chan struct{})}
	if pprof {
		pprofAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		args = append(args, "--pprof-bind-address="+pprofAddr)
		op.pprof = "http://" + pprofAddr
		fmt.Fprintf(os.Stderr, "operator profiles at %s/debug/pprof/\n", op.pprof)
	}
	args = append(args, extraArgs...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	op.cmd = exec.Command(bin, args...)
	op.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "KUBEMAIL_IMAGE=kubemail:bench")
	op.cmd.Stdout, op.cmd.Stderr = logf, logf
	if err := op.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		op.cmd.Wait()
		logf.Close()
		close(op.exited)
	}()
	for {
		if _, err := op.writes(); err == nil {
			return op, nil
		}
		select {
		case <-op.exited:
			return nil, fmt.Errorf("the manager exited at start; see %s", logPath)
		case <-ctx.Done():
			op.stop()
			return nil, fmt.Errorf("the manager's metrics endpoint never answered: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (op *operator) stop() {
	select {
	case <-op.exited:
		return
	default:
	}
	op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.exited:
	case <-time.After(10 * time.Second):
		op.cmd.Process.Kill()
		<-op.exited
	}
}

// memory reads a size field (VmRSS, VmHWM) of /proc/<pid>/status in bytes.
func (op *operator) memory(field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", op.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the process's user plus system time so far, from /proc/<pid>/stat.
func (op *operator) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", op.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks
}

func (op *operator) fetchProfile(ctx context.Context, path, file string) error {
	if op.pprof == "" {
		return errors.New("the manager runs without pprof")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, op.pprof+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// counts are write requests by a label (method or verb and resource).
type counts map[string]float64

func (c counts) minus(before counts) string {
	var keys []string
	var total float64
	for k, v := range c {
		if d := v - before[k]; d > 0 {
			keys = append(keys, k)
			total += d
		}
	}
	sort.Slice(keys, func(i, j int) bool { return c[keys[i]]-before[keys[i]] > c[keys[j]]-before[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.0f", k, c[k]-before[k])
	}
	return fmt.Sprintf("%.0f [%s]", total, strings.Join(parts, ", "))
}

var sample = regexp.MustCompile(`^(\w+)\{([^}]*)\} (\S+)$`)

// scrape sums the samples of metric in the Prometheus text format from r by the given labels,
// keeping those for which keep says yes.
func scrape(r io.Reader, metric string, by []string, keep func(labels map[string]string) bool) (counts, error) {
	out := counts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != metric {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(m[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		if !keep(labels) {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, err
		}
		var key []string
		for _, l := range by {
			if labels[l] != "" {
				key = append(key, labels[l])
			}
		}
		out[strings.Join(key, " ")] += v
	}
	return out, sc.Err()
}

func isWrite(method string) bool {
	switch strings.ToUpper(method) {
	case "POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY", "DELETECOLLECTION":
		return true
	}
	return false
}

// writes is the operator's own count of mutating requests it sent.
func (op *operator) writes() (counts, error) {
	resp, err := http.Get(op.metrics + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("operator metrics: %s", resp.Status)
	}
	return scrape(resp.Body, "rest_client_requests_total", []string{"method"}, func(l map[string]string) bool { return isWrite(l["method"]) })
}

// apiserverWrites is the API server's count of mutating requests by verb and resource, from
// every client: it breaks the operator's writes down by what they wrote.
func apiserverWrites(ctx context.Context, cfg *rest.Config) (counts, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("API server metrics: %s", resp.Status)
	}
	return scrape(resp.Body, "apiserver_request_total", []string{"verb", "resource", "subresource"}, func(l map[string]string) bool {
		return isWrite(l["verb"]) && l["resource"] != "leases"
	})
}

func setUp(ctx context.Context, c client.Client) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		&mailv1alpha1.MailCluster{ObjectMeta: metav1.ObjectMeta{Name: cluster, Namespace: namespace},
			Spec: mailv1alpha1.MailClusterSpec{Hostname: "mail." + domain}},
		&mailv1alpha1.MailDomain{ObjectMeta: metav1.ObjectMeta{Name: "example-com", Namespace: namespace},
			Spec: mailv1alpha1.MailDomainSpec{Domain: domain, ClusterRef: mailv1alpha1.LocalObjectReference{Name: cluster}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	// Start from a settled cluster: the domain served and an (empty) directory written.
	for {
		var md mailv1alpha1.MailDomain
		var dir corev1.Secret
		errD := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "example-com"}, &md)
		errS := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: dirsecret.SecretName(cluster, 0)}, &dir)
		if errD == nil && errS == nil && meta.IsStatusConditionTrue(md.Status.Conditions, mailv1alpha1.ConditionReady) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator never set up the cluster and domain: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func createMailboxes(ctx context.Context, c client.Client, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				mb := &mailv1alpha1.Mailbox{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("user%05d", i), Namespace: namespace},
					Spec:       mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(fmt.Sprintf("user%05d@%s", i, domain))},
				}
				if err := c.Create(ctx, mb); err != nil {
					errs <- fmt.Errorf("creating Mailbox %s: %w", mb.Name, err)
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// tracker counts Ready Mailboxes from a watch, so waiting costs the API server nothing per poll.
type tracker struct {
	mu    sync.Mutex
	state map[string]bool
	n     int
}

func trackMailboxes(ctx context.Context, cfg *rest.Config, scheme *kruntime.Scheme) (*tracker, error) {
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{namespace: {}}})
	if err != nil {
		return nil, err
	}
	inf, err := ca.GetInformer(ctx, &mailv1alpha1.Mailbox{})
	if err != nil {
		return nil, err
	}
	t := &tracker{state: map[string]bool{}}
	set := func(obj any) {
		mb, ok := obj.(*mailv1alpha1.Mailbox)
		if !ok {
			return
		}
		c := meta.FindStatusCondition(mb.Status.Conditions, mailv1alpha1.ConditionReady)
		ready := c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == mb.Generation &&
			mb.Status.ObservedGeneration == mb.Generation
		t.mu.Lock()
		defer t.mu.Unlock()
		if was := t.state[mb.Name]; was != ready {
			if ready {
				t.n++
			} else {
				t.n--
			}
		}
		t.state[mb.Name] = ready
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
	}); err != nil {
		return nil, err
	}
	go ca.Start(ctx)
	if !ca.WaitForCacheSync(ctx) {
		return nil, errors.New("the benchmark's Mailbox watch never synced")
	}
	return t, nil
}

func (t *tracker) ready() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// directorySize is the number of mailboxes in the cluster's directory Secrets, read as a mail
// server reads them; 0 while the parts disagree.
func directorySize(ctx context.Context, c client.Client) (int, error) {
	var first corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: dirsecret.SecretName(cluster, 0)}, &first); err != nil {
		return 0, err
	}
	n, err := dirsecret.PartCount(first.Data)
	if err != nil {
		return 0, nil
	}
	parts := []map[string][]byte{first.Data}
	for i := 1; i < n; i++ {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: dirsecret.SecretName(cluster, i)}, &s); err != nil {
			return 0, client.IgnoreNotFound(err)
		}
		parts = append(parts, s.Data)
	}
	spec, err := dirsecret.Assemble(parts)
	if err != nil {
		return 0, nil
	}
	return len(spec.Mailboxes), nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// machine describes the host in one line: CPUs, memory, kernel.
func machine() string {
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs, %s, Linux %s, %s", runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.Version())
}
