package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/hack/bench/imapload"
	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/selfsigned"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
	"github.com/kubemail/kubemail/test/launch"
	"github.com/kubemail/kubemail/test/testenv"
)

// system is one mail system under test, running on loopback.
type system struct {
	name                         string
	smtpAddr, imapsAddr, popAddr string
	// stored counts the messages in the INBOX of each address (on disk, nothing cached).
	stored func(addrs []string) (int, error)
	// rss returns the memory that holds the server's IMAP connections (see docs/benchmarks.md):
	// VmRSS of the one kubemail process; for Dovecot the VmRSS of its imap and imap-login
	// processes added up. pss is the proportional set size of the server's whole process tree.
	rss, pss func() (int64, error)
	// cpu is the CPU time (user and system) the server's processes have used so far.
	cpu func() (time.Duration, error)
	// describe is printed once the system is up.
	describe string
	stop     func()
}

// account is a mailbox both systems serve, with its password.
type account struct{ address, password string }

func (a account) local() string { l, _, _ := strings.Cut(a.address, "@"); return l }

// countFiles counts the directory entries of dirs; a missing directory counts zero.
func countFiles(dirs ...string) (int, error) {
	n := 0
	for _, d := range dirs {
		f, err := os.Open(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return 0, err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return 0, err
		}
		n += len(names)
	}
	return n, nil
}

// startKubemail builds (unless binary is set) and starts cmd/mailserver on loopback with the
// accounts, its data in dir/data, as the system called name. With replicas above 1 it starts a
// cluster of that many servers, each with its data in dir/replica-N and the accounts spread
// over them (account i on replica i mod replicas); clients reach replica 0, which proxies the
// other replicas' IMAP and POP3 sessions and hands their mail over, as the replica a Service
// sends a client to does.
func startKubemail(ctx context.Context, name, dir, binary, pprofAddr string, accts []account, hashes []string, replicas int) (*system, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if binary == "" {
		var err error
		if binary, err = launch.Build(ctx, dir, "mailserver"); err != nil {
			return nil, err
		}
	}
	certFile, keyFile, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	spec := dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: domain}}}
	for i, a := range accts {
		spec.Mailboxes = append(spec.Mailboxes, dirspec.MailboxSpec{Address: a.address, PasswordHash: hashes[i], Shard: i % replicas})
	}
	dirPath := filepath.Join(dir, "directory.yaml")
	if err := writeYAML(dirPath, spec); err != nil {
		return nil, err
	}
	cluster, err := clusterSettings(dir, replicas)
	if err != nil {
		return nil, err
	}
	var procs []*launch.Process
	var dataDirs []string
	stopAll := func() {
		for _, p := range procs {
			p.Stop(30 * time.Second)
		}
	}
	for r := range replicas {
		rdir := dir
		if replicas > 1 {
			rdir = filepath.Join(dir, fmt.Sprintf("replica-%d", r))
		}
		cfg := kubemailConfig(rdir, dirPath, certFile, keyFile)
		cfg.Shard, cfg.Cluster = r, cluster
		if replicas > 1 {
			cfg.Cluster.Listen = cluster.Peers[r]
		}
		p, err := runKubemail(binary, name, rdir, cfg, replicaPprof(pprofAddr, r))
		if err != nil {
			stopAll()
			return nil, err
		}
		procs, dataDirs = append(procs, p), append(dataDirs, cfg.DataDir)
	}
	return kubemailSystem(name, procs, dataDirs, stopAll), nil
}

// kubemailConfig is a replica's settings, its data in dir/data.
func kubemailConfig(dir, dirPath, certFile, keyFile string) config.Config {
	off := false
	return config.Config{
		Hostname:  "mx." + domain,
		DataDir:   filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirPath},
		TLS:       config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: config.Listeners{
			SMTP:  config.Listener{Address: "127.0.0.1:0"},
			IMAPS: config.Listener{Address: "127.0.0.1:0"},
			POP3S: config.Listener{Address: "127.0.0.1:0"},
			HTTP:  config.Listener{Address: "127.0.0.1:0"},
		},
		// Room for the idle-connection test, all of it from 127.0.0.1 (the defaults are 2,000 in
		// total and 20 per address).
		Limits: config.Limits{MaxConnections: 5000, MaxConnectionsPerIP: 5000},
		// Postfix does no SPF, DKIM or DMARC checks out of the box, so neither does kubemail here;
		// and nothing leaves loopback.
		Inbound: config.Inbound{AuthChecks: &off},
		DNS:     config.DNS{Resolver: "127.0.0.1:1"},
	}
}

