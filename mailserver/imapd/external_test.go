package imapd

// These tests drive the server with clients it was not written with: Python's imaplib and
// curl. They are skipped where those programs are missing.

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/internal/testutil"
)

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// pythonSession is one imaplib conversation over STARTTLS and one over implicit TLS. It prints
// what it saw as JSON.
const pythonSession = `
import imaplib, json, ssl, sys, time
host, port, tlsport, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl._create_unverified_context()
out = {}
def s(b): return b.decode() if isinstance(b, bytes) else b

m = imaplib.IMAP4(host, port)
out["caps_plain"] = sorted(m.capabilities)
try:
    m.login(user, pw)
    out["login_plain"] = "accepted"
except imaplib.IMAP4.error as e:
    out["login_plain"] = str(e)
m.starttls(ssl_context=ctx)
out["caps_tls"] = sorted(m.capabilities)
try:
    m.login(user, "wrong password")
except imaplib.IMAP4.error as e:
    out["login_wrong_password"] = str(e)
try:
    m.login("nobody@example.com", pw)
except imaplib.IMAP4.error as e:
    out["login_unknown_user"] = str(e)
m.login(user, pw)
out["caps_authenticated"] = [s(c) for c in m.capability()[1][0].split()]

typ, data = m.create("Projects/2026")
out["create"] = typ
typ, data = m.create("Entw&APw-rfe/Alt")
out["create_utf7"] = typ
typ, data = m.create("../escape")
out["create_dotdot"] = [typ, s(data[0])]
typ, data = m.create("/etc")
out["create_absolute"] = [typ, s(data[0])]
typ, data = m.create("bad&AAc-name")
out["create_control"] = [typ, s(data[0])]
typ, data = m.list()
out["list"] = [s(d) for d in data]
typ, data = m.lsub()
out["lsub"] = [s(d) for d in data]
typ, data = m.subscribe("Projects/2026")
typ, data = m.lsub('""', "Projects/*")
out["lsub_projects"] = [s(d) for d in data]

typ, data = m.select("INBOX")
out["exists"] = int(data[0])
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out["subject_field"] = s(data[0][1])
typ, data = m.fetch("1", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
out["meta"] = s(data[0])
typ, data = m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME])")
out["part1"] = s(data[0][1])
out["part2_mime"] = s(data[1][1])
typ, data = m.fetch("1", "(BODY.PEEK[]<0.20>)")
out["partial"] = s(data[0][1])
typ, data = m.fetch("1", "(BODYSTRUCTURE ENVELOPE)")
out["structure"] = s(data[0])
typ, data = m.fetch("1", "(BODY[TEXT])")
out["text"] = s(data[0][1])
out["text_flags"] = s(data[0][0])
typ, data = m.fetch("1", "(FLAGS)")
out["flags_after_read"] = s(data[0])

typ, data = m.search(None, "SUBJECT", "hello")
out["search_subject"] = s(data[0])
typ, data = m.search(None, "UNSEEN")
out["search_unseen"] = s(data[0])
typ, data = m.search(None, "BODY", "attached")
out["search_body"] = s(data[0])
typ, data = m.uid("SEARCH", None, "FROM", "carol")
out["uid_search_from"] = s(data[0])

typ, data = m.store("1", "+FLAGS", "(\\Flagged $Important)")
out["store"] = [s(d) for d in data]
typ, data = m.store("2", "+FLAGS.SILENT", "(\\Answered)")
out["store_silent"] = [s(d) if d is not None else None for d in data]

msg = b"From: alice@example.com\r\nSubject: draft\r\n\r\nunfinished\r\n"
typ, data = m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), msg)
out["append"] = [typ, s(data[0])]
typ, data = m.append("NoSuchFolder", None, None, msg)
out["append_missing"] = [typ, s(data[0])]

typ, data = m.copy("1:2", "Archive")
out["copy"] = [typ, s(data[0])]
typ, data = m.uid("MOVE", "2", "Trash")
out["move"] = typ
typ, data = m.select("INBOX")
out["exists_after_move"] = int(data[0])
m.store("1", "+FLAGS", "(\\Deleted)")
typ, data = m.expunge()
out["expunge"] = [s(d) for d in data]
typ, data = m.status("Archive", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE RECENT)")
out["status_archive"] = s(data[0])
m.logout()

t = imaplib.IMAP4_SSL(host, tlsport, ssl_context=ctx)
out["caps_implicit_tls"] = sorted(t.capabilities)
t.login(user, pw)
typ, data = t.select("Entw&APw-rfe/Alt")
out["select_utf7"] = typ
typ, data = t.select("Archive", readonly=True)
typ, data = t.fetch("1:*", "(UID FLAGS)")
out["archive_flags"] = [s(d) for d in data]
typ, data = t.store("1", "+FLAGS", "(\\Deleted)")
out["store_readonly"] = typ
t.logout()
print(json.dumps(out))
`

