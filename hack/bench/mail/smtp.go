package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"time"
)

// smtpResult is one SMTP delivery run.
type smtpResult struct {
	messages int
	// acked is how long until smtp-source had every message acknowledged; stored until every
	// message was in its mailbox (the same for a server that stores before it answers).
	acked, stored time.Duration
	// latencies are end-of-DATA to reply, as the proxy saw them.
	latencies []time.Duration
	// rejected counts replies to end-of-DATA that were not 2xx.
	rejected int
	// cpu is what the server's processes used from the first message until all were stored.
	cpu time.Duration
}

func (r smtpResult) storedPerSec() float64 { return float64(r.messages) / r.stored.Seconds() }
func (r smtpResult) ackedPerSec() float64  { return float64(r.messages) / r.acked.Seconds() }

// runSMTP sends o.messages messages of o.size bytes with smtp-source through a latency proxy to
// sys, spread over the target accounts (one smtp-source per target, the sessions divided
// among them), and waits until all are stored.
func runSMTP(ctx context.Context, o *options, sys *system, targets []account) (smtpResult, error) {
	addrs := make([]string, len(targets))
	for i, t := range targets {
		addrs[i] = t.address
	}
	before, err := sys.stored(addrs)
	if err != nil {
		return smtpResult{}, err
	}
	proxy, err := newLatencyProxy(sys.smtpAddr)
	if err != nil {
		return smtpResult{}, err
	}
	defer proxy.close()

	cpu0, err := sys.cpu()
	if err != nil {
		return smtpResult{}, err
	}
	start := time.Now()
	if err := smtpSource(ctx, o, proxy.addr(), targets); err != nil {
		return smtpResult{}, err
	}
	acked := time.Since(start)
	want := before + o.messages
	deadline := time.Now().Add(o.storeDeadline)
	for {
		n, err := sys.stored(addrs)
		if err != nil {
			return smtpResult{}, err
		}
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			return smtpResult{}, fmt.Errorf("%s: %d of %d messages stored %s after the last was acknowledged", sys.name, n-before, o.messages, o.storeDeadline)
		}
		select {
		case <-ctx.Done():
			return smtpResult{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	stored := time.Since(start)
	cpu1, err := sys.cpu()
	if err != nil {
		return smtpResult{}, err
	}
	lat, rejected := proxy.samples()
	return smtpResult{messages: o.messages, acked: acked, stored: stored, latencies: lat, rejected: rejected, cpu: cpu1 - cpu0}, nil
}

// smtpSource runs one smtp-source per target, concurrently, with o.sessions sessions and
// o.messages messages divided among them.
func smtpSource(ctx context.Context, o *options, addr string, targets []account) error {
	ctx, cancel := context.WithTimeout(ctx, o.storeDeadline+30*time.Minute)
	defer cancel()
	n := len(targets)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, t := range targets {
		sessions := o.sessions/n + b2i(i < o.sessions%n)
		msgs := o.messages/n + b2i(i < o.messages%n)
		if msgs == 0 {
			continue
		}
		args := []string{"-s", strconv.Itoa(max(sessions, 1)), "-m", strconv.Itoa(msgs), "-l", strconv.Itoa(o.size),
			"-M", "client.test", "-f", "load@client.test", "-t", t.address, "inet:" + addr}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, o.smtpSource, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				errs[i] = fmt.Errorf("smtp-source %v: %w\n%s", args, err, out.String())
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// latencyProxy forwards SMTP connections to a server and times, for every message, the span from
// the client's end-of-DATA (CRLF.CRLF) to the last line of the server's reply. Both systems get
// the same proxy, so its own cost is the same for both.
type latencyProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	lat      []time.Duration
	rejected int
	conns    map[net.Conn]struct{}
}

func newLatencyProxy(target string) (*latencyProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *latencyProxy) addr() string { return p.ln.Addr().String() }

func (p *latencyProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *latencyProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *latencyProxy) handle(client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)

	// Timestamps of end-of-DATA seen from the client, not yet answered. The client does not
	// pipeline (smtp-source cannot), so the next complete reply after one answers it; the time
	// is taken before the bytes are passed on, so the reply cannot come earlier.
	pending := make(chan time.Time, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		var tail []byte // the last 4 bytes of the previous read, for a marker split across reads
		for {
			n, err := client.Read(buf)
			if n > 0 {
				now := time.Now()
				// A marker is 5 bytes: one across the boundary lies within tail and the first 4
				// bytes of this read, and cannot lie within either alone.
				k := bytes.Count(buf[:n], eod)
				edge := append(append(make([]byte, 0, 8), tail...), buf[:min(n, 4)]...)
				k += bytes.Count(edge, eod)
				for ; k > 0; k-- {
					select {
					case pending <- now:
					default:
					}
				}
				joined := append(tail, buf[:min(n, 4)]...)
				if n >= 4 {
					joined = buf[n-4 : n]
				}
				tail = append(make([]byte, 0, 4), joined[max(0, len(joined)-4):]...)
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if tc, ok := server.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				return
			}
		}
	}()

	buf := make([]byte, 16<<10)
	var line []byte
	for {
		n, err := server.Read(buf)
		if n > 0 {
			now := time.Now()
			for _, b := range buf[:n] {
				line = append(line, b)
				if b != '\n' {
					continue
				}
				// The last line of a reply is "ddd text", continuation lines are "ddd-text".
				if len(line) >= 4 && line[3] != '-' {
					select {
					case t := <-pending:
						p.mu.Lock()
						p.lat = append(p.lat, now.Sub(t))
						if line[0] != '2' {
							p.rejected++
						}
						p.mu.Unlock()
					default:
					}
				}
				line = line[:0]
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := client.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// samples returns the latencies measured so far, sorted.
func (p *latencyProxy) samples() ([]time.Duration, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]time.Duration(nil), p.lat...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, p.rejected
}

func (p *latencyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// eod ends the DATA of a message (RFC 5321 §4.1.1.4).
var eod = []byte("\r\n.\r\n")
