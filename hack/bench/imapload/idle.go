package imapload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// IdleResult is the outcome of IdleConns.
type IdleResult struct {
	// Conns is how many connections were idling when the memory was measured; Failed how
	// many could not be opened, logged in, selected or put into IDLE.
	Conns  int
	Failed int
	// RSSBefore is the server's resident memory before the first connection, RSSAfter with
	// all of them idling (after Config.IdleSettle).
	RSSBefore, RSSAfter int64
	// BytesPerConn is (RSSAfter-RSSBefore)/Conns.
	BytesPerConn int64
	// Open is how long opening all connections took.
	Open time.Duration
	// FirstError is the first failure, if any.
	FirstError error
}

// IdleConns measures what idle connections cost a server: it measures the server's memory,
// opens n connections (cfg.Clients at a time), each logging in, selecting the mailbox and
// starting IDLE (after COMPRESS DEFLATE with cfg.Compress), waits cfg.IdleSettle, measures
// again, then ends IDLE and logs out on all of them. measure returns the server's resident
// memory (ProcRSS reads it for a local process). The accounts are shared round-robin, as in Run.
func IdleConns(ctx context.Context, cfg Config, n int, measure func() (rssBytes int64, err error)) (IdleResult, error) {
	res, release, err := IdleConnsHeld(ctx, cfg, n, measure)
	release()
	return res, err
}

// IdleConnsHeld is IdleConns that leaves the connections idling until release is called, so
// that more can be measured on top of them: compressed connections added to plain ones grow
// the server's memory by what they cost, where connections opened after others closed would
// first reuse the memory those left behind. release is never nil.
func IdleConnsHeld(ctx context.Context, cfg Config, n int, measure func() (rssBytes int64, err error)) (_ IdleResult, release func(), _ error) {
	var res IdleResult
	release = func() {}
	if err := cfg.defaults(); err != nil {
		return res, release, err
	}
	before, err := measure()
	if err != nil {
		return res, release, fmt.Errorf("measuring memory before: %w", err)
	}
	res.RSSBefore = before

	idlers := make([]idler, n)
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(cfg.Clients, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				idlers[i], errs[i] = openIdler(&cfg, cfg.Accounts[i%len(cfg.Accounts)])
				if errs[i] != nil {
					errs[i] = fmt.Errorf("connection %d: %w", i, errs[i])
				}
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			continue
		}
		work <- i
	}
	close(work)
	wg.Wait()
	res.Open = time.Since(start)

	release = func() {
		// End IDLE and log out politely, so the server sees what a client leaving does.
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(cfg.Clients, 1))
		for _, id := range idlers {
			if id == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				id.close()
			}()
		}
		wg.Wait()
	}

	for i, err := range errs {
		if err != nil {
			res.Failed++
			if res.FirstError == nil {
				res.FirstError = err
			}
		} else if idlers[i] != nil {
			res.Conns++
		}
	}
	if res.Conns == 0 {
		return res, release, fmt.Errorf("imapload: no connection reached IDLE: %w", res.FirstError)
	}

	select {
	case <-time.After(cfg.IdleSettle):
	case <-ctx.Done():
		return res, release, ctx.Err()
	}
	// A connection the server dropped while we waited is not idling.
	for _, id := range idlers {
		if id != nil && !id.alive() {
			res.Conns--
			res.Failed++
			if res.FirstError == nil {
				res.FirstError = errors.New("the server closed an idling connection")
			}
		}
	}
	after, err := measure()
	if err != nil {
		return res, release, fmt.Errorf("measuring memory after: %w", err)
	}
	res.RSSAfter = after
	if res.Conns > 0 {
		res.BytesPerConn = (after - before) / int64(res.Conns)
	}
	return res, release, nil
}

// idler is one connection idling in IDLE.
type idler interface {
	// alive tells whether the server still holds the connection.
	alive() bool
	// close ends IDLE, logs out and closes the connection.
	close()
}

// openIdler connects as acct and starts idling, through go-imap's client or, with
// cfg.Compress, through deflateIdler.
func openIdler(cfg *Config, acct Account) (idler, error) {
	if cfg.Compress {
		return openDeflateIdler(cfg, acct)
	}
	c, err := login(cfg, func(string, time.Duration, error) {}, acct)
	if err != nil {
		return nil, err
	}
	if _, err = c.Select(cfg.Mailbox, nil).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	idle, err := c.Idle()
	if err != nil {
		c.Close()
		return nil, err
	}
	return clientIdler{c: c, idle: idle}, nil
}

// clientIdler idles through go-imap's client.
type clientIdler struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

func (id clientIdler) alive() bool { return !isClosed(id.c) }

func (id clientIdler) close() {
	if id.idle.Close() == nil && id.idle.Wait() == nil {
		id.c.Logout().Wait()
	}
	id.c.Close()
}

// ProcRSS returns a function that reads the resident memory (VmRSS) of a local process from
// /proc/<pid>/status, for IdleConns.
func ProcRSS(pid int) func() (int64, error) {
	return func() (int64, error) {
		return procStatus(pid, "VmRSS")
	}
}

// procStatus reads one "kB" field of /proc/<pid>/status in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, field, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// ProcTreeRSS returns a function that adds up the resident memory (VmRSS) of a local process
// and all its descendants, for servers that run a process per connection or per user (such as
// Dovecot). Pages shared between the processes are counted in each: ProcTreePSS does not.
func ProcTreeRSS(pid int) func() (int64, error) {
	return func() (int64, error) {
		return treeSum(pid, func(p int) (int64, error) { return procStatus(p, "VmRSS") })
	}
}

// ProcTreePSS is ProcTreeRSS with proportional set sizes (/proc/<pid>/smaps_rollup): a page
// shared by k processes counts 1/k in each, so the sum is what the tree really holds. Reading
// another user's smaps_rollup needs the same privileges as ptrace.
func ProcTreePSS(pid int) func() (int64, error) {
	return func() (int64, error) { return treeSum(pid, procPSS) }
}

func procPSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/smaps_rollup has no Pss", pid)
}

// treeSum adds up size over pid and its descendants. A process that exits while being read
// is skipped.
func treeSum(pid int, size func(int) (int64, error)) (int64, error) {
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// The command name in parentheses may hold spaces; the parent pid is the second field
		// after it.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	total, err := size(pid)
	if err != nil {
		return 0, err
	}
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if n, err := size(p); err == nil {
			total += n
		}
		queue = append(queue, children[p]...)
	}
	return total, nil
}

// clockTicks is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTicks = 100

// ProcCPU returns a function that reads the CPU time (user and system) a local process has
// used, for Config.ServerCPU.
func ProcCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		own, _, err := procTimes(pid)
		return own, err
	}
}

// ProcTreeCPU is ProcCPU for a process and its descendants, including the descendants that
// have exited and been waited for (a server that runs a process per connection).
func ProcTreeCPU(pid int) func() (time.Duration, error) {
	return func() (time.Duration, error) {
		_, reaped, err := procTimes(pid)
		if err != nil {
			return 0, err
		}
		live, err := treeSum(pid, func(p int) (int64, error) {
			own, _, err := procTimes(p)
			return int64(own), err
		})
		return time.Duration(live) + reaped, err
	}
}

// procTimes reads utime+stime and cutime+cstime from /proc/<pid>/stat.
func procTimes(pid int) (own, children time.Duration, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	// Fields after the name start with state (field 3); utime is field 14.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var t [4]int64
	for k := range t {
		if t[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	tick := time.Second / clockTicks
	return time.Duration(t[0]+t[1]) * tick, time.Duration(t[2]+t[3]) * tick, nil
}
