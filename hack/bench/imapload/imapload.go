// Package imapload is an IMAP load generator for benchmarks: many clients log in, select INBOX
// and run a mix of the commands mail clients send (header and body fetches, searches, flag
// changes, appends, expunges, reconnects), and it measures operations per second and latency per
// command. IdleConns measures a server's memory per connection idling in IDLE.
//
// It speaks only IMAP4rev1 plus IDLE and UIDPLUS (with fallbacks when UIDPLUS is missing), and
// COMPRESS=DEFLATE for the idle connections that ask for it, so it runs against kubemail's mail
// server and against other servers such as Dovecot alike. It talks
// only to the address it is given.
package imapload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Account is a mailbox the load logs in to.
type Account struct{ User, Password string }

// Config says where the load goes and how much of it there is.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// TLS connects with implicit TLS (IMAPS). StartTLS connects in clear text and upgrades with
	// STARTTLS before logging in. With neither, passwords travel in clear text, which servers
	// that require TLS for logins refuse. Certificates are not verified (benchmarks use
	// self-signed ones).
	TLS      bool
	StartTLS bool
	// Accounts are shared round-robin among the clients: client i uses Accounts[i%len].
	Accounts []Account
	// Mailbox is the folder every client selects (INBOX).
	Mailbox string
	// Clients is how many connections run the mix at once (50); for IdleConns, how many
	// connections are being opened at once.
	Clients int
	// Duration is how long Run measures (30s), after every client has logged in and selected.
	Duration time.Duration
	// OpsPerClient, if set, ends a client after that many operations even before Duration.
	OpsPerClient int
	// Seed makes the choice of operations, messages and search terms repeatable.
	Seed uint64
	// Mix weighs the operations; nil means DefaultMix.
	Mix Mix
	// ServerCPU, if set, reads the CPU time the server has used so far (ProcCPU and
	// ProcTreeCPU read it for local processes); Run then reports the server's CPU time per
	// operation, which a busy or shared machine disturbs much less than operations per second.
	ServerCPU func() (time.Duration, error)
	// IdleSettle is how long IdleConns waits after the last connection started idling before
	// it measures (3s).
	IdleSettle time.Duration
	// Compress has IdleConns' connections send COMPRESS DEFLATE (RFC 4978) after SELECT and
	// idle with both directions compressed; the server must announce COMPRESS=DEFLATE
	// (HasCapability tells).
	Compress bool
}

// Operation names, as they appear in Result.ByOp. Every IMAP command sent is one operation;
// EXPUNGE is preceded by a STORE of \Deleted, counted as a STORE.
const (
	OpLogin        = "LOGIN"
	OpStartTLS     = "STARTTLS"
	OpSelect       = "SELECT"
	OpLogout       = "LOGOUT"
	OpFetchHeaders = "FETCH headers"
	OpFetchBody    = "FETCH body"
	OpSearch       = "UID SEARCH"
	OpStore        = "STORE"
	OpAppend       = "APPEND"
	OpExpunge      = "EXPUNGE"
	OpNoop         = "NOOP"
	// OpConnect is TCP connect, TLS handshake and greeting. It is reported in ByOp but is not
	// an IMAP command and does not count in Result.Ops.
	OpConnect = "connect"
)

// Mix is the relative weight of each step of a client's loop. A step is one or more
// operations: Expunge is STORE +FLAGS.SILENT (\Deleted) and UID EXPUNGE of a message the
// client appended (an APPEND when it has none), Reconnect is LOGOUT, connect, LOGIN, SELECT.
type Mix struct {
	FetchHeaders, FetchBody, Search, Store, Append, Expunge, Noop, Reconnect int
}

// DefaultMix is what a population of desktop and mobile clients roughly sends: mostly reading
// (header listings of a screenful of messages, one message body), marking messages, some
// searches, new mail arriving and old mail being deleted, the odd reconnect.
var DefaultMix = Mix{FetchHeaders: 25, FetchBody: 20, Search: 12, Store: 15, Append: 10, Expunge: 10, Noop: 6, Reconnect: 2}

func (m Mix) total() int {
	return m.FetchHeaders + m.FetchBody + m.Search + m.Store + m.Append + m.Expunge + m.Noop + m.Reconnect
}

// OpStats is the outcome of one kind of operation. Latencies are percentiles over every
// successful sample (nearest rank), not averages.
type OpStats struct {
	Count  int // successful
	Errors int
	P50    time.Duration
	P99    time.Duration
	Max    time.Duration
}

// Result is the outcome of Run.
type Result struct {
	// Ops is how many IMAP commands succeeded within the measured window; OpsPerSec is Ops
	// divided by Elapsed.
	Ops       int
	Errors    int
	Elapsed   time.Duration
	OpsPerSec float64
	// P50 and P99 are over every successful command of every kind.
	P50, P99 time.Duration
	ByOp     map[string]OpStats
	// ServerCPU is the CPU time the server used during the window (with Config.ServerCPU),
	// CPUPerOp that divided by Ops.
	ServerCPU time.Duration
	CPUPerOp  time.Duration
}

