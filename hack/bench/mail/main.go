// Command mail compares kubemail's mail server with Postfix + Dovecot on this machine, in one
// run, each doing the same job: one domain, the same mailboxes and password hashes, messages
// arriving over SMTP and stored durably in Maildir, read over IMAPS and POP3S, all on loopback.
//
//	go run ./hack/bench/mail                       # everything (needs root for Postfix + Dovecot)
//	go run ./hack/bench/mail -messages 1000 -idle 200 -imap-duration 10s   # a quick run
//	go run ./hack/bench/mail -systems kubemail     # kubemail only, no root needed
//	go run ./hack/bench/mail -baseline db8442d -run imap,idle   # also kubemail as it was at db8442d
//
// The loads, each run against one system and then the other:
//   - fsync: what the data disk allows (durable 10 KiB writes, 1 and -sessions writers);
//   - smtp: Postfix's smtp-source, -sessions sessions, -messages messages of -size bytes, through
//     a proxy that times end-of-DATA to reply, until every message is in its mailbox;
//   - pop3: one POP3S client per SMTP target mailbox downloads and deletes everything;
//   - imap: hack/bench/imapload's mix with -imap-clients clients for -imap-duration;
//   - idle: -idle connections idling in IMAP IDLE, memory per connection; then, with those still
//     idling, -idle-compress more that send COMPRESS DEFLATE first, on the servers that offer it.
//
// With -baseline REV, kubemail as it was at commit REV runs as a third system through the same
// loads, built from a copy of that commit's files.
//
// It is a measurement, not a test. Everything it starts is stopped when it ends, also on error or
// interrupt; it talks to loopback only.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/hack/bench/imapload"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
)

const domain = "bench.test"

type options struct {
	messages, size, sessions, targets int
	mailboxes                         int
	imapClients, imapPrefill          int
	rounds                            int
	imapDuration                      time.Duration
	idle, idleCompress                int
	fsyncDuration                     time.Duration
	storeDeadline                     time.Duration
	run, systems, hash, baseline      string
	dir, mailserver, smtpSource       string
	pprof                             string
	clientGOGC                        int
	keep                              bool
}

