package imapd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// knownFile lists the differences between Dovecot and kubemail that the test accepts today,
// one per line as "script:tag: reason". Its header says which reasons there are: deliberate
// choices (also in docs/imap.md), extensions one of the servers lacks, and differences that
// follow from an earlier one.
const knownFile = diffScriptDir + "/known.txt"

// TestDovecotDifferential plays the scripts of testdata/imapdiff against Debian's Dovecot and
// against kubemail, each from an empty mailbox, and compares every command's responses after
// the normalisation of dovecot_normalise_test.go. A difference must be listed in known.txt;
// a listed difference that no longer occurs must be removed from it.
func TestDovecotDifferential(t *testing.T) {
	dovecotBinary(t)
	known, err := loadKnown(knownFile)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(diffScriptDir, "*.imap"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in %s: %v", diffScriptDir, err)
	}
	var mu sync.Mutex
	ran := map[string]bool{}
	seen := map[string]bool{}
	var total, matching, listed int
	// Scripts run side by side, a few at a time (not t.Parallel, which go test limits to
	// GOMAXPROCS): most of their time is spent waiting for answers.
	slots := make(chan struct{}, 6)
	var wg sync.WaitGroup
	for _, path := range paths {
		sc, err := loadScript(path)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			t.Run(sc.name, func(t *testing.T) {
				res := compareScript(t, sc, known)
				mu.Lock()
				defer mu.Unlock()
				ran[sc.name] = true
				for _, k := range res.seen {
					seen[k] = true
				}
				total, matching, listed = total+res.total, matching+res.matching, listed+res.listed
				t.Logf("%s: %d commands, %d match Dovecot, %d known differences", sc.name, res.total, res.matching, res.listed)
			})
		}()
	}
	wg.Wait()
	for _, key := range sortedKeys(known) {
		reason := known[key]
		script, _, _ := strings.Cut(key, ":")
		if ran[script] && !seen[key] {
			t.Errorf("%s lists %q (%s), which is no command of %s.imap: remove it", knownFile, key, reason, script)
		}
	}
	t.Logf("total: %d commands, %d match Dovecot, %d known differences", total, matching, listed)
}

type scriptResult struct {
	total, matching, listed int
	// seen are the keys (script:tag) of the commands compared.
	seen []string
}

// compareScript runs one script on both servers and reports differences not in known, and
// entries of known that no longer differ.
func compareScript(t *testing.T, sc *diffScript, known map[string]string) (res scriptResult) {
	dc := startDovecot(t)
	e := newEnv(t)
	targets := []diffTarget{
		{name: "Dovecot", addr: dc.addr, tlsAddr: dc.tlsAddr, clientTLS: dc.clientTLS},
		{name: "kubemail", addr: e.addr, tlsAddr: e.tlsAddr, clientTLS: e.clientTLS},
	}
	start := time.Now()
	var trs [2]*diffTranscript
	var errs [2]error
	done := make(chan int)
	for i := range targets {
		go func() {
			trs[i], errs[i] = sc.run(targets[i])
			done <- i
		}()
	}
	<-done
	<-done
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", targets[i].name, err)
		}
	}
	want, got := trs[0], trs[1]
	nd, nk := newNormaliser(start), newNormaliser(start)
	for _, tag := range want.tags {
		key := sc.name + ":" + tag
		res.seen = append(res.seen, key)
		res.total++
		cmd := strings.Join(want.lines[tag], " ")
		d, k := nd.normalise(cmd, want.responses[tag]), nk.normalise(cmd, got.responses[tag])
		same := strings.Join(d, "\n") == strings.Join(k, "\n")
		reason, isKnown := known[key]
		switch {
		case same && isKnown:
			t.Errorf("%s: %s now matches Dovecot (fixed: remove it from %s; it said %q)\n%s",
				key, commandText(want, tag), knownFile, reason, indent(d))
			res.matching++
		case same:
			res.matching++
		case isKnown:
			res.listed++
		default:
			t.Errorf("%s: %s differs from Dovecot (- Dovecot, + kubemail):\n%s"+
				"fix kubemail, or if the difference is right list it in %s as\n  %s: <reason>",
				key, commandText(want, tag), lineDiff(d, k), knownFile, key)
		}
	}
	for _, tag := range got.tags {
		if _, ok := want.responses[tag]; !ok {
			t.Errorf("%s:%s: kubemail answered a command Dovecot did not reach: %q", sc.name, tag, got.responses[tag])
		}
	}
	if want.commands != got.commands {
		t.Errorf("%s: Dovecot was sent %d commands, kubemail %d", sc.name, want.commands, got.commands)
	}
	return res
}

func commandText(tr *diffTranscript, tag string) string {
	if tag == "greeting" {
		return "(greeting)"
	}
	lines := tr.lines[tag]
	for i, l := range lines {
		if len(l) > 200 {
			lines[i] = l[:200] + "..."
		}
	}
	return "C: " + strings.Join(lines, " / ")
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// lineDiff is a line diff of a against b (longest common subsequence): "-" lines only in a,
// "+" only in b.
func lineDiff(a, b []string) string {
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&out, "    %s\n", a[i])
			i, j = i+1, j+1
		case j == len(b) || (i < len(a) && lcs[i+1][j] >= lcs[i][j+1]):
			fmt.Fprintf(&out, "  - %s\n", a[i])
			i++
		default:
			fmt.Fprintf(&out, "  + %s\n", b[j])
			j++
		}
	}
	return out.String()
}

// loadKnown reads known.txt: "script:tag: reason" lines, # comments.
func loadKnown(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		script, rest, ok1 := strings.Cut(line, ":")
		tag, reason, ok2 := strings.Cut(rest, ":")
		reason = strings.TrimSpace(reason)
		if !ok1 || !ok2 || strings.ContainsAny(tag, " \t") || reason == "" {
			return nil, fmt.Errorf("%s:%d: want \"script:tag: reason\", got %q", path, n, line)
		}
		key := script + ":" + tag
		if _, dup := known[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", path, n, key)
		}
		known[key] = reason
	}
	return known, sc.Err()
}

// sortedKeys is for stable messages.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