func (c *Config) defaults() error {
	if c.Addr == "" {
		return errors.New("imapload: no server address")
	}
	if len(c.Accounts) == 0 {
		return errors.New("imapload: no accounts")
	}
	if c.TLS && c.StartTLS {
		return errors.New("imapload: TLS and StartTLS are exclusive")
	}
	if c.Mailbox == "" {
		c.Mailbox = "INBOX"
	}
	if c.Clients <= 0 {
		c.Clients = 50
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if c.Mix.total() <= 0 {
		return errors.New("imapload: the mix has no positive weight")
	}
	if c.IdleSettle <= 0 {
		c.IdleSettle = 3 * time.Second
	}
	return nil
}

// Run connects cfg.Clients clients, lets each log in and select the mailbox, then runs the mix
// on all of them for cfg.Duration (or until ctx ends) and reports what they measured. Errors
// are counted and the client carries on (reconnecting if the connection broke); Run fails only
// if no client could start or no operation succeeded.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = newWorker(&cfg, i)
	}

	// Log everyone in first, so the measured window is the mix alone.
	var wg sync.WaitGroup
	startErrs := make([]error, len(workers))
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			startErrs[i] = w.connect()
		}()
	}
	wg.Wait()
	started := 0
	for i, w := range workers {
		if startErrs[i] == nil {
			started++
		}
		w.rec.reset() // setup is not part of the measurement
	}
	if started == 0 {
		return Result{}, fmt.Errorf("imapload: no client could log in: %w", errors.Join(startErrs...))
	}

	var cpuBefore, cpuAfter time.Duration
	readCPU := func(into *time.Duration) {
		if cfg.ServerCPU != nil {
			*into, _ = cfg.ServerCPU()
		}
	}
	readCPU(&cpuBefore)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	// The window is what the operations are divided by: a client still connecting when it
	// closes finishes later, but nothing it does then is counted.
	var elapsed time.Duration
	windowClosed := make(chan struct{})
	context.AfterFunc(ctx, func() {
		elapsed = time.Since(start)
		readCPU(&cpuAfter)
		close(windowClosed)
	})
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	cancel()
	<-windowClosed
	for _, w := range workers {
		w.close()
	}

	all := newRecorder()
	for _, w := range workers {
		all.merge(w.rec)
	}
	res := all.result(elapsed)
	if cfg.ServerCPU != nil && cpuAfter > cpuBefore {
		res.ServerCPU = cpuAfter - cpuBefore
		if res.Ops > 0 {
			res.CPUPerOp = res.ServerCPU / time.Duration(res.Ops)
		}
	}
	if res.Ops == 0 {
		return res, fmt.Errorf("imapload: every operation failed (%d errors)", res.Errors)
	}
	return res, nil
}

// recorder collects latency samples and error counts per operation.
type recorder struct {
	samples map[string][]time.Duration
	errors  map[string]int
}

func newRecorder() *recorder {
	return &recorder{samples: map[string][]time.Duration{}, errors: map[string]int{}}
}

func (r *recorder) reset() { *r = *newRecorder() }

func (r *recorder) record(op string, d time.Duration, err error) {
	if err != nil {
		r.errors[op]++
		return
	}
	r.samples[op] = append(r.samples[op], d)
}

func (r *recorder) merge(o *recorder) {
	for op, s := range o.samples {
		r.samples[op] = append(r.samples[op], s...)
	}
	for op, n := range o.errors {
		r.errors[op] += n
	}
}

func (r *recorder) result(elapsed time.Duration) Result {
	res := Result{Elapsed: elapsed, ByOp: map[string]OpStats{}}
	var all []time.Duration
	for op, s := range r.samples {
		st := stats(s)
		st.Errors = r.errors[op]
		res.ByOp[op] = st
		if op != OpConnect {
			res.Ops += len(s)
			all = append(all, s...)
		}
	}
	for op, n := range r.errors {
		if _, ok := res.ByOp[op]; !ok {
			res.ByOp[op] = OpStats{Errors: n}
		}
		res.Errors += n
	}
	st := stats(all)
	res.P50, res.P99 = st.P50, st.P99
	if elapsed > 0 {
		res.OpsPerSec = float64(res.Ops) / elapsed.Seconds()
	}
	return res
}

// stats sorts s in place and returns its count and percentiles.
func stats(s []time.Duration) OpStats {
	if len(s) == 0 {
		return OpStats{}
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return OpStats{Count: len(s), P50: percentile(s, 0.50), P99: percentile(s, 0.99), Max: s[len(s)-1]}
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// rng is a client's own random source, derived from the seed and the client's index.
func rng(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(i)+0x9e3779b97f4a7c15))
}