// clusterSettings are the cluster section of replicas servers on loopback, with a CA and a
// certificate of their own; none for one.
func clusterSettings(dir string, replicas int) (config.Cluster, error) {
	if replicas <= 1 {
		return config.Cluster{}, nil
	}
	caPEM, caKeyPEM, err := selfsigned.CA("kubemail benchmark cluster", 24*time.Hour)
	if err != nil {
		return config.Cluster{}, err
	}
	certPEM, keyPEM, err := selfsigned.Issue(caPEM, caKeyPEM, []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		return config.Cluster{}, err
	}
	cdir := filepath.Join(dir, "cluster")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return config.Cluster{}, err
	}
	c := config.Cluster{CertFile: filepath.Join(cdir, "tls.crt"), KeyFile: filepath.Join(cdir, "tls.key"), CAFile: filepath.Join(cdir, "ca.crt")}
	for path, data := range map[string][]byte{c.CertFile: certPEM, c.KeyFile: keyPEM, c.CAFile: caPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return config.Cluster{}, err
		}
	}
	for range replicas {
		port, err := freePort()
		if err != nil {
			return config.Cluster{}, err
		}
		c.Peers = append(c.Peers, "127.0.0.1:"+strconv.Itoa(port))
	}
	return c, nil
}

// runKubemail starts one server with cfg, its settings and log in dir.
// replicaPprof is the profiler address of replica r: the given one's port plus r.
func replicaPprof(addr string, r int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(p+r))
}

func runKubemail(binary, name, dir string, cfg config.Config, pprofAddr string) (*launch.Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := writeYAML(cfgPath, cfg); err != nil {
		return nil, err
	}
	args := []string{binary, "--config", cfgPath}
	if pprofAddr != "" {
		args = append(args, "--pprof", pprofAddr)
	}
	return launch.Start(launch.Options{Name: name, Command: args,
		LogFile: filepath.Join(dir, "mailserver.log"), LogOnlyToFile: true,
		// The server dies with the benchmark, even when the benchmark is killed.
		DieWithParent: true})
}

