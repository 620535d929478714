package pop3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/testutil"
)

// These tests drive the server with clients we did not write: Python's poplib and curl.

// pyPrelude connects the scripts to the server: argv is host, plain port, TLS port, user,
// password. Each script fills out, printed as JSON at the end.
const pyPrelude = `
import base64, json, poplib, ssl, sys
host, port, tls_port, user, password = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = {}

def text(b):
    return b.decode() if isinstance(b, bytes) else str(b)

def refused(f, *args):
    try:
        return "unexpected success: " + repr(f(*args))
    except poplib.error_proto as e:
        return text(e.args[0])

def lines(resp):
    return [text(l) for l in resp[1]]

def connect():
    p = poplib.POP3(host, port, timeout=10)
    p.stls(ctx)
    return p

def login():
    p = connect()
    p.user(user)
    p.pass_(password)
    return p
`

func runPython(t *testing.T, e *testEnv, user, script string) map[string]any {
	t.Helper()
	py := testutil.Program(t, "python3")
	host, port, _ := strings.Cut(e.addr, ":")
	_, tlsPort, _ := strings.Cut(e.tlsAddr, ":")
	cmd := exec.Command(py, "-c", pyPrelude+script+"\nprint(json.dumps(out))\n", host, port, tlsPort, user, password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("python timed out; stderr:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("python: %v\nstderr:\n%s", err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("python output %q: %v", stdout.String(), err)
	}
	return out
}

func str(v any) string { return fmt.Sprint(v) }

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func TestPoplib(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain, msgDotty, msgLong)
	out := runPython(t, e, alice, `
p = poplib.POP3(host, port, timeout=10)
out["capa_plain"] = sorted(p.capa().keys())
out["user_plain"] = refused(p.user, user)
p.stls(ctx)
out["capa_tls"] = sorted(p.capa().keys())
p.user(user)
out["wrong_password"] = refused(p.pass_, "wrong")
p.user("nobody@example.com")
out["unknown_user"] = refused(p.pass_, password)
p.user(user)
p.pass_(password)
out["stat"] = list(p.stat())
out["list"] = lines(p.list())
out["uidl"] = lines(p.uidl())
out["top"] = lines(p.top(3, 1))
out["retr"] = "\r\n".join(lines(p.retr(2))) + "\r\n"

# A second session is refused while this one holds the maildrop.
q = connect()
q.user(user)
out["in_use"] = refused(q.pass_, password)
q.quit()

p.dele(1)
out["stat_after_dele"] = list(p.stat())
p.rset()
out["stat_after_rset"] = list(p.stat())
p.dele(1)
out["quit"] = text(p.quit())

p = login()
out["stat_next"] = list(p.stat())
out["uidl_next"] = lines(p.uidl())
p.quit()
`)
	caps := strs(out["capa_plain"])
	if !slices.Contains(caps, "STLS") || slices.Contains(caps, "USER") || slices.Contains(caps, "SASL") {
		t.Errorf("CAPA before TLS: %q", caps)
	}
	if got := str(out["user_plain"]); got != "-ERR [AUTH] TLS required; use STLS" {
		t.Errorf("USER before TLS: %q", got)
	}
	caps = strs(out["capa_tls"])
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING", "IMPLEMENTATION", "EXPIRE", "LOGIN-DELAY"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA after STLS lacks %s: %q", want, caps)
		}
	}
	if slices.Contains(caps, "STLS") {
		t.Errorf("CAPA after STLS still offers STLS")
	}
	if w, u := str(out["wrong_password"]), str(out["unknown_user"]); w != "-ERR [AUTH] Authentication failed" || u != w {
		t.Errorf("wrong password %q, unknown user %q", w, u)
	}
	total := len(msgPlain) + len(msgDotty) + len(msgLong)
	if got := str(out["stat"]); got != fmt.Sprintf("[3 %d]", total) {
		t.Errorf("stat: %s", got)
	}
	if got, want := strs(out["list"]), []string{fmt.Sprintf("1 %d", len(msgPlain)), fmt.Sprintf("2 %d", len(msgDotty)), fmt.Sprintf("3 %d", len(msgLong))}; !slices.Equal(got, want) {
		t.Errorf("list: %q, want %q", got, want)
	}
	uidls := strs(out["uidl"])
	if len(uidls) != 3 {
		t.Fatalf("uidl: %q", uidls)
	}
	if got, want := strs(out["top"]), []string{"From: carol@example.org", "Subject: three", "", "body 1"}; !slices.Equal(got, want) {
		t.Errorf("top 3 1: %q", got)
	}
	if got := str(out["retr"]); got != msgDotty {
		t.Errorf("retr 2 (with lines starting with dots): %q, want %q", got, msgDotty)
	}
	if got := str(out["in_use"]); got != "-ERR [IN-USE] Mailbox is locked by another session" {
		t.Errorf("second session: %q", got)
	}
	if got := str(out["stat_after_dele"]); got != fmt.Sprintf("[2 %d]", total-len(msgPlain)) {
		t.Errorf("stat after dele: %s", got)
	}
	if got := str(out["stat_after_rset"]); got != fmt.Sprintf("[3 %d]", total) {
		t.Errorf("stat after rset: %s", got)
	}
	if got := str(out["quit"]); !strings.HasPrefix(got, "+OK") {
		t.Errorf("quit: %q", got)
	}
	if got := str(out["stat_next"]); got != fmt.Sprintf("[2 %d]", total-len(msgPlain)) {
		t.Errorf("stat in the next session: %s", got)
	}
	// The surviving messages keep their unique-ids, under new message numbers.
	if got, want := strs(out["uidl_next"]), []string{"1 " + strings.Fields(uidls[1])[1], "2 " + strings.Fields(uidls[2])[1]}; !slices.Equal(got, want) {
		t.Errorf("uidl in the next session: %q, want %q", got, want)
	}
	if n := e.inbox(alice).Status().Messages; n != 2 {
		t.Errorf("%d messages stored, want 2", n)
	}
}