func main() {
	var o options
	flag.IntVar(&o.messages, "messages", 10000, "SMTP: messages to send")
	flag.IntVar(&o.size, "size", 10240, "SMTP: payload bytes per message (smtp-source -l)")
	flag.IntVar(&o.sessions, "sessions", 20, "SMTP: parallel sessions; also the writers of the concurrent fsync probe")
	flag.IntVar(&o.targets, "targets", 20, "SMTP: mailboxes the messages are spread over (one smtp-source each); POP3: clients")
	flag.IntVar(&o.mailboxes, "mailboxes", 100, "mailboxes in the domain")
	flag.IntVar(&o.imapClients, "imap-clients", 50, "IMAP: concurrent clients running the mix (one mailbox each, after the SMTP ones)")
	flag.IntVar(&o.imapPrefill, "imap-prefill", 200, "IMAP: messages in each client's INBOX before the mix")
	flag.DurationVar(&o.imapDuration, "imap-duration", 30*time.Second, "IMAP: how long the mix runs")
	flag.IntVar(&o.idle, "idle", 1000, "IMAP IDLE: connections for the memory measurement")
	flag.IntVar(&o.idleCompress, "idle-compress", 1000, "IMAP IDLE: connections with COMPRESS DEFLATE, opened while the -idle ones idle, on servers that offer it (0: none)")
	flag.DurationVar(&o.fsyncDuration, "fsync-duration", 5*time.Second, "fsync: how long each probe runs")
	flag.DurationVar(&o.storeDeadline, "store-deadline", 10*time.Minute, "SMTP: give up when messages are not all stored this long after the last was acknowledged")
	flag.IntVar(&o.rounds, "rounds", 1, "run the loads this many times, the systems' order swapped every round; the table shows medians")
	flag.StringVar(&o.run, "run", "fsync,smtp,pop3,imap,idle", "which loads to run, in this order")
	flag.StringVar(&o.systems, "systems", "kubemail,postfix", "which systems to measure: kubemail, kubemail3 (three replicas, clients at the first, two thirds of the mailboxes on the others), postfix")
	flag.StringVar(&o.baseline, "baseline", "", "also measure kubemail built from this git revision (e.g. db8442d), as \"kubemail@REV\"")
	flag.StringVar(&o.dir, "dir", "", "put the data here (default: a new folder in $TMPDIR); its filesystem is the one measured")
	flag.StringVar(&o.mailserver, "mailserver", "", "mailserver binary (default: build ./cmd/mailserver)")
	flag.StringVar(&o.smtpSource, "smtp-source", "", "smtp-source binary (default: from PATH or /usr/sbin)")
	flag.StringVar(&o.hash, "hash", "generated", "password hashes: generated (argon2id 64 KiB, 1 pass, as the operator stores generated passwords) or full (argon2id 19 MiB, 2 passes)")
	flag.StringVar(&o.pprof, "pprof", "", "run kubemail with --pprof on this loopback address (e.g. 127.0.0.1:6060; replica r of kubemail3 on its port + r) to profile it during the loads")
	flag.BoolVar(&o.keep, "keep", false, "keep the data folder (printed) instead of removing it")
	flag.IntVar(&o.clientGOGC, "client-gogc", 400, "garbage collection target of this load generator (GOGC); the servers keep their own")
	flag.Parse()
	// The clients' latencies include this process's garbage collection, whose cost grows with
	// the throughput it drives: left at the default, a faster server is charged a longer tail
	// for the load generator's pauses. The servers measured are not affected.
	debug.SetGCPercent(o.clientGOGC)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, &o)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench mail:", err)
		os.Exit(1)
	}
}

func has(list, item string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == item {
			return true
		}
	}
	return false
}

