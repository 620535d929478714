package imapd

// TestMbsync and TestOfflineimap keep a local Maildir copy of alice's mailbox in step with the
// server using two synchronisation clients written by others, mbsync (Debian isync) and
// offlineimap (Debian offlineimap3), over implicit TLS. The scenario is the same for both: a
// first run downloads 5,000 messages with their flags, a second run carries changes made on
// both sides to the other, and a third run must find nothing to do.
//
// What each tool carries, as observed with the Debian 12 versions (isync 1.4.4, offlineimap3
// 8.0.0) and written into the tools' syncTool below:
//   - mbsync syncs the system flags \Seen \Flagged \Answered \Draft (and \Deleted) as Maildir
//     letters S F R D (T). It does not sync keywords at all: a local Maildir gets none, and
//     the server keeps the ones it has when mbsync changes other flags. It adds an X-TUID
//     header field to every message it copies.
//   - offlineimap syncs the same system flags, and keywords only through its customflag_[a-z]
//     mapping of a keyword to a lowercase Maildir letter, and only from the server to the
//     Maildir (see TestOfflineimap); unmapped keywords ("Work" here) stay on the server.
//
// The tools print what they did; the third run is checked three ways: the tool's own report,
// the server's command counters and folder status, and the local files.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/store"
)

const (
	// syncMessages is how many messages INBOX holds before the first run.
	syncMessages = 5000
	// syncArchived is how many more messages the second folder holds.
	syncArchived = 20
	// syncArchive is the second folder, one level down.
	syncArchive = "Archive/2025"
	// syncTimeout bounds one run of a tool.
	syncTimeout = 5 * time.Minute
)

// syncFlags is what message i of the filled mailbox is delivered with: every third seen, and
// the rarer flags and keywords on patterns that overlap now and then. "Work" is a keyword
// neither tool maps to a Maildir letter.
func syncFlags(i int) []string {
	var flags []string
	for _, f := range []struct {
		every, at int
		flag      string
	}{
		{3, 0, `\Seen`}, {10, 1, `\Flagged`}, {7, 2, `\Answered`}, {50, 7, `\Draft`},
		{11, 3, "$Label1"}, {13, 4, "$Junk"}, {17, 5, "Work"},
	} {
		if i%f.every == f.at {
			flags = append(flags, f.flag)
		}
	}
	return flags
}

// syncMessageID names message i of the filled mailbox; the test finds messages on both sides
// by it.
func syncMessageID(i int) string { return fmt.Sprintf("<sync.%d@example.org>", i) }

// syncMessage is message i of the filled mailbox. Sizes vary from a few hundred bytes to
// 20 KB, with a few of 300 KB.
func syncMessage(i int) string {
	lines := 1 + i%37
	if i%1000 == 999 {
		lines = 5000
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: Carol <carol@example.org>\r\nTo: Alice <alice@example.com>\r\n"+
		"Subject: sync test %d\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: %s\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n", i, syncMessageID(i))
	for l := 0; l < lines; l++ {
		fmt.Fprintf(&b, "Line %d of message %d: the quick brown fox jumps over the lazy dog.\r\n", l, i)
	}
	return b.String()
}