func TestPoplibAuthPlain(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain)
	out := runPython(t, e, alice, `
def plain(authz, u, pw):
    return base64.b64encode(("%s\0%s\0%s" % (authz, u, pw)).encode()).decode()

p = poplib.POP3(host, port, timeout=10)
out["before_tls"] = refused(p._shortcmd, "AUTH PLAIN " + plain("", user, password))
p.stls(ctx)
out["wrong"] = refused(p._shortcmd, "AUTH PLAIN " + plain("", user, "wrong"))
p._putcmd("AUTH PLAIN")
out["continuation"] = text(p._getresp())
out["cancel"] = refused(p._shortcmd, "*")
p._putcmd("AUTH PLAIN")
p._getresp()
out["login"] = text(p._shortcmd(plain("", user, password)))
out["stat"] = list(p.stat())
p.quit()

p = connect()
out["initial"] = text(p._shortcmd("AUTH PLAIN " + plain(user, user, password)))
out["retr"] = "\r\n".join(lines(p.retr(1))) + "\r\n"
p.quit()
`)
	if got := str(out["before_tls"]); got != "-ERR [AUTH] TLS required; use STLS" {
		t.Errorf("AUTH before TLS: %q", got)
	}
	if got := str(out["wrong"]); got != "-ERR [AUTH] Authentication failed" {
		t.Errorf("AUTH with a wrong password: %q", got)
	}
	if got := str(out["continuation"]); got != "+ " {
		t.Errorf("AUTH PLAIN continuation: %q", got)
	}
	if got := str(out["cancel"]); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("cancelled AUTH: %q", got)
	}
	if got := str(out["login"]); !strings.HasPrefix(got, "+OK") {
		t.Errorf("AUTH PLAIN via continuation: %q", got)
	}
	if got := str(out["stat"]); got != fmt.Sprintf("[1 %d]", len(msgPlain)) {
		t.Errorf("stat: %s", got)
	}
	if got := str(out["initial"]); !strings.HasPrefix(got, "+OK") {
		t.Errorf("AUTH PLAIN with initial response: %q", got)
	}
	if got := str(out["retr"]); got != msgPlain {
		t.Errorf("retr: %q", got)
	}
}

func TestPoplibImplicitTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain, msgDotty)
	out := runPython(t, e, alice, `
p = poplib.POP3_SSL(host, tls_port, context=ctx, timeout=10)
out["capa"] = sorted(p.capa().keys())
p.user(user)
p.pass_(password)
out["stat"] = list(p.stat())
out["retr"] = "\r\n".join(lines(p.retr(2))) + "\r\n"
p.quit()
`)
	if caps := strs(out["capa"]); slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA over implicit TLS: %q", caps)
	}
	if got := str(out["stat"]); got != fmt.Sprintf("[2 %d]", len(msgPlain)+len(msgDotty)) {
		t.Errorf("stat: %s", got)
	}
	if got := str(out["retr"]); got != msgDotty {
		t.Errorf("retr: %q", got)
	}
}

func runCurl(t *testing.T, url string, args ...string) string {
	t.Helper()
	curl := testutil.Program(t, "curl")
	args = append([]string{"-sS", "-k", "--max-time", "30", "-u", alice + ":" + password}, args...)
	cmd := exec.Command(curl, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, stderr.String())
	}
	return stdout.String()
}

func TestCurl(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deliver(alice, msgPlain, msgDotty)
	wantList := fmt.Sprintf("1 %d\r\n2 %d\r\n", len(msgPlain), len(msgDotty))
	for _, tc := range []struct {
		name, base string
		args       []string
	}{
		{"STLS", "pop3://" + e.addr, []string{"--ssl-reqd"}},
		{"implicit TLS", "pop3s://" + e.tlsAddr, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runCurl(t, tc.base+"/", tc.args...); got != wantList {
				t.Errorf("listing: %q, want %q", got, wantList)
			}
			if got := runCurl(t, tc.base+"/2", tc.args...); got != msgDotty {
				t.Errorf("message 2: %q, want %q", got, msgDotty)
			}
		})
	}
	// curl prefers SASL when CAPA offers it, so these logins went through AUTH PLAIN.
	if n := e.counter("commands_total", "protocol=pop3", "command=AUTH"); n != 4 {
		t.Errorf("commands_total{command=AUTH} = %v, want 4 (one per curl run)", n)
	}
	// Without TLS required, curl must still not get to log in in the clear.
	cmd := exec.Command(testutil.Program(t, "curl"), "-sS", "--max-time", "30", "-u", alice+":"+password, "pop3://"+e.addr+"/")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("curl logged in without TLS: %q", out)
	}
}
