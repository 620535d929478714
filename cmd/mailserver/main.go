// Command mailserver is kubemail's bundled mail server: SMTP, submission, IMAP and POP3 on a
// local data directory. In a MailCluster pod the operator configures it; standalone it runs
// with --config FILE, or with --dev on an embedded default for trying it out.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/version"
	"github.com/kubemail/kubemail/mailserver/kubedir"
	"github.com/kubemail/kubemail/mailserver/server"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "queue" {
		if err := runQueue(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "mailserver queue:", err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", "", "settings file (YAML or JSON)")
	dev := flag.Bool("dev", false, "run on an embedded default: self-signed certificate, a test domain and two accounts, loopback ports")
	devDir := flag.String("dev-dir", "", "data directory for --dev (default: a folder in the user cache directory)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	pprofAddr := flag.String("pprof", "", "serve Go's profiles (/debug/pprof/) on this address, such as 127.0.0.1:6060 (unauthenticated: loopback only)")
	flag.Parse()

	if *showVersion {
		fmt.Println("kubemail mailserver", version.Version)
		return
	}
	if err := run(*configPath, *dev, *devDir, *pprofAddr); err != nil {
		fmt.Fprintln(os.Stderr, "mailserver:", err)
		os.Exit(1)
	}
}

func run(configPath string, dev bool, devDir, pprofAddr string) error {
	var cfg *config.Config
	var tryIt string
	switch {
	case dev && configPath != "":
		return fmt.Errorf("use --config or --dev, not both")
	case dev:
		var err error
		if cfg, tryIt, err = devConfig(devDir); err != nil {
			return err
		}
	case configPath != "":
		var err error
		if cfg, err = config.Load(configPath); err != nil {
			return err
		}
	default:
		return fmt.Errorf("no settings: pass --config FILE, or --dev to try it out")
	}

	var handler slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if cfg.LogFormat == "json" {
		handler = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(handler)
	if pprofAddr != "" {
		if err := startPprof(pprofAddr, log); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	server.DirectorySourceFactory = kubedir.New
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("mailserver started", "version", version.Version, "hostname", cfg.Hostname, "dataDir", cfg.DataDir)
	if tryIt != "" {
		fmt.Print(tryIt)
	}
	<-ctx.Done()
	log.Info("shutting down: finishing transactions in flight", "timeout", cfg.Limits.ShutdownTimeout.Duration)
	srv.Shutdown()
	srv.Wait()
	log.Info("stopped")
	return nil
}
