package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
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

type sysResult struct {
	smtp *smtpResult
	pop3 *pop3Result
	imap *imapload.Result
	// imapCPU is what the server's processes used during the IMAP mix (logins included).
	imapCPU time.Duration
	idle    *idleResult
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

// row is one line of the results table: a value per system, formatted, and the number the
// ratio is computed from.
type row struct {
	metric string
	vals   []float64
	ok     []bool
	format func(float64) string
}

func (r *report) print(o *options) {
	if len(r.fsync) > 0 {
		fmt.Println()
		fmt.Println("| data disk | ops/s | p50 | p99 |")
		fmt.Println("|---|---|---|---|")
		for _, f := range r.fsync {
			fmt.Printf("| %s | %.0f | %s | %s |\n", f.label(), f.perSec(), ms(percentile(f.lat, .5)), ms(percentile(f.lat, .99)))
		}
		for _, f := range r.fsync {
			if f.writers == 1 && f.dirSync {
				fmt.Printf("\nA delivery path that makes each message durable on its own, one after another (file fsync, rename, directory fsync), tops out near %.0f messages/s here; "+
					"concurrent sessions go faster only as far as the filesystem commits their fsyncs together (ext4's journal does: see the %d-writer rows).\n",
					f.perSec(), o.sessions)
			}
		}
	}
	if len(r.systems) == 0 {
		return
	}
	num := func(f string) func(float64) string { return func(v float64) string { return fmt.Sprintf(f, v) } }
	dur := func(v float64) string { return ms(time.Duration(v)) }
	var rows []row
	add := func(metric string, format func(float64) string, get func(sysResult) (float64, bool)) {
		rw := row{metric: metric, format: format}
		for _, res := range r.results {
			v, ok := get(res)
			rw.vals, rw.ok = append(rw.vals, v), append(rw.ok, ok)
		}
		for _, ok := range rw.ok {
			if ok {
				rows = append(rows, rw)
				return
			}
		}
	}
	add(fmt.Sprintf("SMTP: messages/s, until all %d are stored", o.messages), num("%.0f"), func(s sysResult) (float64, bool) {
		if s.smtp == nil {
			return 0, false
		}
		return s.smtp.storedPerSec(), true
	})
	add("SMTP: messages/s acknowledged (250)", num("%.0f"), func(s sysResult) (float64, bool) {
		if s.smtp == nil {
			return 0, false
		}
		return s.smtp.ackedPerSec(), true
	})
	for _, q := range []float64{.5, .99} {
		add(fmt.Sprintf("SMTP: end-of-DATA to 250, p%.0f", q*100), dur, func(s sysResult) (float64, bool) {
			if s.smtp == nil {
				return 0, false
			}
			return float64(percentile(s.smtp.latencies, q)), true
		})
	}
	add("SMTP: server CPU seconds per 1,000 messages", num("%.2f"), func(s sysResult) (float64, bool) {
		if s.smtp == nil {
			return 0, false
		}
		return s.smtp.cpu.Seconds() * 1000 / float64(s.smtp.messages), true
	})
	add("POP3: messages/s downloaded and deleted", num("%.0f"), func(s sysResult) (float64, bool) {
		if s.pop3 == nil {
			return 0, false
		}
		return s.pop3.perSec(), true
	})
	add("POP3: MiB/s", num("%.1f"), func(s sysResult) (float64, bool) {
		if s.pop3 == nil {
			return 0, false
		}
		return s.pop3.mbPerSec(), true
	})
	add("POP3: RETR p99", dur, func(s sysResult) (float64, bool) {
		if s.pop3 == nil {
			return 0, false
		}
		return float64(percentile(s.pop3.retr, .99)), true
	})
	add("POP3: server CPU seconds per 1,000 messages", num("%.2f"), func(s sysResult) (float64, bool) {
		if s.pop3 == nil || s.pop3.messages == 0 {
			return 0, false
		}
		return s.pop3.cpu.Seconds() * 1000 / float64(s.pop3.messages), true
	})
	add(fmt.Sprintf("IMAP: ops/s, %d clients", o.imapClients), num("%.0f"), func(s sysResult) (float64, bool) {
		if s.imap == nil {
			return 0, false
		}
		return s.imap.OpsPerSec, true
	})
	add("IMAP: p50", dur, func(s sysResult) (float64, bool) {
		if s.imap == nil {
			return 0, false
		}
		return float64(s.imap.P50), true
	})
	add("IMAP: p99", dur, func(s sysResult) (float64, bool) {
		if s.imap == nil {
			return 0, false
		}
		return float64(s.imap.P99), true
	})
	add("IMAP: server CPU seconds per 1,000 ops", num("%.2f"), func(s sysResult) (float64, bool) {
		if s.imap == nil || s.imap.Ops == 0 {
			return 0, false
		}
		return s.imapCPU.Seconds() * 1000 / float64(s.imap.Ops), true
	})
	add("IMAP: errors", num("%.0f"), func(s sysResult) (float64, bool) {
		if s.imap == nil {
			return 0, false
		}
		return float64(s.imap.Errors), true
	})
	add(fmt.Sprintf("IDLE: KiB RSS per connection (%d)", o.idle), num("%.1f"), func(s sysResult) (float64, bool) {
		if s.idle == nil {
			return 0, false
		}
		return float64(s.idle.BytesPerConn) / 1024, true
	})
	add("IDLE: KiB PSS per connection (whole process tree)", num("%.1f"), func(s sysResult) (float64, bool) {
		if s.idle == nil {
			return 0, false
		}
		return float64(s.idle.pssPerConn) / 1024, true
	})
	add("IDLE: connections that failed", num("%.0f"), func(s sysResult) (float64, bool) {
		if s.idle == nil {
			return 0, false
		}
		return float64(s.idle.Failed), true
	})

	fmt.Println()
	hdr := "| metric |"
	sep := "|---|"
	for _, s := range r.systems {
		hdr += " " + s.name + " |"
		sep += "---|"
	}
	if len(r.systems) == 2 {
		hdr += " ratio |"
		sep += "---|"
	}
	fmt.Println(hdr)
	fmt.Println(sep)
	for _, rw := range rows {
		line := "| " + rw.metric + " |"
		for i, v := range rw.vals {
			if rw.ok[i] {
				line += " " + rw.format(v) + " |"
			} else {
				line += " – |"
			}
		}
		if len(rw.vals) == 2 {
			if rw.ok[0] && rw.ok[1] && rw.vals[1] != 0 {
				line += fmt.Sprintf(" %.2f |", rw.vals[0]/rw.vals[1])
			} else {
				line += " – |"
			}
		}
		fmt.Println(line)
	}
	for i, s := range r.systems {
		if res := r.results[i].imap; res != nil {
			fmt.Printf("\n%s, IMAP by command:\n", s.name)
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
