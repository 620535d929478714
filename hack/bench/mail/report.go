package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/kubemail/kubemail/hack/bench/imapload"
	"github.com/kubemail/kubemail/test/testenv"
)

func repoRoot() string { return testenv.RepoRoot() }

type idleResult struct {
	imapload.IdleResult
	pssPerConn int64
}

// imapRound is one run of the IMAP mix and the CPU time the server spent on it (logins
// included).
type imapRound struct {
	imapload.Result
	cpu time.Duration
}

// sysResult is what the loads measured on one system, one entry per round.
type sysResult struct {
	smtp []smtpResult
	pop3 []pop3Result
	imap []imapRound
	idle []idleResult
	// idleZ are the idle connections with COMPRESS=DEFLATE; noCompress is set when the server
	// does not offer it.
	idleZ      []idleResult
	noCompress bool
}

type report struct {
	fsync   []fsyncResult
	systems []*system
	results []sysResult
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

// row is one line of the results table: per system, the values of the rounds.
type row struct {
	metric string
	vals   [][]float64
	// na marks the systems that cannot do what the row measures.
	na     []bool
	format func(float64) string
}

// median of the values (the mean of the middle two for an even count).
func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (rw row) cell(i int) string {
	v := rw.vals[i]
	if len(v) == 0 {
		if rw.na != nil && rw.na[i] {
			return "n/a"
		}
		return "–"
	}
	out := rw.format(median(v))
	if len(v) > 1 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		out += " (" + rw.format(s[0]) + " – " + rw.format(s[len(s)-1]) + ")"
	}
	return out
}

