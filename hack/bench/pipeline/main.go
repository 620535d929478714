// Command pipeline measures how long the mail server takes to answer a batch of pipelined
// commands, in plain text and inside TLS, for IMAP (NOOP), POP3 (NOOP) and SMTP (RSET after
// EHLO, as with PIPELINING). It starts the server in this process on loopback with a fresh data
// folder and a self-signed certificate; see docs/benchmarks.md.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/server"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

const (
	user     = "bench@bench.test"
	password = "bench-password"
)

func main() {
	n := flag.Int("commands", 10000, "pipelined commands per run")
	rounds := flag.Int("rounds", 3, "runs of each case")
	flag.Parse()
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

func run(n, rounds int) error {
	dir, err := os.MkdirTemp("", "kubemail-pipeline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg, err := benchConfig(dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("%d pipelined commands, %d runs each: time to the last reply (write system calls of the whole process)\n", n, rounds)
	for _, c := range cases(srv.Addrs) {
		var times []string
		for range rounds {
			before := writeSyscalls()
			d, err := c.run(n)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			times = append(times, fmt.Sprintf("%s (%d)", d.Round(time.Millisecond), writeSyscalls()-before))
		}
		fmt.Printf("%-30s %s\n", c.name, strings.Join(times, "  "))
	}
	return nil
}

// writeSyscalls is the process's count of write system calls so far (syscw of /proc/self/io);
// client and server share the process, so it counts the client's writes too (a handful per
// run: the commands go out in one buffer).
func writeSyscalls() int {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

func benchConfig(dir string) (*config.Config, error) {
	certFile, keyFile, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	hash, err := passwordhash.HashGenerated(password)
	if err != nil {
		return nil, err
	}
	spec := dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "bench.test"}},
		Mailboxes: []dirspec.MailboxSpec{{Address: user, PasswordHash: hash}}}
	data, err := yaml.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	dirFile := filepath.Join(dir, "directory.yaml")
	if err := os.WriteFile(dirFile, data, 0o600); err != nil {
		return nil, err
	}
	l := config.Listener{Address: "127.0.0.1:0"}
	cfg := &config.Config{Hostname: "mail.bench.test", DataDir: filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirFile}, TLS: config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: config.Listeners{SMTP: l, Submissions: l, IMAP: l, IMAPS: l, POP3: l, POP3S: l},
		DNS:       config.DNS{Resolver: "127.0.0.1:1"}}
	cfg.Default()
	return cfg, cfg.Validate()
}

type benchCase struct {
	name string
	run  func(n int) (time.Duration, error)
}

func cases(addrs map[string]net.Addr) []benchCase {
	a := func(name string) string { return addrs[name].String() }
	return []benchCase{
		{"IMAP NOOP, plain text (imap)", func(n int) (time.Duration, error) { return imapNoops(a("imap"), false, n) }},
		{"IMAP NOOP, TLS (imaps)", func(n int) (time.Duration, error) { return imapNoops(a("imaps"), true, n) }},
		{"POP3 NOOP, TLS (pop3s)", func(n int) (time.Duration, error) { return pop3Noops(a("pop3s"), n) }},
		{"SMTP RSET, plain text (smtp)", func(n int) (time.Duration, error) { return smtpRsets(a("smtp"), false, n) }},
		{"SMTP RSET, TLS (submissions)", func(n int) (time.Duration, error) { return smtpRsets(a("submissions"), true, n) }},
	}
}

func dial(addr string, useTLS bool) (net.Conn, error) {
	if useTLS {
		return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	}
	return net.Dial("tcp", addr)
}

// pipelined writes n copies of cmd at once from another goroutine and returns the time until
// done has seen the n-th reply.
func pipelined(c net.Conn, br *bufio.Reader, cmd string, n int, isLast func(line string) bool) (time.Duration, error) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, strings.Repeat(cmd, n))
		werr <- err
	}()
	for seen := 0; seen < n; {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("after %d replies: %w", seen, err)
		}
		if isLast(line) {
			seen++
		}
	}
	d := time.Since(start)
	return d, <-werr
}

func expect(br *bufio.Reader, prefix string) error {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, prefix) {
			return nil
		}
		if !strings.HasPrefix(line, "* ") && !strings.HasPrefix(line[3:], "-") {
			return fmt.Errorf("want %q, got %q", prefix, line)
		}
	}
}

func imapNoops(addr string, useTLS bool, n int) (time.Duration, error) {
	c, err := dial(addr, useTLS)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if err := expect(br, "* OK"); err != nil {
		return 0, err
	}
	return pipelined(c, br, "a NOOP\r\n", n, func(l string) bool { return strings.HasPrefix(l, "a OK") })
}

func pop3Noops(addr string, n int) (time.Duration, error) {
	c, br, err := pop3Login(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	d, err := pipelined(c, br, "NOOP\r\n", n, func(l string) bool { return strings.HasPrefix(l, "+OK") })
	fmt.Fprintf(c, "QUIT\r\n")
	expect(br, "+OK")
	return d, err
}

// pop3Login logs in over POP3S, waiting while the previous run's session still holds the
// maildrop (the server releases it just after its answer to QUIT).
func pop3Login(addr string) (net.Conn, *bufio.Reader, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dial(addr, true)
		if err != nil {
			return nil, nil, err
		}
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "USER %s\r\nPASS %s\r\n", user, password)
		err = expect(br, "+OK") // greeting
		if err == nil {
			err = expect(br, "+OK") // USER
		}
		if err == nil {
			if err = expect(br, "+OK"); err == nil {
				return c, br, nil
			}
		}
		c.Close()
		if !strings.Contains(err.Error(), "IN-USE") || time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("logging in: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func smtpRsets(addr string, useTLS bool, n int) (time.Duration, error) {
	c, err := dial(addr, useTLS)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if err := expect(br, "220 "); err != nil {
		return 0, err
	}
	fmt.Fprintf(c, "EHLO bench.test\r\n")
	if err := expect(br, "250 "); err != nil {
		return 0, err
	}
	return pipelined(c, br, "RSET\r\n", n, func(l string) bool { return strings.HasPrefix(l, "250 ") })
}