func TestPythonImaplib(t *testing.T) {
	python := testutil.Program(t, "python3")
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("hello world", "First message body."))
	e.deliver(alice, "INBOX", multipartMessage)

	o := runImaplib(t, python, e)
	o.checkLogin()
	o.checkNames()
	o.checkReading()
	o.checkChanges()
	checkStoreAfterImaplib(t, e)
}

// imaplibOutput is what pythonSession printed: its answers by key.
type imaplibOutput struct {
	t   *testing.T
	out map[string]any
}

// runImaplib runs pythonSession against e and parses what it printed.
func runImaplib(t *testing.T, python string, e *env) imaplibOutput {
	t.Helper()
	host, port := hostPort(t, e.addr)
	_, tlsPort := hostPort(t, e.tlsAddr)
	cmd := exec.Command(python, "-c", pythonSession, host, port, tlsPort, alice, password)
	outb, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	t.Logf("imaplib saw: %s", outb)
	var out map[string]any
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("python output %q: %v", outb, err)
	}
	return imaplibOutput{t: t, out: out}
}

func (o imaplibOutput) str(k string) string { return fmt.Sprint(o.out[k]) }

// contains fails the test unless answer k contains every one of subs.
func (o imaplibOutput) contains(k string, subs ...string) {
	o.t.Helper()
	for _, sub := range subs {
		if !strings.Contains(o.str(k), sub) {
			o.t.Errorf("%s = %s; want it to contain %q", k, o.str(k), sub)
		}
	}
}

// lacks fails the test if answer k contains any of subs.
func (o imaplibOutput) lacks(k string, subs ...string) {
	o.t.Helper()
	for _, sub := range subs {
		if strings.Contains(o.str(k), sub) {
			o.t.Errorf("%s = %s; want no %q", k, o.str(k), sub)
		}
	}
}

// checkLogin: capabilities before and after TLS, and the answers to logins.
func (o imaplibOutput) checkLogin() {
	t, str, contains, lacks := o.t, o.str, o.contains, o.lacks
	// No password before TLS: the greeting says so and LOGIN is refused.
	contains("caps_plain", "STARTTLS", "LOGINDISABLED")
	lacks("caps_plain", "AUTH=PLAIN")
	contains("login_plain", "PRIVACYREQUIRED")
	contains("caps_tls", "AUTH=PLAIN", "IMAP4REV1", "IMAP4REV2")
	lacks("caps_tls", "LOGINDISABLED", "STARTTLS")
	// Wrong password and unknown user are indistinguishable.
	contains("login_wrong_password", "[AUTHENTICATIONFAILED] Authentication failed")
	if str("login_wrong_password") != str("login_unknown_user") {
		t.Errorf("wrong password answered %s, unknown user %s", str("login_wrong_password"), str("login_unknown_user"))
	}
	contains("caps_authenticated", "IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE", "APPENDLIMIT=26214400", "LITERAL+", "BINARY")
}

// checkNames: folder names created, refused and listed.
func (o imaplibOutput) checkNames() {
	t, str, contains := o.t, o.str, o.contains
	// Names: UTF-7 in, the same UTF-7 out; escapes refused with a reason.
	if str("create") != "OK" || str("create_utf7") != "OK" {
		t.Errorf("create = %s, create_utf7 = %s", str("create"), str("create_utf7"))
	}
	contains("create_dotdot", "NO", "CANNOT", `".." is not allowed`)
	contains("create_absolute", "NO", "CANNOT", "empty level")
	contains("create_control", "NO", "CANNOT", "control character")
	// Names that can be atoms go as atoms, as Dovecot sends them.
	contains("list", `(\HasNoChildren) "/" INBOX`, `(\Sent \HasNoChildren) "/" Sent`,
		`(\HasChildren) "/" Projects`, `(\HasNoChildren) "/" Projects/2026`,
		`(\HasChildren) "/" Entw&APw-rfe`, `Entw&APw-rfe/Alt`)
	contains("lsub", `"/" INBOX`, `"/" Trash`)
	contains("lsub_projects", "Projects/2026")
}

