// Command manager is the kubemail operator: it reconciles MailCluster, MailDomain, Mailbox and
// MailAlias objects into running mail clusters.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/controllers"
	"github.com/kubemail/kubemail/internal/version"
)

// leaderRetryPeriod is how often a standby operator tries to take the leader lease.
var leaderRetryPeriod = time.Second

// EnvOperandImage names the image the operator runs as; mail servers default to it.
const EnvOperandImage = "KUBEMAIL_IMAGE"

func main() {
	var metricsAddr, probeAddr, pprofAddr, namespaces string
	var leaderElect, showVersion, metricsSecure bool
	var usageInterval, backlogAge time.Duration
	var qps float64
	var burst int
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the metrics endpoint (0 disables)")
	flag.BoolVar(&metricsSecure, "metrics-secure", false, "serve metrics over HTTPS to clients the API server authenticates and authorizes (get on /metrics)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "address of the Go profiler's /debug/pprof/ endpoints (empty: off; keep it on localhost)")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so only one replica reconciles")
	flag.StringVar(&namespaces, "watch-namespaces", "", "comma-separated namespaces to watch (empty: all)")
	flag.Float64Var(&qps, "kube-api-qps", 500, "sustained requests per second to the API server, per resource type")
	flag.IntVar(&burst, "kube-api-burst", 1000, "requests per resource type allowed above --kube-api-qps in a burst")
	flag.DurationVar(&usageInterval, "mailbox-usage-interval", time.Minute, "how often Mailbox status.usage and status.messages, and the handoff queues, are read from the mail servers (0: never)")
	flag.DurationVar(&backlogAge, "handoff-backlog-age", 5*time.Minute, "how long mail may wait in a replica's handoff queue before its MailCluster is Degraded (HandoffBacklog)")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println("kubemail manager", version.Version)
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	if os.Getenv("GOGC") == "" {
		// Most of the operator's heap is its cache of Mailboxes and Secrets, which lives as long
		// as the process; the default (100) lets the heap grow to twice that before collecting.
		// 50 keeps the peak during a burst of changes about a quarter lower, for a little more
		// collector CPU. GOGC in the environment still decides.
		debug.SetGCPercent(50)
	}

	image := os.Getenv(EnvOperandImage)
	if image == "" {
		log.Info("no " + EnvOperandImage + " set: MailClusters must name spec.image")
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := mailv1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// Managed fields are the bulk of a small object and the operator never reads them; with
	// thousands of Mailboxes and Secrets cached they would be a large share of its memory.
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if namespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(namespaces, ",") {
			cacheOpts.DefaultNamespaces[strings.TrimSpace(ns)] = cache.Config{}
		}
	}
	cfg := ctrl.GetConfigOrDie()
	// A burst of new Mailboxes means a status write and a Secret for each; the client-go
	// defaults (5 QPS) would make 10,000 mailboxes take half an hour, 200 QPS still most of a
	// minute. The API server's priority and fairness keeps the operator from crowding out others.
	cfg.QPS, cfg.Burst = float32(qps), burst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(metricsAddr, metricsSecure),
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "kubemail-operator.mail.kubemail.io",
		// On a clean stop (an upgrade, a drain) the lease is handed back, so the next operator
		// starts at once instead of waiting out the lease. Safe: the process exits right after
		// mgr.Start returns, and nothing runs outside the manager.
		LeaderElectionReleaseOnCancel: true,
		// A standby asks for the lease every 1-2.2 s (the client adds up to 120 % jitter)
		// instead of every 2-4.4 s, so a released lease is taken up within about two seconds.
		RetryPeriod: &leaderRetryPeriod,
		Cache:       cacheOpts,
	})
	if err != nil {
		log.Error(err, "creating the manager")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	settings := controllers.Options{OperandImage: image, UsageInterval: usageInterval, HandoffBacklogAge: backlogAge}
	if err := controllers.Setup(ctx, mgr, settings); err != nil {
		log.Error(err, "setting up controllers")
		os.Exit(1)
	}
	mgr.AddHealthzCheck("healthz", healthz.Ping)
	mgr.AddReadyzCheck("readyz", healthz.Ping)
	log.Info("starting", "version", version.Version, "operandImage", image, "namespaces", namespaces)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// metricsOptions serves metrics on addr; secure, over HTTPS (a self-signed certificate unless
// one is mounted) to callers whose token the API server accepts and who may get /metrics, as a
// Prometheus with the metrics-reader ClusterRole may.
func metricsOptions(addr string, secure bool) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: addr}
	if secure {
		opts.SecureServing = true
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return opts
}