func (r *report) print(o *options) {
	if len(r.fsync) > 0 {
		fmt.Println()
		fmt.Println("| data disk | ops/s | p50 | p99 |")
		fmt.Println("|---|---|---|---|")
		for _, f := range r.fsync {
			fmt.Printf("| %s | %.0f | %s | %s |\n", f.label(), f.perSec(), ms(percentile(f.lat, .5)), ms(percentile(f.lat, .99)))
		}
		find := func(writers int, dirSync bool) (fsyncResult, bool) {
			for _, f := range r.fsync {
				if f.writers == writers && f.dirSync == dirSync {
					return f, true
				}
			}
			return fsyncResult{}, false
		}
		if one, ok := find(1, false); ok {
			fmt.Printf("\nWhat this disk allows a delivery path that makes each message durable before answering:\n")
			fmt.Printf("- one fsync per message, messages one after another: at most %.0f messages/s (p50 %s per fsync)\n", one.perSec(), ms(percentile(one.lat, .5)))
			if commit, ok := find(1, true); ok {
				fmt.Printf("- a whole Maildir commit per message (file fsync, rename, directory fsync, as kubemail's store does), one after another: at most %.0f messages/s\n", commit.perSec())
			}
			if many, ok := find(o.sessions, false); ok {
				fmt.Printf("- %d sessions each committing its own message: %.0f fsyncs/s in all (%.1fx one writer), as far as the filesystem commits concurrent fsyncs together (group commit in its journal)", o.sessions, many.perSec(), many.perSec()/one.perSec())
				if mc, ok := find(o.sessions, true); ok {
					fmt.Printf("; %.0f whole Maildir commits/s", mc.perSec())
				}
				fmt.Println()
			}
		}
	}
	if len(r.systems) == 0 {
		return
	}
	num := func(f string) func(float64) string { return func(v float64) string { return fmt.Sprintf(f, v) } }
	dur := func(v float64) string { return ms(time.Duration(v)) }
	var rows []row
	add := func(metric string, format func(float64) string, get func(sysResult) []float64) {
		rw := row{metric: metric, format: format}
		any := false
		for _, res := range r.results {
			v := get(res)
			rw.vals = append(rw.vals, v)
			any = any || len(v) > 0
		}
		if any {
			rows = append(rows, rw)
		}
	}
	// addCompressed is add for a row of the compressed idle connections: n/a for a server
	// without COMPRESS=DEFLATE.
	addCompressed := func(metric string, format func(float64) string, get func(idleResult) float64) {
		n := len(rows)
		add(metric, format, func(s sysResult) (out []float64) {
			for _, x := range s.idleZ {
				out = append(out, get(x))
			}
			return out
		})
		if len(rows) > n {
			for _, res := range r.results {
				rows[n].na = append(rows[n].na, res.noCompress)
			}
		}
	}
	smtp := func(f func(smtpResult) float64) func(sysResult) []float64 {
		return func(s sysResult) (out []float64) {
			for _, x := range s.smtp {
				out = append(out, f(x))
			}
			return out
		}
	}
	pop := func(f func(pop3Result) float64) func(sysResult) []float64 {
		return func(s sysResult) (out []float64) {
			for _, x := range s.pop3 {
				out = append(out, f(x))
			}
			return out
		}
	}
	imap := func(f func(imapRound) float64) func(sysResult) []float64 {
		return func(s sysResult) (out []float64) {
			for _, x := range s.imap {
				out = append(out, f(x))
			}
			return out
		}
	}
	idle := func(f func(idleResult) float64) func(sysResult) []float64 {
		return func(s sysResult) (out []float64) {
			for _, x := range s.idle {
				out = append(out, f(x))
			}
			return out
		}
	}
	add(fmt.Sprintf("SMTP: messages/s, until all %d are stored", o.messages), num("%.0f"), smtp(smtpResult.storedPerSec))
	add("SMTP: messages/s acknowledged (250)", num("%.0f"), smtp(smtpResult.ackedPerSec))
	add("SMTP: end-of-DATA to 250, p50", dur, smtp(func(x smtpResult) float64 { return float64(percentile(x.latencies, .5)) }))
	add("SMTP: end-of-DATA to 250, p99", dur, smtp(func(x smtpResult) float64 { return float64(percentile(x.latencies, .99)) }))
	add("SMTP: server CPU seconds per 1,000 messages", num("%.2f"), smtp(func(x smtpResult) float64 { return x.cpu.Seconds() * 1000 / float64(x.messages) }))
	add("POP3: messages/s downloaded and deleted", num("%.0f"), pop(pop3Result.perSec))
	add("POP3: MiB/s", num("%.1f"), pop(pop3Result.mbPerSec))
	add("POP3: RETR p99", dur, pop(func(x pop3Result) float64 { return float64(percentile(x.retr, .99)) }))
	add("POP3: server CPU seconds per 1,000 messages", num("%.2f"), pop(func(x pop3Result) float64 { return x.cpu.Seconds() * 1000 / float64(max(x.messages, 1)) }))
	add(fmt.Sprintf("IMAP: ops/s, %d clients", o.imapClients), num("%.0f"), imap(func(x imapRound) float64 { return x.OpsPerSec }))
	add("IMAP: p50", dur, imap(func(x imapRound) float64 { return float64(x.P50) }))
	add("IMAP: p99", dur, imap(func(x imapRound) float64 { return float64(x.P99) }))
	add("IMAP: server CPU seconds per 1,000 ops", num("%.2f"), imap(func(x imapRound) float64 { return x.cpu.Seconds() * 1000 / float64(max(x.Ops, 1)) }))
	add("IMAP: errors", num("%.0f"), imap(func(x imapRound) float64 { return float64(x.Errors) }))
	add(fmt.Sprintf("idle IMAP connections: KiB RSS per connection (%d)", o.idle), num("%.1f"), idle(func(x idleResult) float64 { return float64(x.BytesPerConn) / 1024 }))
	add("idle IMAP connections: KiB PSS per connection (whole process tree)", num("%.1f"), idle(func(x idleResult) float64 { return float64(x.pssPerConn) / 1024 }))
	add("idle IMAP connections that failed", num("%.0f"), idle(func(x idleResult) float64 { return float64(x.Failed) }))
	addCompressed(fmt.Sprintf("idle IMAP connections with COMPRESS=DEFLATE, on top: KiB RSS per connection (%d)", o.idleCompress), num("%.1f"),
		func(x idleResult) float64 { return float64(x.BytesPerConn) / 1024 })
	addCompressed("idle IMAP connections with COMPRESS=DEFLATE, on top: KiB PSS per connection (whole process tree)", num("%.1f"),
		func(x idleResult) float64 { return float64(x.pssPerConn) / 1024 })
	addCompressed("idle IMAP connections with COMPRESS=DEFLATE that failed", num("%.0f"), func(x idleResult) float64 { return float64(x.Failed) })

	fmt.Println()
	hdr := "| metric |"
	sep := "|---|"
	for _, s := range r.systems {
		hdr += " " + s.name + " |"
		sep += "---|"
	}
	// Ratios of the first system's medians to each other system's.
	for _, s := range r.systems[1:] {
		hdr += " " + r.systems[0].name + " / " + s.name + " |"
		sep += "---|"
	}
	fmt.Println(hdr)
	fmt.Println(sep)
	for _, rw := range rows {
		line := "| " + rw.metric + " |"
		for i := range rw.vals {
			line += " " + rw.cell(i) + " |"
		}
		for i := 1; i < len(rw.vals); i++ {
			if len(rw.vals[0]) > 0 && len(rw.vals[i]) > 0 && median(rw.vals[i]) != 0 {
				line += fmt.Sprintf(" %.2f |", median(rw.vals[0])/median(rw.vals[i]))
			} else {
				line += " – |"
			}
		}
		fmt.Println(line)
	}
	for i, s := range r.systems {
		for round, res := range r.results[i].imap {
			fmt.Printf("\n%s, IMAP by command (round %d):\n", s.name, round+1)
			for _, op := range []string{imapload.OpConnect, imapload.OpLogin, imapload.OpSelect, imapload.OpFetchHeaders, imapload.OpFetchBody,
				imapload.OpSearch, imapload.OpStore, imapload.OpAppend, imapload.OpExpunge, imapload.OpNoop, imapload.OpLogout} {
				if st, ok := res.ByOp[op]; ok {
					fmt.Printf("  %-14s %7d ok %4d errors  p50 %9s  p99 %9s\n", op, st.Count, st.Errors, ms(st.P50), ms(st.P99))
				}
			}
		}
	}
}

// printMachine prints what the numbers depend on.
func printMachine(ctx context.Context, dataDir string) {
	out := func(name string, args ...string) string {
		b, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(b))
	}
	cpu := "?"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	fmt.Printf("machine: %d CPUs (%s), MemTotal %s, kernel %s\n", runtime.NumCPU(), cpu, mem, out("uname", "-r"))
	fmt.Printf("data: %s on %s\n", dataDir, out("findmnt", "-no", "FSTYPE,SOURCE,OPTIONS", "-T", dataDir))
	fmt.Printf("go: %s; postfix %s; dovecot %s\n", runtime.Version(),
		out("dpkg-query", "-W", "-f=${Version}", "postfix"), out("dpkg-query", "-W", "-f=${Version}", "dovecot-core"))
	fmt.Printf("load average at the start: %s\n", loadavg())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