// checkReading: SELECT and the FETCH forms a mail client uses.
func (o imaplibOutput) checkReading() {
	t, str, contains := o.t, o.str, o.contains
	if str("exists") != "2" {
		t.Errorf("SELECT INBOX: %s EXISTS, want 2", str("exists"))
	}
	if got := str("subject_field"); got != "Subject: hello world\r\n\r\n" {
		t.Errorf("BODY.PEEK[HEADER.FIELDS (SUBJECT)] = %q", got)
	}
	contains("meta", "UID 1", "RFC822.SIZE", "INTERNALDATE", "FLAGS ()")
	if got := str("part1"); got != "See the attached report." {
		t.Errorf("BODY[1] = %q", got)
	}
	contains("part2_mime", "Content-Transfer-Encoding: base64")
	if got := str("partial"); got != "From: Carol <carol@e" {
		t.Errorf("BODY[]<0.20> = %q", got)
	}
	contains("structure", `BODYSTRUCTURE ("text" "plain" ("charset" "utf-8")`, `ENVELOPE ("Mon, 02 Mar 2026 10:00:00 +0000" "hello world"`)
	if got := str("text"); got != "First message body.\r\n" {
		t.Errorf("BODY[TEXT] = %q", got)
	}
	contains("text_flags", `\Seen`)
	contains("flags_after_read", `\Seen`)
}

// checkChanges: SEARCH, STORE, APPEND, COPY, MOVE, EXPUNGE, STATUS, and EXAMINE read-only.
func (o imaplibOutput) checkChanges() {
	t, str, contains, lacks := o.t, o.str, o.contains, o.lacks
	if str("search_subject") != "1" || str("search_unseen") != "2" || str("search_body") != "2" || str("uid_search_from") != "1 2" {
		t.Errorf("searches: subject %q unseen %q body %q uid-from %q", str("search_subject"), str("search_unseen"),
			str("search_body"), str("uid_search_from"))
	}
	contains("store", `\Flagged`, `$Important`, `\Seen`)
	if str("store_silent") != "[<nil>]" {
		t.Errorf("STORE .SILENT answered %s; want no FETCH", str("store_silent"))
	}
	contains("append", "OK", "APPENDUID")
	contains("append_missing", "NO", "TRYCREATE")
	contains("copy", "OK", "COPYUID")
	if str("move") != "OK" || str("exists_after_move") != "1" {
		t.Errorf("MOVE: %s, INBOX then has %s messages", str("move"), str("exists_after_move"))
	}
	if str("expunge") != "[1]" {
		t.Errorf("EXPUNGE answered %s, want [1]", str("expunge"))
	}
	contains("status_archive", "MESSAGES 2", "UNSEEN 1", "RECENT 0", "SIZE ")
	contains("caps_implicit_tls", "AUTH=PLAIN")
	lacks("caps_implicit_tls", "STARTTLS", "LOGINDISABLED")
	if str("select_utf7") != "OK" {
		t.Errorf("SELECT of a UTF-7 name: %s", str("select_utf7"))
	}
	// Copies keep flags; EXAMINE is read-only.
	contains("archive_flags", `\Flagged`, `$Important`, `\Answered`)
	if str("store_readonly") != "NO" {
		t.Errorf("STORE after EXAMINE answered %s, want NO", str("store_readonly"))
	}
}

// checkStoreAfterImaplib checks that what the store holds and the metrics agree with the
// imaplib session.
func checkStoreAfterImaplib(t *testing.T, e *env) {
	if n := e.folder(alice, "INBOX").Status().Messages; n != 0 {
		t.Errorf("INBOX holds %d messages, want 0", n)
	}
	if n := e.folder(alice, "Trash").Status().Messages; n != 1 {
		t.Errorf("Trash holds %d messages, want 1", n)
	}
	drafts, _ := e.folder(alice, "Drafts").Messages()
	if len(drafts) != 1 || !slices.Contains(drafts[0].Flags, `\Draft`) {
		t.Errorf("Drafts = %+v, want one \\Draft message", drafts)
	}
	if _, err := e.store.Mailbox(alice); err != nil {
		t.Fatal(err)
	}
	box, _ := e.store.Mailbox(alice)
	if _, err := box.Folder("Entwürfe/Alt"); err != nil {
		t.Errorf("the UTF-7 name was not stored as UTF-8: %v", err)
	}
	if got := counter(t, e.metrics.AuthAttempts, "imap", "failure"); got != 2 {
		t.Errorf("auth failures counted %v, want 2", got)
	}
	if got := counter(t, e.metrics.Commands, "imap", "FETCH"); got < 8 {
		t.Errorf("FETCH commands counted %v", got)
	}
	if got := counter(t, e.metrics.BytesSent, "imap"); got == 0 {
		t.Errorf("no bytes sent counted")
	}
}

