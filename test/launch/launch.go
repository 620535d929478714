// Package launch runs kubemail's own programs (the mail server, the operator) as child
// processes for tests, benchmarks and `make dev`: it builds them, starts them, waits for the
// line that says they started, keeps their log, and reads the addresses they listen on from it.
package launch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubemail/kubemail/test/testenv"
)

// MailserverStarted is in the line the mail server logs once every listener is open, whether
// it logs text or JSON.
const MailserverStarted = "mailserver started"

// Build compiles ./cmd/<name> of this repository into dir and returns the program's path.
func Build(ctx context.Context, dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building ./cmd/%s: %w\n%s", name, err, out)
	}
	return bin, nil
}

// Options say what to run and how to tell that it started.
type Options struct {
	// Name names the process in errors and in the lines copied to Log.
	Name string
	// Command is the program and its arguments. It may start with a wrapper such as strace.
	Command []string
	// Env is added to this process's environment.
	Env []string
	// Ready is part of the log line that means the process is up; MailserverStarted if empty.
	Ready string
	// StartTimeout bounds the wait for Ready; one minute if zero.
	StartTimeout time.Duration
	// LogFile, if set, receives the process's standard output and every log line.
	LogFile string
	// LogOnlyToFile keeps log lines out of memory (Logs returns nothing), for long benchmark
	// runs; LogFile should then be set.
	LogOnlyToFile bool
	// Log, if set, receives every log line as "[Name] line".
	Log io.Writer
	// DieWithParent has the kernel kill the process when the program that started it dies,
	// even by SIGKILL (benchmarks, which are often interrupted).
	DieWithParent bool
}

// Process is a running program.
type Process struct {
	Name string
	// Addrs are the listeners the process announced before it was ready ("smtp",
	// "imaps", "http", ...), by name.
	Addrs map[string]string
	// Cmd is the started command; Cmd.Process is the running program (under a wrapper, the
	// wrapper).
	Cmd *exec.Cmd

	exited  chan struct{}
	exitErr error
	mu      sync.Mutex
	log     strings.Builder
}

// listeningRE matches the mail server's "listening" log line, as text or as JSON.
var listeningRE = regexp.MustCompile(`msg=listening listener=(\w+) addr=(\S+)|"msg":"listening","listener":"(\w+)","addr":"([^"]+)"`)

// Start runs the command and returns once it logged opts.Ready. If it exits or does not get
// there in time, Start kills it and returns an error with what it logged.
func Start(opts Options) (*Process, error) {
	if opts.Ready == "" {
		opts.Ready = MailserverStarted
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = time.Minute
	}
	p := &Process{Name: opts.Name, Addrs: map[string]string{}, Cmd: exec.Command(opts.Command[0], opts.Command[1:]...),
		exited: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), opts.Env...)
	if opts.DieWithParent {
		p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	var logFile *os.File
	if opts.LogFile != "" {
		f, err := os.Create(opts.LogFile)
		if err != nil {
			return nil, err
		}
		logFile = f
		p.Cmd.Stdout = f
	}
	// A pipe of our own rather than StderrPipe: Wait then returns when the process exits, even
	// if something it started (a traced child left behind by strace) still holds the pipe.
	stderr, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.Cmd.Stderr = w
	err = p.Cmd.Start()
	w.Close()
	if err != nil {
		stderr.Close()
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("starting %s: %w", opts.Name, err)
	}
	started := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.readLog(stderr, logFile, opts, started)
	}()
	go func() {
		p.exitErr = p.Cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-started:
		return p, nil
	case <-p.exited:
		select { // the last lines, which say why
		case <-readDone:
		case <-time.After(time.Second):
		}
		select {
		case <-started: // and then exited, which is for the caller to see
			return p, nil
		default:
		}
		return nil, fmt.Errorf("%s exited at start: %v\n%s", opts.Name, p.exitErr, p.logsOr(opts.LogFile))
	case <-time.After(opts.StartTimeout):
		p.Kill()
		return nil, fmt.Errorf("%s did not start within %s\n%s", opts.Name, opts.StartTimeout, p.logsOr(opts.LogFile))
	}
}

// readLog copies the process's log lines where opts says, gathers the listeners it announces,
// and closes started at the line that says it is ready. It closes stderr and logFile at the
// end of the log.
func (p *Process) readLog(stderr, logFile *os.File, opts Options, started chan<- struct{}) {
	defer stderr.Close()
	if logFile != nil {
		defer logFile.Close()
	}
	addrs := map[string]string{}
	ready := false
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if logFile != nil {
			fmt.Fprintln(logFile, line)
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "[%s] %s\n", opts.Name, line)
		}
		if !opts.LogOnlyToFile {
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
		}
		if ready {
			continue
		}
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			if m[1] != "" {
				addrs[m[1]] = m[2]
			} else {
				addrs[m[3]] = m[4]
			}
		}
		if strings.Contains(line, opts.Ready) {
			// Addrs is written here only, before Start returns, so callers read it freely.
			p.Addrs = addrs
			ready = true
			close(started)
		}
	}
	io.Copy(io.Discard, stderr) // a line too long for the scanner must not block the process
}

func (p *Process) logsOr(file string) string {
	if l := p.Logs(); l != "" {
		return l
	}
	return "its log is in " + file
}

// Logs returns what the process has logged so far.
func (p *Process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Pid is the process ID of the started command.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited is closed once the process has exited; ExitErr then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is the error Wait returned for the process; valid once Exited is closed.
func (p *Process) ExitErr() error { return p.exitErr }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop sends SIGTERM, as the kubelet does, and waits for the process to exit; after grace it
// kills it. It returns how the process exited, or an error saying it had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, grace)
	}
}

// Kill ends the process with SIGKILL and waits for it; a process that has exited already is
// left as it is.
func (p *Process) Kill() {
	p.Cmd.Process.Kill()
	<-p.exited
}
