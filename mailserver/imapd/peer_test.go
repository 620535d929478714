package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

// cluster is two replicas: bob's mailbox lives on owner, and front proxies his logins there;
// alice's lives on front.
type cluster struct {
	front, owner *env
	internal     string // owner's internal listener
	stopInternal func()
}

func newCluster(t *testing.T) *cluster {
	mutual := tlstest.Cluster(t)
	c := &cluster{owner: newEnv(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.internal = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- c.owner.srv.ServeInternal(tls.NewListener(ln, mutual.Server)) }()
	c.stopInternal = func() {
		ln.Close()
		<-done
	}
	t.Cleanup(func() {
		ln.Close()
	})
	dial := func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: mutual.Client.Clone()}
		d.Config.ServerName = "127.0.0.1"
		return d.DialContext(ctx, "tcp", c.internal)
	}
	route := func(mb *directory.Mailbox) Takeover {
		if mb.Address == bob {
			return Proxy(dial)
		}
		return nil
	}
	c.front = newEnv(t, func(o *envOptions) { o.route = route })
	return c
}

// A login on the replica the client reached, for a mailbox of another, is a session on that
// other replica: its messages, its changes while idling, and what the client writes.
func TestProxiedLoginServesTheOwnersMailbox(t *testing.T) {
	c := newCluster(t)
	c.owner.deliver(bob, "INBOX", message("on the owner", "stored on the owner"))
	c.front.deliver(bob, "INBOX", message("stray", "must never be seen"))

	var exists []uint32
	got := make(chan struct{}, 4)
	cl := c.front.client(bob, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists = append(exists, *d.NumMessages)
				got <- struct{}{}
			}
		}}})
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := fetch(t, cl, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true})
	if len(msgs) != 1 || msgs[0].Envelope.Subject != "on the owner" {
		t.Fatalf("through the proxy: %+v, want the owner's one message", msgs)
	}
	app := cl.Append("Drafts", int64(len(message("draft", "x"))), nil)
	app.Write([]byte(message("draft", "x")))
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Wait(); err != nil {
		t.Fatalf("APPEND through the proxy: %v", err)
	}
	if st := c.owner.folder(bob, "Drafts").Status(); st.Messages != 1 {
		t.Errorf("the owner's Drafts after an APPEND through the proxy: %+v", st)
	}

	// New mail on the owner reaches the idling client through the proxy.
	idle, err := cl.Idle()
	if err != nil {
		t.Fatal(err)
	}
	c.owner.deliver(bob, "INBOX", message("while idling", "new"))
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS through the proxy while idling")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(exists) == 0 || exists[len(exists)-1] != 2 {
		t.Errorf("EXISTS through the proxy: %v, want 2 last", exists)
	}

	// alice lives on front: served there.
	local := c.front.client(alice, nil)
	if _, err := local.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

// A client written by others, and a pipelined command behind the login.
func TestProxiedLoginWithCurlAndPipelining(t *testing.T) {
	curlPath := testutil.Program(t, "curl")
	c := newCluster(t)
	c.owner.deliver(bob, "INBOX", message("hello proxy", "Body through the proxy."))
	out, err := exec.Command(curlPath, "-sS", "--max-time", "20", "-u", bob+":"+password, "--cacert", c.front.certFile,
		"imaps://"+c.front.tlsAddr+"/INBOX;UID=1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Subject: hello proxy") || !strings.Contains(string(out), "Body through the proxy.") {
		t.Errorf("curl through the proxy: %v\n%s", err, out)
	}

	raw := c.front.raw(t)
	raw.send(fmt.Sprintf("a LOGIN %s %q\r\nb SELECT INBOX", bob, password))
	if line := raw.expect("a "); !strings.HasPrefix(line, "a OK [CAPABILITY IMAP4rev1") {
		t.Errorf("login answered %q, want OK with the owner's capabilities", line)
	}
	if line := raw.expect("* 1 EXISTS"); line != "* 1 EXISTS" {
		t.Errorf("pipelined SELECT: %q", line)
	}
	raw.expect("b OK")
}

// With the owner unreachable, its users get a temporary failure, not an empty mailbox.
func TestProxiedLoginOwnerDown(t *testing.T) {
	c := newCluster(t)
	c.stopInternal()
	raw := c.front.raw(t)
	raw.send(fmt.Sprintf("a LOGIN %s %q", bob, password))
	if line := raw.expect("a "); !strings.HasPrefix(line, "a NO [UNAVAILABLE]") {
		t.Errorf("login with the owner down: %q, want NO [UNAVAILABLE]", line)
	}
}

// The internal listener admits only the cluster's replicas, which log in with EXTERNAL;
// the public one does not offer EXTERNAL.
func TestInternalListenerAdmitsReplicasOnly(t *testing.T) {
	c := newCluster(t)
	mutual := tlstest.Cluster(t)
	for name, cfg := range map[string]*tls.Config{"no certificate": c.front.clientTLS, "another CA's": mutual.Stranger} {
		cfg = cfg.Clone()
		cfg.ServerName = "127.0.0.1"
		conn, err := tls.Dial("tcp", c.internal, cfg)
		if err == nil {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives with the first read
			conn.Close()
		}
		if err == nil {
			t.Errorf("a client with %s certificate was served on the internal listener", name)
		}
	}

	cfg := mutual.Client.Clone()
	cfg.ServerName = "127.0.0.1"
	conn, err := tls.Dial("tcp", c.internal, cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawOver(t, conn)
	ext := base64.StdEncoding.EncodeToString([]byte(bob))
	for _, tc := range []struct{ cmd, want string }{
		{"CAPABILITY", "* CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=EXTERNAL"},
		{fmt.Sprintf("LOGIN %s %q", bob, password), "t NO [AUTHENTICATIONFAILED]"},
		{"AUTHENTICATE PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+bob+"\x00"+password)), "t NO [AUTHENTICATIONFAILED]"},
		{"AUTHENTICATE EXTERNAL " + base64.StdEncoding.EncodeToString([]byte("nobody@example.com")), "t NO [AUTHENTICATIONFAILED]"},
		{"AUTHENTICATE EXTERNAL " + ext, "t OK [CAPABILITY IMAP4rev1"},
	} {
		lines := raw.transact("t", tc.cmd)
		if !hasLine(lines, tc.want) {
			t.Errorf("%s on the internal listener: %q, want %q", tc.cmd, lines, tc.want)
		}
	}

	pub := c.owner.raw(t)
	if lines := pub.transact("t", "AUTHENTICATE EXTERNAL "+ext); !strings.HasPrefix(lines[len(lines)-1], "t NO") {
		t.Errorf("EXTERNAL on the public listener: %q", lines)
	}
}

// rawOver is a raw conversation over an established connection, its greeting read.
func rawOver(t *testing.T, conn net.Conn) *rawConn {
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("* OK")
	return c
}