// kubemailSystem is the system of one or more running servers; clients reach the first.
func kubemailSystem(name string, procs []*launch.Process, dataDirs []string, stop func()) *system {
	addrs := procs[0].Addrs
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.Pid())
	}
	sum := func(per func(pid int) func() (int64, error)) func() (int64, error) {
		return func() (int64, error) {
			var total int64
			for _, pid := range pids {
				n, err := per(pid)()
				if err != nil {
					return 0, err
				}
				total += n
			}
			return total, nil
		}
	}
	return &system{
		name: name, smtpAddr: addrs["smtp"], imapsAddr: addrs["imaps"], popAddr: addrs["pop3s"],
		stored: func(addrs []string) (int, error) {
			var dirs []string
			for _, d := range dataDirs {
				for _, a := range addrs {
					local, _, _ := strings.Cut(a, "@")
					dirs = append(dirs, filepath.Join(d, "mailboxes", domain, local, "INBOX", "cur"))
				}
			}
			return countFiles(dirs...)
		},
		rss: sum(func(pid int) func() (int64, error) { return imapload.ProcRSS(pid) }),
		pss: sum(func(pid int) func() (int64, error) { return imapload.ProcTreePSS(pid) }),
		cpu: func() (time.Duration, error) {
			var total time.Duration
			for _, pid := range pids {
				d, err := treeCPU(pid)
				if err != nil {
					return 0, err
				}
				total += d
			}
			return total, nil
		},
		describe: fmt.Sprintf("%s: pids %v, smtp %s, imaps %s, pop3s %s, data %v", name, pids, addrs["smtp"], addrs["imaps"], addrs["pop3s"], dataDirs),
		stop:     stop,
	}
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// freePort returns a loopback TCP port that nothing listens on right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startPostfixDovecot runs hack/bench/postfix-dovecot.sh up in dir with the same accounts and
// password hashes (Dovecot verifies the same argon2id strings through libsodium).
func startPostfixDovecot(ctx context.Context, dir string, accts []account, hashes []string) (*system, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	for i, a := range accts {
		fmt.Fprintf(&b, "%s\t%s\n", a.address, hashes[i])
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if _, _, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"}); err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	script := filepath.Join(testenv.RepoRoot(), "hack", "bench", "postfix-dovecot.sh")
	down := func() {
		cmd := exec.Command(script, "down", dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "postfix-dovecot.sh down %s: %v\n", dir, err)
		}
	}
	cmd := exec.CommandContext(ctx, script, "up", dir)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PF_SMTP_PORT=%d", ports[0]), fmt.Sprintf("DC_IMAPS_PORT=%d", ports[1]),
		fmt.Sprintf("DC_POP3S_PORT=%d", ports[2]))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		down()
		return nil, fmt.Errorf("postfix-dovecot.sh up: %w", err)
	}
	readPID := func(name string) int {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		return pid
	}
	pfPID, dcPID := readPID("postfix.pid"), readPID("dovecot.pid")
	if pfPID == 0 || dcPID == 0 {
		down()
		return nil, fmt.Errorf("postfix-dovecot.sh up left no PIDs in %s", dir)
	}
	mail := filepath.Join(dir, "dovecot", "mail", domain)
	return &system{
		name:      "Postfix+Dovecot",
		smtpAddr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		imapsAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		popAddr:   fmt.Sprintf("127.0.0.1:%d", ports[2]),
		stored: func(addrs []string) (int, error) {
			var dirs []string
			for _, a := range addrs {
				local, _, _ := strings.Cut(a, "@")
				dirs = append(dirs, filepath.Join(mail, local, "Maildir", "new"), filepath.Join(mail, local, "Maildir", "cur"))
			}
			return countFiles(dirs...)
		},
		rss: func() (int64, error) { return sumRSS(dcPID, "imap", "imap-login") },
		pss: imapload.ProcTreePSS(dcPID),
		cpu: func() (time.Duration, error) { return treeCPU(pfPID, dcPID) },
		describe: fmt.Sprintf("Postfix+Dovecot: postfix master %d smtp 127.0.0.1:%d; dovecot master %d imaps 127.0.0.1:%d pop3s 127.0.0.1:%d; data %s",
			pfPID, ports[0], dcPID, ports[1], ports[2], dir),
		stop: down,
	}, nil
}

// procStat is what the benchmark reads from /proc/<pid>/stat.
type procStat struct {
	pid, ppid int
	comm      string
	// cpu is utime+stime+cutime+cstime in clock ticks: the process's own CPU time and that of
	// the children it has reaped.
	cpu int64
}

// processes reads /proc/*/stat.
func processes() ([]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so cut at the last ')'.
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(s[closing+1:])
		if len(f) < 15 {
			continue
		}
		p := procStat{pid: pid, comm: s[open+1 : closing]}
		p.ppid, _ = strconv.Atoi(f[1])
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
			v, _ := strconv.ParseInt(f[i], 10, 64)
			p.cpu += v
		}
		out = append(out, p)
	}
	return out, nil
}

// tree returns the processes descending from roots, roots included.
func tree(roots ...int) ([]procStat, error) {
	all, err := processes()
	if err != nil {
		return nil, err
	}
	byPID := map[int]procStat{}
	children := map[int][]int{}
	for _, p := range all {
		byPID[p.pid] = p
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []procStat
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if p, ok := byPID[pid]; ok {
			out = append(out, p)
			queue = append(queue, children[pid]...)
		}
	}
	return out, nil
}

// clockTick is USER_HZ, the unit of the times in /proc/<pid>/stat (100 on Linux).
const clockTick = 10 * time.Millisecond

// treeCPU is the CPU time used by the processes under roots, living or reaped by a parent in
// the tree (Postfix and Dovecot start and end processes all the time).
func treeCPU(roots ...int) (time.Duration, error) {
	ps, err := tree(roots...)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, p := range ps {
		ticks += p.cpu
	}
	return time.Duration(ticks) * clockTick, nil
}

// sumRSS adds up VmRSS of the descendants of root whose command name is one of names.
func sumRSS(root int, names ...string) (int64, error) {
	ps, err := tree(root)
	if err != nil {
		return 0, err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var total int64
	for _, p := range ps {
		if p.pid == root || !want[p.comm] {
			continue
		}
		rss, err := imapload.ProcRSS(p.pid)()
		if err != nil {
			continue // exited meanwhile
		}
		total += rss
	}
	return total, nil
}