func TestCurl(t *testing.T) {
	curlPath := testutil.Program(t, "curl")
	e := newEnv(t)
	e.deliver(alice, "INBOX", message("hello curl", "Body for curl."))
	e.deliver(alice, "INBOX", multipartMessage)
	curl := func(args ...string) (string, error) {
		t.Helper()
		args = append([]string{"-sS", "--max-time", "20", "-u", alice + ":" + password}, args...)
		out, err := exec.Command(curlPath, args...).CombinedOutput()
		return string(out), err
	}
	plain := "imap://" + e.addr
	implicit := "imaps://" + e.tlsAddr

	// Without TLS there is nothing to log in with.
	if out, err := curl(plain + "/"); err == nil {
		t.Errorf("curl logged in without TLS: %s", out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"list over STARTTLS", []string{"--ssl-reqd", "-k", plain + "/"},
			[]string{`* LIST (\HasNoChildren) "/" INBOX`, `* LIST (\Trash \HasNoChildren) "/" Trash`}},
		{"fetch by UID", []string{"--ssl-reqd", "-k", plain + "/INBOX;UID=1"},
			[]string{"Subject: hello curl", "Body for curl."}},
		{"fetch a section", []string{"--ssl-reqd", "-k", plain + "/INBOX;UID=2;SECTION=1"},
			[]string{"See the attached report."}},
		{"fetch partial", []string{"--ssl-reqd", "-k", plain + "/INBOX;UID=1;SECTION=TEXT;PARTIAL=0.4"},
			[]string{"Body"}},
		{"search", []string{"--ssl-reqd", "-k", plain + "/INBOX?SUBJECT%20curl"},
			[]string{"* SEARCH 1"}},
		{"implicit TLS", []string{"--cacert", e.certFile, implicit + "/INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)"},
			[]string{"Subject: hello curl"}},
		{"store via custom request", []string{"-k", implicit + "/INBOX", "-X", `STORE 1 +FLAGS (\Flagged)`},
			[]string{`* 1 FETCH (UID 1 FLAGS (\Flagged \Seen))`}},
		{"examine", []string{"-k", implicit + "/", "-X", "EXAMINE INBOX"},
			[]string{"* 2 EXISTS", "* OK [UIDVALIDITY "}},
	} {
		out, err := curl(tc.args...)
		if err != nil {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
	}

	// APPEND with curl -T.
	file := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(file, []byte(message("uploaded", "by curl")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := curl("--ssl-reqd", "-k", "-T", file, plain+"/Drafts"); err != nil {
		t.Fatalf("curl -T: %v\n%s", err, out)
	}
	msgs, _ := e.folder(alice, "Drafts").Messages()
	if len(msgs) != 1 {
		t.Fatalf("Drafts holds %d messages after curl -T, want 1", len(msgs))
	}
}

// rawConn is a line-level IMAP conversation over implicit TLS.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (e *env) raw(t *testing.T) *rawConn {
	conn, err := tls.Dial("tcp", e.tlsAddr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("* OK")
	return c
}

func (c *rawConn) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads lines until one starts with prefix, and returns it.
func (c *rawConn) expect(prefix string) string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func TestRawIdleSeesDeliveriesFlagsAndExpunges(t *testing.T) {
	e := newEnv(t)
	first := e.deliver(alice, "INBOX", message("one", "1"))
	c := e.raw(t)
	c.send(fmt.Sprintf("a1 LOGIN %s %q", alice, password))
	c.expect("a1 OK")
	c.send("a2 SELECT INBOX")
	c.expect("* 1 EXISTS")
	c.expect("a2 OK [READ-WRITE]")

	// Mail that lands between two commands is reported as soon as IDLE starts.
	early := e.deliver(alice, "INBOX", message("early", "2"))
	c.send("a3 IDLE")
	c.expect("+ ")
	c.expect("* 2 EXISTS")

	// A delivery (SMTP's path into the store) shows up while idling.
	third := e.deliver(alice, "INBOX", message("three", "3"))
	c.expect("* 3 EXISTS")
	// Another IMAP session changes flags.
	other := e.client(alice, nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(uidSet(third.UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.expect(fmt.Sprintf(`* 3 FETCH (UID %d FLAGS (\Flagged))`, third.UID))
	// POP3 (or any other store user) removes a message.
	if _, err := e.folder(alice, "INBOX").Expunge([]uint32{first.UID}); err != nil {
		t.Fatal(err)
	}
	c.expect("* 1 EXPUNGE")
	c.send("DONE")
	c.expect("a3 OK")
	c.send("a4 FETCH 1:* (UID)")
	if got := c.expect("* 1 FETCH"); got != fmt.Sprintf("* 1 FETCH (UID %d)", early.UID) {
		t.Errorf("after the expunge, message 1 is %q", got)
	}
	if got := c.expect("* 2 FETCH"); got != fmt.Sprintf("* 2 FETCH (UID %d)", third.UID) {
		t.Errorf("after the expunge, message 2 is %q", got)
	}
	c.expect("a4 OK")
	c.send("a5 LOGOUT")
	c.expect("* BYE")
}