func run(ctx context.Context, o *options) (err error) {
	if o.imapClients < 1 || o.targets < 1 || o.sessions < 1 || o.rounds < 1 || o.targets+o.imapClients > o.mailboxes {
		return errors.New("need -targets + -imap-clients <= -mailboxes (each has mailboxes of its own), and -sessions, -imap-clients, -targets and -rounds >= 1")
	}
	withPostfix := has(o.systems, "postfix")
	if withPostfix && os.Geteuid() != 0 {
		return errors.New("Postfix + Dovecot need root to start (or use -systems kubemail)")
	}
	if (has(o.run, "smtp") || has(o.run, "pop3")) && o.smtpSource == "" {
		if o.smtpSource, err = findSMTPSource(ctx, withPostfix); err != nil {
			return err
		}
	}

	base := o.dir
	if base == "" {
		if base, err = os.MkdirTemp("", "kmbench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	// Postfix and Dovecot run as their own users, which must reach their folders in here.
	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(base)
	} else {
		defer fmt.Fprintln(os.Stderr, "data kept in", base)
	}

	rep := &report{}
	printMachine(ctx, base)
	defer func() { fmt.Printf("load average at the end: %s\n", loadavg()) }()

	if has(o.run, "fsync") {
		for _, c := range []struct {
			writers int
			dirSync bool
		}{{1, false}, {1, true}, {o.sessions, false}, {o.sessions, true}} {
			r, err := probeFsync(base, c.writers, c.dirSync, o.fsyncDuration)
			if err != nil {
				return fmt.Errorf("fsync probe: %w", err)
			}
			rep.fsync = append(rep.fsync, r)
			fmt.Fprintf(os.Stderr, "fsync: %s: %.0f ops/s, p50 %s, p99 %s\n", r.label(), r.perSec(), ms(percentile(r.lat, .5)), ms(percentile(r.lat, .99)))
		}
	}
	needServers := false
	for _, l := range []string{"smtp", "pop3", "imap", "idle"} {
		needServers = needServers || has(o.run, l)
	}
	if !needServers {
		rep.print(o)
		return nil
	}

	accts := make([]account, o.mailboxes)
	for i := range accts {
		pw := make([]byte, 18)
		if _, err := rand.Read(pw); err != nil {
			return err
		}
		accts[i] = account{address: fmt.Sprintf("box%04d@%s", i+1, domain), password: base64.RawURLEncoding.EncodeToString(pw)}
	}
	hashes, err := hashAll(accts, o.hash)
	if err != nil {
		return err
	}

	var systems []*system
	defer func() {
		for _, s := range systems {
			s.stop()
		}
	}()
	if has(o.systems, "kubemail") {
		fmt.Printf("kubemail: built from %s\n", treeRevision(ctx))
		s, err := startKubemail(ctx, "kubemail", filepath.Join(base, "kubemail"), o.mailserver, o.pprof, accts, hashes, 1)
		if err != nil {
			return err
		}
		systems = append(systems, s)
	}
	if has(o.systems, "kubemail3") {
		// Three replicas, clients at the first: two thirds of the mailboxes live elsewhere.
		s, err := startKubemail(ctx, "kubemail×3", filepath.Join(base, "kubemail3"), o.mailserver, o.pprof, accts, hashes, 3)
		if err != nil {
			return err
		}
		systems = append(systems, s)
	}
	if o.baseline != "" {
		commit, err := resolveRevision(ctx, o.baseline)
		if err != nil {
			return err
		}
		fmt.Printf("kubemail@%s: built from %s\n", o.baseline, commit)
		dir := filepath.Join(base, "baseline")
		bin, err := buildRevision(ctx, commit, dir)
		if err != nil {
			return err
		}
		s, err := startKubemail(ctx, "kubemail@"+o.baseline, dir, bin, "", accts, hashes, 1)
		if err != nil {
			return err
		}
		systems = append(systems, s)
	}
	if withPostfix {
		s, err := startPostfixDovecot(ctx, filepath.Join(base, "pd"), accts, hashes)
		if err != nil {
			return err
		}
		systems = append(systems, s)
	}
	for _, s := range systems {
		fmt.Fprintln(os.Stderr, s.describe)
	}
	rep.systems = systems
	rep.results = make([]sysResult, len(systems))

	targets := accts[:o.targets]
	// The IMAP clients get mailboxes of their own, so that POP3 drains only what SMTP delivered.
	imapAccounts := make([]imapload.Account, o.imapClients)
	for i := range imapAccounts {
		a := accts[o.targets+i]
		imapAccounts[i] = imapload.Account{User: a.address, Password: a.password}
	}
	for round := range o.rounds {
		// Each load runs on one system, then on the other; odd rounds start with the other one,
		// so that neither always runs first on a machine whose load changes.
		order := make([]int, len(systems))
		for i := range order {
			order[i] = i
			if round%2 == 1 {
				order[i] = len(systems) - 1 - i
			}
		}
		if o.rounds > 1 {
			fmt.Fprintf(os.Stderr, "round %d of %d\n", round+1, o.rounds)
		}
		for _, load := range []string{"smtp", "pop3", "imap", "idle"} {
			if !has(o.run, load) {
				continue
			}
			for _, i := range order {
				if err := runLoad(ctx, o, load, systems[i], &rep.results[i], targets, imapAccounts); err != nil {
					return err
				}
			}
		}
	}
	rep.print(o)
	return nil
}

// runLoad runs one load against one system and appends its outcome to res.
func runLoad(ctx context.Context, o *options, load string, s *system, res *sysResult, targets []account, imapAccounts []imapload.Account) error {
	switch load {
	case "smtp":
		fmt.Fprintf(os.Stderr, "%s: SMTP, %d messages of %d bytes, %d sessions, %d mailboxes\n", s.name, o.messages, o.size, o.sessions, len(targets))
		r, err := runSMTP(ctx, o, s, targets)
		if err != nil {
			return err
		}
		res.smtp = append(res.smtp, r)
		fmt.Fprintf(os.Stderr, "%s: %.0f msg/s acknowledged, %.0f msg/s stored; end-of-DATA to reply p50 %s p99 %s (%d samples, %d not 2xx)\n",
			s.name, r.ackedPerSec(), r.storedPerSec(), ms(percentile(r.latencies, .5)), ms(percentile(r.latencies, .99)), len(r.latencies), r.rejected)
	case "pop3":
		if !has(o.run, "smtp") {
			// Something to download: the SMTP load, unmeasured.
			if _, err := runSMTP(ctx, o, s, targets); err != nil {
				return err
			}
		}
		r, err := runPOP3(ctx, s, targets)
		if err != nil {
			return err
		}
		res.pop3 = append(res.pop3, r)
		fmt.Fprintf(os.Stderr, "%s: POP3 %d messages (%.1f MiB) downloaded and deleted by %d clients in %s: %.0f msg/s, %.1f MiB/s, RETR p99 %s\n",
			s.name, r.messages, float64(r.bytes)/(1<<20), len(targets), r.elapsed.Round(time.Millisecond), r.perSec(), r.mbPerSec(), ms(percentile(r.retr, .99)))
	case "imap":
		cfg := imapload.Config{Addr: s.imapsAddr, TLS: true, Accounts: imapAccounts,
			Mailbox: "INBOX", Clients: o.imapClients, Duration: o.imapDuration, Seed: uint64(len(res.imap) + 1)}
		start := time.Now()
		if err := imapload.Prefill(ctx, cfg, o.imapPrefill); err != nil {
			return fmt.Errorf("%s: IMAP prefill: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "%s: filled %d mailboxes to %d messages in %s\n", s.name, len(cfg.Accounts), o.imapPrefill, time.Since(start).Round(time.Millisecond))
		cpu0, err := s.cpu()
		if err != nil {
			return err
		}
		r, err := imapload.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("%s: IMAP load: %w", s.name, err)
		}
		cpu1, err := s.cpu()
		if err != nil {
			return err
		}
		res.imap = append(res.imap, imapRound{Result: r, cpu: cpu1 - cpu0})
		fmt.Fprintf(os.Stderr, "%s: IMAP %d clients, %.0f ops/s, p50 %s, p99 %s, %d errors\n", s.name, o.imapClients, r.OpsPerSec, ms(r.P50), ms(r.P99), r.Errors)
	case "idle":
		return runIdle(ctx, o, s, res, imapAccounts)
	}
	return nil
}

// findSMTPSource finds Postfix's smtp-source, installing the packages when allowed.
func findSMTPSource(ctx context.Context, mayInstall bool) (string, error) {
	for _, p := range []string{"smtp-source", "/usr/sbin/smtp-source"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	if mayInstall {
		cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(), "hack", "bench", "postfix-dovecot.sh"), "install")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err == nil {
			return "/usr/sbin/smtp-source", nil
		}
	}
	return "", errors.New("smtp-source not found: it comes with Postfix (hack/bench/postfix-dovecot.sh install), or name it with -smtp-source")
}

// hashAll hashes every password, in parallel: with passwordhash.Hash (argon2id, 19 MiB, 2 passes: for
// passwords people choose) or passwordhash.HashGenerated (argon2id, 64 KiB, 1 pass: what the operator
// uses for the random passwords it generates).
func hashAll(accts []account, kind string) ([]string, error) {
	hash := passwordhash.HashGenerated
	switch kind {
	case "full":
		hash = passwordhash.Hash
	case "generated":
	default:
		return nil, fmt.Errorf("-hash %q: want full or generated", kind)
	}
	hashes := make([]string, len(accts))
	errs := make([]error, len(accts))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, a := range accts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hashes[i], errs[i] = hash(a.password)
		}()
	}
	wg.Wait()
	return hashes, errors.Join(errs...)
}
