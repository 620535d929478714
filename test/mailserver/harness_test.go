// Package mailserver_test drives the real mailserver binary on loopback with mail clients that
// other people wrote: swaks, curl and Python's smtplib.
package mailserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
	"github.com/kubemail/kubemail/test/launch"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubemail-mailserver-bin-")
	if err != nil {
		panic(err)
	}
	binary, err = launch.Build(context.Background(), dir, "mailserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Passwords of the test accounts (the directory holds only their hashes).
const (
	alicePW = "alice-secret-pw"
	bobPW   = "bob-secret-pw"
)

// testDirectory is the account set most tests use.
func testDirectory(t *testing.T) *dirspec.Spec {
	t.Helper()
	hash := func(pw string) string {
		h, err := passwordhash.Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	no := false
	return &dirspec.Spec{
		Domains: []dirspec.DomainSpec{{Name: "example.com"}, {Name: "example.org", CatchAll: "bob@example.org"}},
		Mailboxes: []dirspec.MailboxSpec{
			{Address: "alice@example.com", PasswordHash: hash(alicePW), Aliases: []string{"postmaster@example.com"}},
			{Address: "bob@example.org", PasswordHash: hash(bobPW)},
			{Address: "carol@example.com", PasswordHash: hash("carol-pw"), ForwardTo: []string{"alice@example.com"}, KeepCopy: &no},
			{Address: "tiny@example.com", PasswordHash: hash("tiny-pw"), Quota: 1500},
		},
		Aliases: []dirspec.AliasSpec{{Address: "team@example.com", Members: []string{"alice@example.com", "bob@example.org"}}},
	}
}

// server is a running mailserver process.
type server struct {
	t       *testing.T
	dir     string
	cfgPath string
	dirPath string
	cfg     *config.Config
	proc    *launch.Process
	earlier string   // what the processes before proc logged (a test may restart the server)
	wrapper []string // a command the server runs under (strace …), or nothing
}

type serverOption func(*config.Config)

// writeConfig prepares a data folder, certificate, directory and settings file.
func writeConfig(t *testing.T, dir string, spec *dirspec.Spec, opts ...serverOption) (*config.Config, string) {
	t.Helper()
	certFile, keyFile, err := tlsconf.WriteSelfSigned(filepath.Join(dir, "tls"), []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dirPath := filepath.Join(dir, "directory.yaml")
	data, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Hostname:  "mail.example.com",
		DataDir:   filepath.Join(dir, "data"),
		Directory: config.DirectorySource{File: dirPath},
		TLS:       config.TLS{CertFile: certFile, KeyFile: keyFile},
		Listeners: config.Listeners{
			SMTP:        config.Listener{Address: "127.0.0.1:0"},
			Submission:  config.Listener{Address: "127.0.0.1:0"},
			Submissions: config.Listener{Address: "127.0.0.1:0"},
			HTTP:        config.Listener{Address: "127.0.0.1:0"},
		},
		Limits: config.Limits{MaxMessageBytes: 64 << 10, MaxRecipients: 5},
		// Tests talk to loopback only: DNS goes to a port where nothing answers unless a test
		// starts its own DNS server.
		DNS: config.DNS{Resolver: "127.0.0.1:1"},
	}
	for _, o := range opts {
		o(cfg)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, cfgPath
}

// startServer starts a mailserver with the test directory and returns once it listens.
func startServer(t *testing.T, opts ...serverOption) *server {
	t.Helper()
	dir := t.TempDir()
	cfg, cfgPath := writeConfig(t, dir, testDirectory(t), opts...)
	s := &server{t: t, dir: dir, cfgPath: cfgPath, dirPath: cfg.Directory.File, cfg: cfg}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	if s.proc != nil {
		s.earlier += s.proc.Logs()
	}
	p, err := launch.Start(launch.Options{Name: "mailserver", StartTimeout: 30 * time.Second,
		Command: append(append([]string(nil), s.wrapper...), binary, "--config", s.cfgPath)})
	if err != nil {
		t.Fatal(err)
	}
	s.proc = p
}

func (s *server) logs() string {
	return s.earlier + s.proc.Logs()
}

func (s *server) addr(name string) string {
	a, ok := s.proc.Addrs[name]
	if !ok {
		s.t.Fatalf("no %s listener", name)
	}
	return a
}

func (s *server) kill() {
	if s.proc != nil {
		s.proc.Kill()
	}
	if s.t.Failed() {
		s.t.Logf("mailserver log:\n%s", s.logs())
	}
}

// stop sends SIGTERM and returns how the server exited.
func (s *server) stop() error {
	return s.proc.Stop(60 * time.Second)
}

// inbox lists the message files in a mailbox folder.
func (s *server) messages(address, folder string) []string {
	s.t.Helper()
	local, domain, _ := strings.Cut(address, "@")
	dir := filepath.Join(s.cfg.DataDir, "mailboxes", domain, local, folder, "cur")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

func (s *server) metric(name string) string {
	s.t.Helper()
	resp, err := http.Get("http://" + s.addr("http") + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// run executes a client program and returns its combined output.
func run(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Program(t, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// python runs a Python 3 script with the given arguments (sys.argv[1:]).
func python(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	return run(t, "", "python3", append([]string{"-c", script}, args...)...)
}

// serverPoll is how long a test waits for the server process to act on something.
var serverPoll = testutil.Poll{Within: 15 * time.Second, Every: 20 * time.Millisecond}
