package sieve

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pigeonholeDifferences are the cases where kubemail deliberately acts otherwise than
// Pigeonhole's sieve-test; docs/sieve.md lists them. The value says why.
var pigeonholeDifferences = map[string]string{
	"fileinto empty mailbox": "an empty mailbox name is a runtime error (implicit keep); " +
		"Pigeonhole files into \"\" and fails later",
	"index with date": "date :index n :last counts from the last field as RFC 5260 says; " +
		"Pigeonhole 2.3 counts from the first",
	"probe: casemap value order": "string :value ignores ASCII case under i;ascii-casemap (RFC 4790), " +
		"as header :value does in both; Pigeonhole 2.3's string test does not",
}

// pigeonholeAccepts are scripts this package refuses and Pigeonhole accepts.
var pigeonholeAccepts = map[string]string{
	"require \"date\";\nif date \"date\" \"fortnight\" \"1\" { keep; }":          "an unknown date part is refused at upload; Pigeonhole only warns and the test is false",
	"require \"date\";\nif date :zone \"CET\" \"date\" \"year\" \"1\" { keep; }": "a :zone not of the form +hhmm is refused at upload; Pigeonhole only warns and uses local time",
}

// TestPigeonholeRefusals checks that the scripts this package refuses Pigeonhole refuses too,
// so that an upload kubemail rejects is not one a Dovecot user could expect to work.
func TestPigeonholeRefusals(t *testing.T) {
	bin := sieveTest(t)
	dir := sharedTempDir(t)
	for i, c := range compileErrorCases {
		script := filepath.Join(dir, fmt.Sprintf("bad%d.sieve", i))
		message := filepath.Join(dir, "bad.eml")
		if err := os.WriteFile(script, []byte(c.script), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(message, []byte(msgPlain), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := pigeonholeCommand(bin, script, message, defaultEnv).CombinedOutput()
		accepted := err == nil || !strings.Contains(string(out), "failed to compile")
		if _, listed := pigeonholeAccepts[c.script]; accepted != listed {
			t.Errorf("%q: Pigeonhole accepted=%v, listed=%v; we say %q\n%s", c.script, accepted, listed, c.want, out)
		}
	}
}

func sieveTest(t *testing.T) string {
	bin, err := exec.LookPath("sieve-test")
	if err != nil {
		t.Fatal("sieve-test (Dovecot Pigeonhole) is not installed; it is the reference this test compares with. " +
			"Install it with: apt-get install -y dovecot-sieve (Debian/Ubuntu)")
	}
	return bin
}

// sharedTempDir is a directory sieve-test can use after dropping privileges: run as root
// it switches to mail_uid, which must reach the files and write a compiled script next to
// each; t.TempDir's parent is closed to other users.
func sharedTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "sieve-pigeonhole-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func pigeonholeCommand(bin, script, message string, env Envelope) *exec.Cmd {
	args := []string{"-f", env.From, "-r", env.To, "-a", env.To}
	if os.Geteuid() == 0 {
		args = append(args, "-o", "mail_uid=65534", "-o", "mail_gid=65534")
	}
	cmd := exec.Command(bin, append(args, script, message)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	return cmd
}

// TestPigeonholeDifferential runs the table cases through Dovecot Pigeonhole's sieve-test
// and through this package, and compares the actions both take.
func TestPigeonholeDifferential(t *testing.T) {
	bin := sieveTest(t)
	dir := sharedTempDir(t)
	compared := 0
	for i, c := range allCases() {
		if skip := pigeonholeSkip(c); skip != "" {
			continue
		}
		compared++
		theirs, err := runPigeonhole(bin, dir, i, c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		ours := ourNormalised(c)
		if strings.Join(ours, "\n") == strings.Join(theirs, "\n") {
			if why, ok := pigeonholeDifferences[c.name]; ok {
				t.Errorf("%s: listed as a difference (%s) but both agree now: %q", c.name, why, ours)
			}
			continue
		}
		if _, ok := pigeonholeDifferences[c.name]; ok {
			continue
		}
		t.Errorf("%s: actions differ\n kubemail   %q\n pigeonhole %q\nscript:\n%s", c.name, ours, theirs, c.script)
	}
	t.Logf("compared %d cases with %s", compared, bin)
}

// pigeonholeSkip names why a case cannot be compared.
func pigeonholeSkip(c evalCase) string {
	switch {
	case strings.Contains(c.script, "currentdate"):
		return "depends on the current time"
	case c.env != nil && c.env.From == "":
		return "sieve-test refuses the null sender"
	case c.env != nil && c.env.Auth != "":
		return "sieve-test has no authenticated sender"
	case strings.Contains(c.script, "ereject"):
		return "Pigeonhole 2.3 does not know ereject"
	case strings.Contains(c.script, ":quoteregex"):
		return "Pigeonhole 2.3 does not know set :quoteregex"
	}
	return ""
}

func runPigeonhole(bin, dir string, i int, c evalCase) ([]string, error) {
	script := filepath.Join(dir, fmt.Sprintf("case%d.sieve", i))
	message := filepath.Join(dir, fmt.Sprintf("case%d.eml", i))
	raw := c.msg
	if raw == "" {
		raw = msgPlain
	}
	if err := os.WriteFile(script, []byte(c.script), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(message, []byte(raw), 0o644); err != nil {
		return nil, err
	}
	env := defaultEnv
	if c.env != nil {
		env = *c.env
	}
	cmd := pigeonholeCommand(bin, script, message, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	runtimeError := strings.Contains(stderr.String(), "resolved with successful implicit keep")
	if err != nil && !runtimeError {
		return nil, fmt.Errorf("sieve-test: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	return parsePigeonhole(stdout.String(), stderr.String()), nil
}

// parsePigeonhole turns sieve-test's report into the normalised lines ourNormalised
// produces: one line per action, flags lowercased and sorted, sorted as a whole.
func parsePigeonhole(out, errOut string) []string {
	var lines []string
	implicit := false
	cur := -1
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimLeft(strings.TrimRight(l, "\r"), " \t")
		switch {
		case t == "Implicit keep:":
			implicit = true
		case strings.HasPrefix(t, "* store message in folder: "):
			prefix := "store "
			if implicit {
				prefix = "implicit store "
			}
			lines = append(lines, prefix+strings.TrimPrefix(t, "* store message in folder: "))
			cur = len(lines) - 1
		case strings.HasPrefix(t, "+ add IMAP flags: ") && cur >= 0:
			lines[cur] += " flags=" + normFlags(strings.Fields(strings.TrimPrefix(t, "+ add IMAP flags: ")))
		case strings.HasPrefix(t, "* redirect message to: "):
			lines = append(lines, "redirect "+strings.Trim(strings.TrimPrefix(t, "* redirect message to: "), "<>"))
		case strings.HasPrefix(t, "* reject message with reason: "):
			lines = append(lines, "reject "+strings.TrimPrefix(t, "* reject message with reason: "))
		case t == "* discard":
			lines = append(lines, "discard")
		case t == "* send vacation message:":
			lines = append(lines, "vacation")
			cur = len(lines) - 1
		case strings.HasPrefix(t, "=> seconds : ") && cur >= 0:
			lines[cur] += " seconds=" + strings.TrimPrefix(t, "=> seconds : ")
		case strings.HasPrefix(t, "=> subject : ") && cur >= 0:
			lines[cur] += " subject=" + strings.TrimPrefix(t, "=> subject : ")
		}
	}
	if strings.Contains(errOut, "resolved with successful implicit keep") {
		lines = append(lines, "error", "implicit store INBOX")
	}
	sort.Strings(lines)
	return dropImplicitBesideInbox(lines)
}

// dropImplicitBesideInbox folds Pigeonhole's implicit keep into an explicit store into
// INBOX, as Evaluate does; Pigeonhole lists both and stores once.
func dropImplicitBesideInbox(lines []string) []string {
	explicit := false
	for _, l := range lines {
		explicit = explicit || l == "store INBOX" || strings.HasPrefix(l, "store INBOX flags=")
	}
	if !explicit {
		return lines
	}
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "implicit store INBOX") {
			out = append(out, l)
		}
	}
	return out
}

func normFlags(flags []string) string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = strings.ToLower(f)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func ourNormalised(c evalCase) []string {
	s, err := Compile(c.script)
	if err != nil {
		return []string{"compile error: " + err.Error()}
	}
	raw := c.msg
	if raw == "" {
		raw = msgPlain
	}
	env := defaultEnv
	if c.env != nil {
		env = *c.env
	}
	res := s.Evaluate(ParseMessage([]byte(raw)), env, testNow)
	var lines []string
	for _, a := range res.Actions {
		lines = append(lines, normalisedAction(a))
	}
	if res.Err != nil {
		lines = append(lines, "error")
	}
	sort.Strings(lines)
	return lines
}

func normalisedAction(a Action) string {
	switch a.Kind {
	case Keep, FileInto:
		box := a.Mailbox
		if a.Kind == Keep {
			box = "INBOX"
		}
		line := "store " + box
		if a.Implicit {
			line = "implicit " + line
		}
		if len(a.Flags) > 0 {
			line += " flags=" + normFlags(a.Flags)
		}
		return line
	case Redirect:
		return "redirect " + a.Address
	case Reject:
		return "reject " + strings.NewReplacer("\r", "?", "\n", "?").Replace(a.Reason)
	case Discard:
		return "discard"
	}
	v := a.Vacation
	line := fmt.Sprintf("vacation seconds=%d", v.Days*86400)
	if v.Subject != "" {
		line += " subject=" + v.Subject
	}
	return line
}
