package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pop3Result is one download-and-delete run.
type pop3Result struct {
	messages int
	bytes    int64
	elapsed  time.Duration
	// retr are the RETR latencies (command sent to the whole message read), sorted.
	retr []time.Duration
	// cpu is what the server's processes used meanwhile.
	cpu time.Duration
}

func (r pop3Result) perSec() float64   { return float64(r.messages) / r.elapsed.Seconds() }
func (r pop3Result) mbPerSec() float64 { return float64(r.bytes) / (1 << 20) / r.elapsed.Seconds() }

// runPOP3 lets one client per account log in over POP3S, RETR and DELE every message and QUIT
// (which is when the server deletes them), all accounts at once.
func runPOP3(ctx context.Context, sys *system, accts []account) (pop3Result, error) {
	addr := sys.popAddr
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	type clientResult struct {
		n     int
		bytes int64
		retr  []time.Duration
		err   error
	}
	results := make([]clientResult, len(accts))
	var wg sync.WaitGroup
	cpu0, err := sys.cpu()
	if err != nil {
		return pop3Result{}, err
	}
	start := time.Now()
	for i, a := range accts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.n, r.bytes, r.retr, r.err = pop3Drain(ctx, addr, a)
		}()
	}
	wg.Wait()
	res := pop3Result{elapsed: time.Since(start)}
	cpu1, err := sys.cpu()
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	var errs []error
	for _, r := range results {
		res.messages += r.n
		res.bytes += r.bytes
		res.retr = append(res.retr, r.retr...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	sort.Slice(res.retr, func(i, j int) bool { return res.retr[i] < res.retr[j] })
	return res, errors.Join(errs...)
}

// pop3Drain downloads and deletes every message of one account.
func pop3Drain(ctx context.Context, addr string, a account) (n int, size int64, retr []time.Duration, err error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} // the rigs' certificates are self-signed
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("pop3 %s: %w", a.address, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c := textproto.NewConn(conn)
	fail := func(step string, err error) (int, int64, []time.Duration, error) {
		return n, size, retr, fmt.Errorf("pop3 %s: %s: %w", a.address, step, err)
	}
	if _, err := pop3Reply(c); err != nil {
		return fail("greeting", err)
	}
	if _, err := pop3Cmd(c, "USER %s", a.address); err != nil {
		return fail("USER", err)
	}
	if _, err := pop3Cmd(c, "PASS %s", a.password); err != nil {
		return fail("PASS", err)
	}
	stat, err := pop3Cmd(c, "STAT")
	if err != nil {
		return fail("STAT", err)
	}
	count, err := strconv.Atoi(strings.Fields(stat + " x")[0])
	if err != nil {
		return fail("STAT", fmt.Errorf("reply %q", stat))
	}
	for i := 1; i <= count; i++ {
		t := time.Now()
		if _, err := pop3Cmd(c, "RETR %d", i); err != nil {
			return fail("RETR", err)
		}
		body, err := c.ReadDotBytes()
		if err != nil {
			return fail("RETR", err)
		}
		retr = append(retr, time.Since(t))
		size += int64(len(body))
		if _, err := pop3Cmd(c, "DELE %d", i); err != nil {
			return fail("DELE", err)
		}
		n++
	}
	if _, err := pop3Cmd(c, "QUIT"); err != nil {
		return fail("QUIT", err)
	}
	return n, size, retr, nil
}

func pop3Cmd(c *textproto.Conn, format string, args ...any) (string, error) {
	if err := c.PrintfLine(format, args...); err != nil {
		return "", err
	}
	return pop3Reply(c)
}

func pop3Reply(c *textproto.Conn) (string, error) {
	line, err := c.ReadLine()
	if err != nil {
		return "", err
	}
	if rest, ok := strings.CutPrefix(line, "+OK"); ok {
		return strings.TrimSpace(rest), nil
	}
	return "", fmt.Errorf("server said %q", line)
}
