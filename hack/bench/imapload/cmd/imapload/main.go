// Command imapload runs the IMAP load generator of package imapload against a server: it
// optionally fills the accounts' mailboxes, runs the command mix and reports operations per
// second and latencies, and measures memory per idling connection.
//
// Against any server (the accounts must exist; -pid names the server process for -idle):
//
//	go run ./hack/bench/imapload/cmd/imapload -addr 127.0.0.1:993 -tls \
//	    -accounts 'u1@example.com:pw1,u2@example.com:pw2' -prefill 500 -duration 30s -idle 1000 -pid PID
//
// Against kubemail's mail server, started here on loopback with -users accounts:
//
//	go build -o /tmp/mailserver ./cmd/mailserver
//	go run ./hack/bench/imapload/cmd/imapload -kubemail /tmp/mailserver -users 10 -prefill 500 -idle 1000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/hack/bench/imapload"
	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
	"github.com/kubemail/kubemail/test/launch"
)

func main() {
	var cfg imapload.Config
	flag.StringVar(&cfg.Addr, "addr", "", "server address host:port (not with -kubemail)")
	flag.BoolVar(&cfg.TLS, "tls", false, "implicit TLS (IMAPS)")
	flag.BoolVar(&cfg.StartTLS, "starttls", false, "STARTTLS before logging in")
	accounts := flag.String("accounts", "", "accounts as user:password,user:password, or @FILE with one user:password a line")
	flag.StringVar(&cfg.Mailbox, "mailbox", "INBOX", "folder to select")
	flag.IntVar(&cfg.Clients, "clients", 50, "concurrent clients (for -idle: connections opened at once)")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to run the mix (0: skip it)")
	flag.IntVar(&cfg.OpsPerClient, "ops", 0, "stop each client after this many operations (0: no limit)")
	seed := flag.Uint64("seed", 1, "random seed")
	prefill := flag.Int("prefill", 0, "first fill each mailbox up to this many messages")
	idle := flag.Int("idle", 0, "then open this many IDLE connections and measure the server's memory per connection")
	flag.BoolVar(&cfg.Compress, "compress", false, "with -idle: each connection sends COMPRESS DEFLATE before IDLE")
	flag.DurationVar(&cfg.IdleSettle, "idle-settle", 3*time.Second, "wait this long with every connection idling before measuring")
	pid := flag.Int("pid", 0, "server process: its CPU time per operation, and its memory for -idle (from /proc); with -tree its descendants too")
	tree := flag.Bool("tree", false, "with -pid: add up the process and its descendants (proportional set sizes)")
	kubemail := flag.String("kubemail", "", "start this mailserver binary on loopback with -users accounts and load it")
	users := flag.Int("users", 10, "with -kubemail: how many accounts")
	keep := flag.Bool("keep", false, "with -kubemail: keep its data directory (printed) instead of removing it")
	jsonOut := flag.Bool("json", false, "print the results as JSON")
	flag.Parse()
	cfg.Seed = *seed
	duration := cfg.Duration

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	if *kubemail != "" {
		srv, err := startKubemail(*kubemail, *users)
		if err != nil {
			fatal(err)
		}
		cleanup = func() { srv.stop(*keep) }
		defer cleanup()
		cfg.Addr, cfg.TLS, cfg.StartTLS, cfg.Accounts = srv.addr, true, false, srv.accounts
		*pid, *tree = srv.proc.Pid(), false
		fmt.Fprintf(os.Stderr, "kubemail mailserver pid %d, imaps %s, data %s\n", *pid, srv.addr, srv.dir)
	} else if *accounts != "" {
		var err error
		if cfg.Accounts, err = parseAccounts(*accounts); err != nil {
			fatal(err)
		}
	}

	out := map[string]any{}
	if *prefill > 0 {
		start := time.Now()
		if err := imapload.Prefill(ctx, cfg, *prefill); err != nil {
			fatal(fmt.Errorf("prefill: %w", err))
		}
		fmt.Fprintf(os.Stderr, "prefilled %d mailboxes to %d messages in %s\n", len(cfg.Accounts), *prefill, time.Since(start).Round(time.Millisecond))
	}
	if *pid != 0 {
		cfg.ServerCPU = imapload.ProcCPU(*pid)
		if *tree {
			cfg.ServerCPU = imapload.ProcTreeCPU(*pid)
		}
	}
	if duration > 0 {
		res, err := imapload.Run(ctx, cfg)
		if err != nil {
			fatal(err)
		}
		out["run"] = res
		if !*jsonOut {
			printRun(cfg, res)
		}
	}
	if *idle > 0 {
		if *pid == 0 {
			fatal(fmt.Errorf("-idle needs -pid (or -kubemail) to measure the server's memory"))
		}
		measure := imapload.ProcRSS(*pid)
		if *tree {
			measure = imapload.ProcTreePSS(*pid)
		}
		res, err := imapload.IdleConns(ctx, cfg, *idle, measure)
		if err != nil {
			fatal(err)
		}
		out["idle"] = res
		if !*jsonOut {
			fmt.Printf("\nIDLE: %d connections idling (%d failed) opened in %s; server memory %.1f MiB before, %.1f MiB after: %.1f KiB per connection\n",
				res.Conns, res.Failed, res.Open.Round(time.Millisecond), mib(res.RSSBefore), mib(res.RSSAfter), float64(res.BytesPerConn)/1024)
			if res.FirstError != nil {
				fmt.Printf("first failure: %v\n", res.FirstError)
			}
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func printRun(cfg imapload.Config, res imapload.Result) {
	fmt.Printf("%d clients, %d accounts, %s: %d operations, %.0f ops/s, p50 %s, p99 %s, %d errors\n",
		cfg.Clients, len(cfg.Accounts), res.Elapsed.Round(time.Millisecond), res.Ops, res.OpsPerSec,
		round(res.P50), round(res.P99), res.Errors)
	if res.ServerCPU > 0 {
		fmt.Printf("server CPU %s: %s per operation\n", res.ServerCPU.Round(10*time.Millisecond), round(res.CPUPerOp))
	}
	fmt.Println()
	ops := make([]string, 0, len(res.ByOp))
	for op := range res.ByOp {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	fmt.Printf("%-14s %8s %7s %10s %10s %10s\n", "operation", "count", "errors", "p50", "p99", "max")
	for _, op := range ops {
		s := res.ByOp[op]
		fmt.Printf("%-14s %8d %7d %10s %10s %10s\n", op, s.Count, s.Errors, round(s.P50), round(s.P99), round(s.Max))
	}
}

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func parseAccounts(s string) ([]imapload.Account, error) {
	var items []string
	if file, ok := strings.CutPrefix(s, "@"); ok {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		items = strings.Split(string(data), "\n")
	} else {
		items = strings.Split(s, ",")
	}
	var out []imapload.Account
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		user, pw, ok := strings.Cut(it, ":")
		if !ok {
			return nil, fmt.Errorf("account %q: want user:password", user)
		}
		out = append(out, imapload.Account{User: user, Password: pw})
	}
	return out, nil
}

// cleanup stops a mailserver this program started; fatal runs it too.
var cleanup = func() {}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "imapload:", err)
	cleanup()
	os.Exit(1)
}

// kubemailServer is a mailserver process started for the measurement.
type kubemailServer struct {
	proc     *launch.Process
	dir      string
	addr     string
	accounts []imapload.Account
}

// startKubemail writes a settings file, a self-signed certificate and a directory with users
// accounts (user1@bench.example ... with passwords pw-1 ...) into a temporary folder and
// starts binary on it with an IMAPS listener on loopback. The connection limits are raised
// far enough for -idle.
func startKubemail(binary string, users int) (*kubemailServer, error) {
	dir, err := os.MkdirTemp("", "imapload-kubemail-")
	if err != nil {
		return nil, err
	}
	s := &kubemailServer{dir: dir}
	certFile, keyFile, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	spec := dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "bench.example"}}}
	for i := 1; i <= users; i++ {
		acct := imapload.Account{User: fmt.Sprintf("user%d@bench.example", i), Password: fmt.Sprintf("pw-%d", i)}
		hash, err := passwordhash.Hash(acct.Password)
		if err != nil {
			return nil, err
		}
		spec.Mailboxes = append(spec.Mailboxes, dirspec.MailboxSpec{Address: acct.User, PasswordHash: hash})
		s.accounts = append(s.accounts, acct)
	}
	dirPath := filepath.Join(dir, "directory.yaml")
	if err := writeYAML(dirPath, &spec); err != nil {
		return nil, err
	}
	cfg := &config.Config{
		Hostname:  "mail.bench.example",
		DataDir:   filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirPath},
		TLS:       config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: config.Listeners{IMAPS: config.Listener{Address: "127.0.0.1:0"}},
		Limits:    config.Limits{MaxConnections: 20000, MaxConnectionsPerIP: 20000},
		DNS:       config.DNS{Resolver: "127.0.0.1:1"},
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := writeYAML(cfgPath, cfg); err != nil {
		return nil, err
	}
	p, err := launch.Start(launch.Options{Name: "mailserver", Command: []string{binary, "--config", cfgPath},
		LogFile: filepath.Join(dir, "mailserver.log"), LogOnlyToFile: true, StartTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	s.proc, s.addr = p, p.Addrs["imaps"]
	return s, nil
}

func (s *kubemailServer) stop(keep bool) {
	s.proc.Stop(30 * time.Second)
	if keep {
		fmt.Fprintf(os.Stderr, "kept %s\n", s.dir)
		return
	}
	os.RemoveAll(s.dir)
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