// fillForSync delivers the mailbox of the first run: syncMessages in INBOX and syncArchived
// in syncArchive. It returns what the server holds, by folder.
func fillForSync(t *testing.T, e *env) map[string]mailState {
	t.Helper()
	box, err := e.store.Mailbox(alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.CreateFolder(syncArchive); err != nil {
		t.Fatal(err)
	}
	want := map[string]mailState{"INBOX": {}, syncArchive: {}}
	folders := map[string]*store.Folder{"INBOX": e.folder(alice, "INBOX"), syncArchive: e.folder(alice, syncArchive)}
	// Each delivery waits for two fsyncs; a few at a time keep the disk busy.
	start := time.Now()
	work := make(chan int)
	errs := make(chan error, 4)
	for w := 0; w < cap(errs); w++ {
		go func() {
			var first error
			for i := range work {
				if _, err := folders[syncFolder(i)].Append(strings.NewReader(syncMessage(i)), syncFlags(i), time.Time{}); err != nil && first == nil {
					first = fmt.Errorf("delivering message %d: %w", i, err)
				}
			}
			errs <- first
		}()
	}
	for i := 0; i < syncMessages+syncArchived; i++ {
		work <- i
		want[syncFolder(i)][syncMessageID(i)] = normalized(syncFlags(i))
	}
	close(work)
	for w := 0; w < cap(errs); w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("delivered %d messages in %s", syncMessages+syncArchived, time.Since(start).Round(time.Millisecond))
	return want
}

// syncFolder is where message i of the filled mailbox is delivered.
func syncFolder(i int) string {
	if i < syncMessages {
		return "INBOX"
	}
	return syncArchive
}

func normalized(flags []string) []string {
	flags = slices.Clone(flags)
	slices.Sort(flags)
	return slices.Compact(flags)
}

// mailState is what one side holds in one folder: the flags of each message, by Message-ID.
type mailState map[string][]string

func (s mailState) clone() mailState {
	c := make(mailState, len(s))
	for id, flags := range s {
		c[id] = slices.Clone(flags)
	}
	return c
}

// set adds or removes one flag of a message.
func (s mailState) set(t *testing.T, id, flag string, on bool) {
	t.Helper()
	flags, ok := s[id]
	if !ok {
		t.Fatalf("%s is not in the expected state", id)
	}
	if on {
		s[id] = normalized(append(flags, flag))
	} else {
		s[id] = slices.DeleteFunc(flags, func(f string) bool { return f == flag })
	}
}

// only keeps the flags in keep: what the other side of a tool can carry.
func (s mailState) only(keep []string) mailState {
	c := make(mailState, len(s))
	for id, flags := range s {
		c[id] = slices.DeleteFunc(slices.Clone(flags), func(f string) bool { return !slices.Contains(keep, f) })
	}
	return c
}

// diff lists how got differs from want, a few lines at most, or returns "".
func (want mailState) diff(got mailState) string {
	var lines []string
	for id, wf := range want {
		gf, ok := got[id]
		switch {
		case !ok:
			lines = append(lines, fmt.Sprintf("missing %s (flags %v)", id, wf))
		case !slices.Equal(gf, wf):
			lines = append(lines, fmt.Sprintf("%s has flags %v, want %v", id, gf, wf))
		}
	}
	for id, gf := range got {
		if _, ok := want[id]; !ok {
			lines = append(lines, fmt.Sprintf("unexpected %s (flags %v)", id, gf))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	slices.Sort(lines)
	n := len(lines)
	if n > 12 {
		lines = append(lines[:12], "...")
	}
	return fmt.Sprintf("%d messages differ:\n\t%s", n, strings.Join(lines, "\n\t"))
}

// messageID returns the Message-ID field of a message's header.
func messageID(r *bufio.Reader) (string, error) {
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Message-ID") {
			return strings.TrimSpace(value), nil
		}
		if line == "" || err != nil {
			return "", fmt.Errorf("no Message-ID in the header (%v)", err)
		}
	}
}

// serverMessages reads what the store holds in one of alice's folders, by Message-ID.
func serverMessages(t *testing.T, e *env, folder string) map[string]store.Message {
	t.Helper()
	f := e.folder(alice, folder)
	msgs, _ := f.Messages()
	out := make(map[string]store.Message, len(msgs))
	for _, m := range msgs {
		fh, err := f.Open(m.UID)
		if err != nil {
			t.Fatalf("server %s UID %d: %v", folder, m.UID, err)
		}
		id, err := messageID(bufio.NewReader(fh))
		fh.Close()
		if err != nil {
			t.Fatalf("server %s UID %d: %v", folder, m.UID, err)
		}
		if _, dup := out[id]; dup {
			t.Errorf("server %s holds %s twice", folder, id)
		}
		out[id] = m
	}
	return out
}

func serverState(t *testing.T, e *env, folder string) mailState {
	t.Helper()
	s := mailState{}
	for id, m := range serverMessages(t, e, folder) {
		s[id] = normalized(m.Flags)
	}
	return s
}

// serverContent returns the content of the message with the given Message-ID in a folder.
func serverContent(t *testing.T, e *env, folder, id string) []byte {
	t.Helper()
	f := e.folder(alice, folder)
	msgs, _ := f.Messages()
	for _, m := range msgs {
		fh, err := f.Open(m.UID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := messageID(bufio.NewReader(fh))
		if err == nil && got == id {
			_, err = fh.Seek(0, 0)
			var b bytes.Buffer
			if err == nil {
				_, err = b.ReadFrom(fh)
			}
			fh.Close()
			if err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}
		fh.Close()
	}
	t.Fatalf("server %s has no message %s", folder, id)
	return nil
}

// maildirLetters are the Maildir info letters of the system flags, which both tools use.
var maildirLetters = map[byte]string{'D': `\Draft`, 'F': `\Flagged`, 'R': `\Answered`, 'S': `\Seen`, 'T': `\Deleted`}

// localMessage is one file of a local Maildir.
type localMessage struct {
	path  string
	flags []string
}

// maildir reads a local Maildir folder (new/ and cur/): its messages by Message-ID. Lowercase
// info letters are keywords through letters; an unknown letter shows as "?x" so that a
// mismatch names it.
func maildir(t *testing.T, dir string, letters map[byte]string) map[string]localMessage {
	t.Helper()
	out := map[string]localMessage{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("local Maildir: %v", err)
		}
		for _, ent := range entries {
			path := filepath.Join(dir, sub, ent.Name())
			fh, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			id, err := messageID(bufio.NewReader(fh))
			fh.Close()
			if err != nil {
				t.Fatalf("local %s: %v", path, err)
			}
			if prev, dup := out[id]; dup {
				t.Errorf("local Maildir holds %s twice: %s and %s", id, prev.path, path)
			}
			var flags []string
			if _, info, ok := strings.Cut(ent.Name(), ":2,"); ok {
				for _, c := range []byte(info) {
					f, ok := maildirLetters[c]
					if !ok {
						f, ok = letters[c]
					}
					if !ok {
						f = "?" + string(c)
					}
					flags = append(flags, f)
				}
			}
			out[id] = localMessage{path: path, flags: normalized(flags)}
		}
	}
	return out
}

func localState(t *testing.T, dir string, letters map[byte]string) mailState {
	t.Helper()
	s := mailState{}
	for id, m := range maildir(t, dir, letters) {
		s[id] = m.flags
	}
	return s
}

// setLocalFlag changes a Maildir letter of a local message the way a mail reader does: the
// file moves to cur/ with the new info.
func setLocalFlag(t *testing.T, m localMessage, letter byte, on bool) {
	t.Helper()
	dir, name := filepath.Split(m.path)
	base, info, _ := strings.Cut(name, ":2,")
	letters := []byte(strings.ReplaceAll(info, string(letter), ""))
	if on {
		letters = append(letters, letter)
	}
	slices.Sort(letters)
	to := filepath.Join(filepath.Dir(filepath.Clean(dir)), "cur", base+":2,"+string(letters))
	if err := os.Rename(m.path, to); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every file under a local root with its size: unchanged by a run that
// changes nothing.
func snapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		out = append(out, fmt.Sprintf("%s %d", rel, info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeCommands are the commands that change the server's mailbox.
var writeCommands = []string{"APPEND", "STORE", "EXPUNGE", "COPY", "MOVE", "CREATE", "DELETE", "RENAME"}

func writeCounts(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, c := range writeCommands {
		out[c] = counter(t, e.metrics.Commands, "imap", c)
	}
	return out
}

// syncTool is one synchronisation client: how to run it, where it keeps each folder and what
// it carries between the sides.
type syncTool struct {
	name string
	// command is one run of the tool, killed when ctx ends.
	command func(ctx context.Context) *exec.Cmd
	// dir is the local Maildir of a server folder.
	dir func(folder string) string
	// root holds the local Maildirs (and nothing the tool rewrites on a run that changes
	// nothing).
	root string
	// letters are the keywords the tool maps to lowercase Maildir letters.
	letters map[byte]string
	// pushesKeywords is whether a keyword set locally reaches the server.
	pushesKeywords bool
	// addsFields are header fields the tool adds to the messages it copies, either way.
	addsFields []string
	// report reads the output of a run: whether the tool says it changed nothing, and a
	// summary of what it says it did.
	report func(out []byte) (idle bool, summary string)
}

// carried are the flags the tool carries between the sides.
func (tool *syncTool) carried() []string {
	var out []string
	for _, f := range maildirLetters {
		out = append(out, f)
	}
	for _, f := range tool.letters {
		out = append(out, f)
	}
	return out
}

// runSync runs the tool once, bounded, and fails t with its output if it fails.
func runSync(t *testing.T, tool *syncTool, what string) ([]byte, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	cmd := tool.command(ctx)
	cmd.WaitDelay = 5 * time.Second
	var server0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &server0)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var server1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &server1)
	if ctx.Err() != nil {
		t.Fatalf("%s: %s did not finish within %s; its output:\n%s", what, tool.name, syncTimeout, tail(out))
	}
	if err != nil {
		t.Fatalf("%s: %s failed: %v; its output:\n%s", what, tool.name, err, tail(out))
	}
	_, summary := tool.report(out)
	// CPU time tells whose the wall time was on a shared machine: the tool's (with its
	// children) or this process's, which is mostly the server's.
	t.Logf("%s: %s took %s (CPU: %s %s, server process %s) and reports %s", what, tool.name,
		took.Round(time.Millisecond), tool.name, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Round(time.Millisecond),
		(cpuTime(server1) - cpuTime(server0)).Round(time.Millisecond), summary)
	return out, took
}

func cpuTime(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// tail is the end of a long output, with a terminal's carriage returns as line ends.
func tail(b []byte) string {
	const max = 16 << 10
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
	if len(s) > max {
		return "...\n" + s[len(s)-max:]
	}
	return s
}

// checkSide fails t unless one side of one folder holds want.
func checkSide(t *testing.T, when, side, folder string, want, got mailState) {
	t.Helper()
	if d := want.diff(got); d != "" {
		t.Errorf("%s, %s %s: %s", when, side, folder, d)
	}
}

// syncScenario is the test of one tool: first run, changes on both sides, second run, third
// run that must change nothing.
func syncScenario(t *testing.T, e *env, tool *syncTool) {
	want := fillForSync(t, e)

	_, took := runSync(t, tool, "first run")
	t.Logf("%s: first sync of %d messages took %s", tool.name, syncMessages+syncArchived, took.Round(time.Millisecond))
	for _, folder := range []string{"INBOX", syncArchive} {
		checkSide(t, "after the first run", "server", folder, want[folder], serverState(t, e, folder))
		checkSide(t, "after the first run", "local", folder, want[folder].only(tool.carried()),
			localState(t, tool.dir(folder), tool.letters))
	}
	checkLocalContent(t, tool)
	if t.Failed() {
		t.FailNow()
	}

	inbox := changeBothSides(t, e, tool, want["INBOX"])

	runSync(t, tool, "second run")
	checkSide(t, "after the second run", "server", "INBOX", inbox, serverState(t, e, "INBOX"))
	checkSide(t, "after the second run", "local", "INBOX", inbox.only(tool.carried()),
		localState(t, tool.dir("INBOX"), tool.letters))
	checkSide(t, "after the second run", "server", syncArchive, want[syncArchive], serverState(t, e, syncArchive))
	checkSide(t, "after the second run", "local", syncArchive, want[syncArchive].only(tool.carried()),
		localState(t, tool.dir(syncArchive), tool.letters))
	for i, body := range localNew {
		id := fmt.Sprintf("<local.%d@example.com>", i)
		if got := withoutFields(serverContent(t, e, "INBOX", id), tool.addsFields); string(got) != strings.ReplaceAll(body, "\n", "\r\n") {
			t.Errorf("the server stored the local message %s as %q; want %q", id, got, body)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	counts := writeCounts(t, e)
	_, before := e.folder(alice, "INBOX").Messages()
	local := snapshot(t, tool.root)
	out, _ := runSync(t, tool, "third run")
	if idle, summary := tool.report(out); !idle {
		t.Errorf("third run: %s reports changes: %s\nits output:\n%s", tool.name, summary, tail(out))
	}
	for c, n := range writeCounts(t, e) {
		if n != counts[c] {
			t.Errorf("third run: %s sent %v %s commands; want none, as nothing changed", tool.name, n-counts[c], c)
		}
	}
	if _, after := e.folder(alice, "INBOX").Messages(); after != before {
		t.Errorf("third run: server INBOX went from %+v to %+v; want it unchanged", before, after)
	}
	if d := setDiff(local, snapshot(t, tool.root)); d != "" {
		t.Errorf("third run: %s changed local files:\n%s", tool.name, d)
	}
}

// checkLocalContent compares every downloaded INBOX message with what was delivered, line
// endings aside: Maildir files may use LF.
func checkLocalContent(t *testing.T, tool *syncTool) {
	t.Helper()
	local := maildir(t, tool.dir("INBOX"), tool.letters)
	bad := 0
	for i := 0; i < syncMessages; i++ {
		m, ok := local[syncMessageID(i)]
		if !ok {
			continue // reported by the state check
		}
		got, err := os.ReadFile(m.path)
		if err != nil {
			t.Fatal(err)
		}
		got = withoutFields(got, tool.addsFields)
		want := syncMessage(i)
		if string(got) != want && string(got) != strings.ReplaceAll(want, "\r\n", "\n") {
			if bad++; bad <= 3 {
				t.Errorf("local copy of %s (%d bytes) differs from the delivered message (%d bytes); begins %q",
					syncMessageID(i), len(got), len(want), clip(string(got), 200))
			}
		}
	}
	if bad > 3 {
		t.Errorf("... %d local copies differ in all", bad)
	}
}

// withoutFields removes header fields a tool adds to the messages it copies.
func withoutFields(msg []byte, names []string) []byte {
	var out []byte
	inHeader := true
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if inHeader && len(bytes.TrimRight(line, "\r\n")) == 0 {
			inHeader = false
		}
		if inHeader && slices.ContainsFunc(names, func(n string) bool {
			return len(line) > len(n) && line[len(n)] == ':' && strings.EqualFold(string(line[:len(n)]), n)
		}) {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// localNew are the messages written into the local INBOX before the second run: two in new/,
// unread, one in cur/ seen and flagged.
var localNew = []string{
	"From: alice@example.com\nTo: bob@example.com\nSubject: local 0\nMessage-ID: <local.0@example.com>\n\nWritten locally.\n",
	"From: alice@example.com\nTo: bob@example.com\nSubject: local 1\nMessage-ID: <local.1@example.com>\n\nWritten locally too.\n",
	"From: alice@example.com\nTo: bob@example.com\nSubject: local 2\nMessage-ID: <local.2@example.com>\n\nRead and flagged.\n",
}

// changeBothSides changes the local INBOX and the server's between the first and second run,
// on different messages so that no change conflicts, and returns the INBOX both sides should
// hold after the second run (keywords the tool does not carry included: the server keeps
// them).
func changeBothSides(t *testing.T, e *env, tool *syncTool, inbox mailState) mailState {
	t.Helper()
	want := inbox.clone()
	id := syncMessageID

	// Local: read, flag, unread, delete, add; and, for a tool that maps keywords, a keyword.
	local := maildir(t, tool.dir("INBOX"), tool.letters)
	for i := 100; i < 110; i++ {
		setLocalFlag(t, local[id(i)], 'S', true)
		want.set(t, id(i), `\Seen`, true)
	}
	for i := 110; i < 115; i++ {
		setLocalFlag(t, local[id(i)], 'F', true)
		want.set(t, id(i), `\Flagged`, true)
	}
	for _, i := range []int{120, 123, 126} { // seen when delivered
		setLocalFlag(t, local[id(i)], 'S', false)
		want.set(t, id(i), `\Seen`, false)
	}
	if tool.pushesKeywords {
		for k, letter := range slices.Sorted(maps.Keys(tool.letters)) {
			for _, i := range []int{130 + 2*k, 131 + 2*k} {
				setLocalFlag(t, local[id(i)], letter, true)
				want.set(t, id(i), tool.letters[letter], true)
			}
		}
	}
	for _, i := range []int{140, 141, 142} {
		if err := os.Remove(local[id(i)].path); err != nil {
			t.Fatal(err)
		}
		delete(want, id(i))
	}
	dir := tool.dir("INBOX")
	for i, body := range localNew {
		name := fmt.Sprintf("%d.local%d.kubemail-test", time.Now().Unix(), i)
		path := filepath.Join(dir, "new", name)
		flags := []string{}
		if i == 2 {
			path = filepath.Join(dir, "cur", name+":2,FS")
			flags = []string{`\Flagged`, `\Seen`}
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("<local.%d@example.com>", i)] = normalized(flags)
	}

	// Server: flag, unread, add a keyword, expunge, deliver.
	f := e.folder(alice, "INBOX")
	onServer := serverMessages(t, e, "INBOX")
	uid := func(i int) []uint32 { return []uint32{onServer[id(i)].UID} }
	for i := 200; i < 205; i++ {
		mustSetFlags(t, f, uid(i), store.FlagsAdd, `\Flagged`)
		want.set(t, id(i), `\Flagged`, true)
	}
	for _, i := range []int{210, 213} {
		mustSetFlags(t, f, uid(i), store.FlagsRemove, `\Seen`)
		want.set(t, id(i), `\Seen`, false)
	}
	for _, i := range []int{215, 216} {
		mustSetFlags(t, f, uid(i), store.FlagsAdd, "$Label1", `\Answered`)
		want.set(t, id(i), "$Label1", true)
		want.set(t, id(i), `\Answered`, true)
	}
	for _, i := range []int{220, 221, 222} {
		if _, err := f.Expunge(uid(i)); err != nil {
			t.Fatal(err)
		}
		delete(want, id(i))
	}
	for i := syncMessages + syncArchived; i < syncMessages+syncArchived+2; i++ {
		e.deliver(alice, "INBOX", syncMessage(i), syncFlags(i)...)
		want[id(i)] = normalized(syncFlags(i))
	}
	return want
}

func mustSetFlags(t *testing.T, f *store.Folder, uids []uint32, op store.FlagOp, flags ...string) {
	t.Helper()
	if _, err := f.SetFlags(uids, op, flags); err != nil {
		t.Fatal(err)
	}
}

// setDiff lists the lines only in a or only in b.
func setDiff(a, b []string) string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// mbsyncCounters matches the progress counters mbsync prints on a terminal, the last time at
// the end: "C: 1/1  B: 8/8  F: +0/0 *0/0 #0/0  N: +5020/5020 *0/0 #0/0", channels and boxes
// done, then for the far (F) and near (N) side the messages added (+), flag changes (*) and
// deletions (#), each done/planned.
var mbsyncCounters = regexp.MustCompile(`C: \d+/\d+\s+B: \d+/\d+\s+F: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)\s+N: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)`)

// mbsyncReport reads mbsync's last counters: whether they say it changed nothing on either
// side, and the counters.
func mbsyncReport(out []byte) (bool, string) {
	all := mbsyncCounters.FindAllSubmatch(out, -1)
	if len(all) == 0 {
		return false, "no progress counters in its output"
	}
	last := all[len(all)-1]
	for _, n := range last[1:] {
		if string(n) != "0" {
			return false, string(last[0])
		}
	}
	return true, string(last[0])
}

// offlineimapActions match the lines offlineimap's basic UI prints for each change it makes.
var offlineimapActions = regexp.MustCompile(`(?m)^.*(Creating folder|Copy message UID|Deleting \d+ messages|Adding flag|Deleting flag|Adding label|Deleting label|Setting labels).*$`)

// offlineimapReport reads what offlineimap's basic UI printed: whether it finished without
// changing anything, and how many changes of each kind it made.
func offlineimapReport(out []byte) (bool, string) {
	if !bytes.Contains(out, []byte("*** Finished account")) {
		return false, "no end of the account's sync in its output"
	}
	kinds := map[string]int{}
	for _, m := range offlineimapActions.FindAllSubmatch(out, -1) {
		kinds[string(m[1])]++
	}
	if len(kinds) == 0 {
		return true, "no changes"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%d %q lines", kinds[k], k))
	}
	return false, strings.Join(parts, ", ")
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func TestMbsync(t *testing.T) {
	mbsync := testutil.Program(t, "mbsync")
	script := testutil.Program(t, "script")
	e := newEnv(t)
	dir := t.TempDir()
	host, port := hostPort(t, e.tlsAddr)
	cfg := filepath.Join(dir, "mbsyncrc")
	passFile := filepath.Join(dir, "password")
	mail := filepath.Join(dir, "mail")
	if err := os.WriteFile(passFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	// The local Maildir is thrown away with the test: FSync no spares it mbsync's fsyncs.
	config := fmt.Sprintf(`FSync no

IMAPAccount alice
# Generous: the race detector slows the server several times.
Timeout 240
Host %s
Port %s
User %s
PassCmd "cat %s"
SSLType IMAPS
CertificateFile %s
SystemCertificates no

IMAPStore server
Account alice

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel alice
Far :server:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
`, host, port, alice, passFile, e.certFile, mail, mail)
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	tool := &syncTool{
		name: "mbsync",
		// mbsync prints its counters only on a terminal: script(1) gives it one.
		command: func(ctx context.Context) *exec.Cmd {
			return exec.CommandContext(ctx, script, "-qec", shellQuote(mbsync)+" -c "+shellQuote(cfg)+" -a", "/dev/null")
		},
		dir:  func(folder string) string { return filepath.Join(mail, filepath.FromSlash(folder)) },
		root: mail,
		// mbsync 1.4 marks every message it copies with an X-TUID field, which it uses to
		// find a copy whose UID it was not told.
		addsFields: []string{"X-TUID"},
		report:     mbsyncReport,
	}
	syncScenario(t, e, tool)
}

func TestOfflineimap(t *testing.T) {
	offlineimap := testutil.Program(t, "offlineimap")
	e := newEnv(t)
	dir := t.TempDir()
	host, port := hostPort(t, e.tlsAddr)
	cfg := filepath.Join(dir, "offlineimaprc")
	passFile := filepath.Join(dir, "password")
	mail := filepath.Join(dir, "mail")
	if err := os.WriteFile(passFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	letters := map[byte]string{'a': "$Label1", 'b': "$Junk"}
	// The local Maildir is thrown away with the test: fsync = false spares it offlineimap's
	// fsyncs.
	config := fmt.Sprintf(`[general]
accounts = alice
fsync = false
socktimeout = 240
metadata = %s

[Account alice]
localrepository = local
remoterepository = server

[Repository local]
type = Maildir
localfolders = %s
sep = /
customflag_a = %s
customflag_b = %s

[Repository server]
type = IMAP
remotehost = %s
remoteport = %s
ssl = yes
sslcacertfile = %s
remoteuser = %s
remotepassfile = %s
`, filepath.Join(dir, "metadata"), mail, letters['a'], letters['b'], host, port, e.certFile, alice, passFile)
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	tool := &syncTool{
		name: "offlineimap",
		command: func(ctx context.Context) *exec.Cmd {
			return exec.CommandContext(ctx, offlineimap, "-c", cfg, "-o", "-u", "basic")
		},
		dir:     func(folder string) string { return filepath.Join(mail, filepath.FromSlash(folder)) },
		root:    mail,
		letters: letters,
		// offlineimap 8.0.0 carries keywords from the server to the Maildir only. A keyword
		// letter set locally goes out as an empty flag list ("UID STORE 128,130 +FLAGS ()":
		// its IMAP side maps only the letters of system flags) while its state file records
		// it as synced, and the next run takes the letter away again locally.
		pushesKeywords: false,
		report:         offlineimapReport,
	}
	syncScenario(t, e, tool)
}
