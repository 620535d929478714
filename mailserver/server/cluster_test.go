package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/handoff"
	"github.com/kubemail/kubemail/mailserver/internal/servertest"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

// clusterEdit joins a server to a cluster: bob's mailbox on shard 1, the cluster's
// certificate, this replica's shard and the peers' internal addresses.
func clusterEdit(t *testing.T, shard int, peers []string) func(*config.Config) {
	return clusterEditWith(t, shard, peers, func(*dirspec.MailboxSpec) {})
}

// clusterEditWith is clusterEdit with bob's directory entry changed by bob, and a short
// handoff retry.
func clusterEditWith(t *testing.T, shard int, peers []string, bob func(*dirspec.MailboxSpec)) func(*config.Config) {
	m := tlstest.Cluster(t)
	dir := t.TempDir()
	files := map[string][]byte{"cert.pem": m.CertPEM, "key.pem": m.KeyPEM, "ca.pem": m.CAPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(c *config.Config) {
		editBobIn(t, c.Directory.File, func(mb *dirspec.MailboxSpec) {
			mb.Shard = 1
			bob(mb)
		})
		c.Shard = shard
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.SMTP = config.Listener{Address: "127.0.0.1:0"}
		c.Cluster = config.Cluster{Peers: peers, Listen: "127.0.0.1:0", CertFile: filepath.Join(dir, "cert.pem"),
			KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem"),
			HandoffRetry: config.Duration{Duration: 100 * time.Millisecond}}
	}
}

// Two replicas from their settings: bob's login on replica 0 reads the mail stored on replica 1,
// his shard, and none that strayed onto replica 0.
func TestClusterProxiesIMAPLoginsToTheOwner(t *testing.T) {
	owner := startServer(t, clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	front := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}))

	deliver := func(s *testServer, subject string) {
		mb, err := s.store.Mailbox("bob@example.com")
		if err != nil {
			t.Fatal(err)
		}
		f, err := mb.Folder("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Append(strings.NewReader(ownerMsg(subject)), nil, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	deliver(owner, "on the owner")
	deliver(front, "strayed")

	c, err := imapclient.DialTLS(front.addr(t, "imaps"), &imapclient.Options{TLSConfig: front.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob@example.com", password).Wait(); err != nil {
		t.Fatalf("bob's login on replica 0: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Envelope.Subject != "on the owner" {
		t.Fatalf("bob's INBOX through replica 0: %d messages %+v, want only the owner's", len(msgs), msgs)
	}

	// POP3 too, with a client written by others.
	curlPath := testutil.Program(t, "curl")
	curl := func(s *testServer, path string) (string, error) {
		url := "pop3s://localhost:" + port(t, s.addr(t, "pop3s")) + path
		out, err := exec.Command(curlPath, "-sS", "--max-time", "20", "--cacert", s.cfg.TLS.CertFile,
			"-u", "bob@example.com:"+password, url).CombinedOutput()
		return string(out), err
	}
	if out, err := curl(front, "/1"); err != nil || !strings.Contains(out, "Subject: on the owner") {
		t.Errorf("POP3 RETR 1 through replica 0: %v\n%s", err, out)
	}
	if out, err := curl(front, "/"); err != nil || strings.TrimSpace(out) != "1 "+strconv.Itoa(len(ownerMsg("on the owner"))) {
		t.Errorf("POP3 LIST through replica 0: %v %q, want the owner's one message", err, out)
	}

	for _, proto := range []string{"imap", "pop3"} {
		if n := counterValue(t, front.metrics.ProxiedSessions.WithLabelValues(proto)); n < 1 {
			t.Errorf("proxied %s sessions counted: %v", proto, n)
		}
	}

	// A replica whose peer for shard 1 does not answer: a temporary failure, never the
	// mail that strayed onto it.
	lonely := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	deliver(lonely, "strayed")
	c2, err := imapclient.DialTLS(lonely.addr(t, "imaps"), &imapclient.Options{TLSConfig: lonely.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Login("bob@example.com", password).Wait(); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Errorf("IMAP login with the owner down: %v, want NO [UNAVAILABLE]", err)
	}
	if out, err := curl(lonely, "/"); err == nil || strings.Contains(out, "1 ") {
		t.Errorf("POP3 with the owner down: %v %q, want a failure", err, out)
	}
}

func ownerMsg(subject string) string {
	return "From: carol@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A cluster section without the internal listener's certificates is refused before start.
func TestClusterSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		cluster config.Cluster
		shard   int
		want    string
	}{
		{config.Cluster{Peers: []string{"a:1"}, Listen: ":7993"}, 0, "cluster.certFile, cluster.keyFile and cluster.caFile"},
		{config.Cluster{Peers: []string{"a:1"}, CertFile: "c", KeyFile: "k", CAFile: "ca"}, 0, "cluster.listen is empty"},
		{config.Cluster{Peers: []string{"a:1"}, Listen: ":7993", CertFile: "c", KeyFile: "k", CAFile: "ca"}, 1, "shard 1 has no entry"},
		{config.Cluster{Peers: []string{"a"}, Listen: ":7993", CertFile: "c", KeyFile: "k", CAFile: "ca"}, 0, "cluster.peers[0]"},
		{config.Cluster{Listen: ":7993"}, 0, "cluster.peers is empty"},
	} {
		cfg := &config.Config{Hostname: "mail.example.com", DataDir: "/d", Directory: config.DirectorySource{File: "/f"},
			Shard: tc.shard, Cluster: tc.cluster}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cluster, err, tc.want)
		}
	}
}

// The internal listener serves only the cluster's replicas, and only the protocols they name.
func TestClusterListenerRefusesStrangers(t *testing.T) {
	s := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1"}))
	m := tlstest.Cluster(t)
	addr := s.addr(t, "cluster")
	dial := func(cfg *tls.Config, proto string) (*tls.Conn, error) {
		cfg = cfg.Clone()
		cfg.ServerName, cfg.NextProtos = "127.0.0.1", []string{proto}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, nil
	}
	readLine := func(c *tls.Conn) (string, error) {
		return bufio.NewReader(c).ReadString('\n')
	}
	for name, cfg := range map[string]*tls.Config{"no client certificate": s.clientTLS, "another CA's": m.Stranger} {
		for proto, request := range map[string]string{"imap": "", "limit": "POST /v1/sendlimit?user=bob@example.com",
			"move": "GET /v1/move/bob@example.com/manifest"} {
			if c, err := dial(cfg, proto); err == nil {
				if request != "" {
					fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: shard-0\r\n\r\n", request)
				}
				_, err = readLine(c) // TLS 1.3: the verdict on the client's certificate comes with the first read
				c.Close()
				if err == nil {
					t.Errorf("%s: served %s on the internal listener", name, proto)
				}
			}
		}
	}
	if _, err := dial(m.Client, "smtp"); err == nil {
		t.Errorf("a protocol the internal listener does not serve was negotiated")
	}
	c, err := dial(m.Client, "pop3")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 greeting on the internal listener: %q %v", line, err)
	}
	fmt.Fprintf(c, "USER bob@example.com\r\n")
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "-ERR") {
		t.Errorf("USER on the internal listener: %q, want -ERR", line)
	}
	fmt.Fprintf(c, "AUTH EXTERNAL %s\r\n", base64.StdEncoding.EncodeToString([]byte("bob@example.com")))
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "+OK") {
		t.Errorf("AUTH EXTERNAL with the cluster's certificate: %q, want +OK", line)
	}
}

// inbox is what a mailbox's INBOX on s holds, each message's bytes.
func inbox(t *testing.T, s *testServer, addr string) []string {
	t.Helper()
	return servertest.Inbox(t, s.store, addr)
}

// swaks sends one message with swaks to the smtp listener of s and returns its output.
func swaks(t *testing.T, s *testServer, to, subject string) (string, error) {
	t.Helper()
	host, p, _ := net.SplitHostPort(s.addr(t, "smtp"))
	out, err := exec.Command(testutil.Program(t, "swaks"), "--server", host, "--port", p, "--from", "carol@example.org",
		"--to", to, "--header", "Subject: "+subject, "--body", "hello", "--timeout", "20").CombinedOutput()
	return string(out), err
}

// Mail that reaches any replica is stored on the one that holds each recipient's mailbox, and
// only there.
func TestClusterHandsMailToTheOwner(t *testing.T) {
	owner := startServer(t, clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	front := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}))
	if out, err := swaks(t, front, "bob@example.com,alice@example.com", "for both"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if got := inbox(t, owner, "bob@example.com"); len(got) != 1 || !strings.Contains(got[0], "Subject: for both") ||
		!strings.Contains(got[0], "with LMTP") || !strings.Contains(got[0], "Delivered-To: bob@example.com") {
		t.Errorf("bob's INBOX on his replica: %q", got)
	}
	if got := inbox(t, front, "bob@example.com"); len(got) != 0 {
		t.Errorf("bob's mail was stored on the replica it reached too: %q", got)
	}
	if got := inbox(t, front, "alice@example.com"); len(got) != 1 {
		t.Errorf("alice's INBOX on her replica: %d messages", len(got))
	}
	if got := inbox(t, owner, "alice@example.com"); len(got) != 0 {
		t.Errorf("alice's mail reached bob's replica: %d messages", len(got))
	}
	if n := counterValue(t, front.metrics.Handoffs.WithLabelValues("delivered")); n != 1 {
		t.Errorf("handoffs delivered: %v, want 1", n)
	}
}

// An owner that is down: the message is acknowledged, queued, and stored once the owner is back.
func TestClusterQueuesHandoffsWhileTheOwnerIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ownerAddr := ln.Addr().String()
	ln.Close() // nobody listens there until the owner starts
	front := startServer(t, func(c *config.Config) {
		clusterEdit(t, 0, []string{"127.0.0.1:1", ownerAddr})(c)
		withAdmin(t, adminToken)(c)
	})
	if _, body := front.request(t, "GET", "/admin/v1/handoff", "Bearer "+adminToken); strings.TrimSpace(body) != `{"messages":0}` {
		t.Errorf("the admin API's handoff backlog before: %s", body)
	}
	accepted := time.Now()
	if out, err := swaks(t, front, "bob@example.com", "while away"); err != nil {
		t.Fatalf("swaks with the owner down: %v\n%s", err, out)
	}
	if n := len(front.handoffQueue.List()); n != 1 {
		t.Fatalf("handoff queue: %d messages, want 1", n)
	}
	var backlog HandoffBacklog
	_, body := front.request(t, "GET", "/admin/v1/handoff", "Bearer "+adminToken)
	if err := json.Unmarshal([]byte(body), &backlog); err != nil || backlog.Messages != 1 || backlog.Oldest == nil ||
		backlog.Oldest.Sub(accepted).Abs() > time.Minute {
		t.Errorf("the admin API's handoff backlog: %s (%v)", body, err)
	}
	owner := startServer(t, func(c *config.Config) {
		clusterEdit(t, 1, []string{"127.0.0.1:1", ownerAddr})(c)
		c.Cluster.Listen = ownerAddr
	})
	testutil.Eventually(t, "the queued message on its owner", func() bool { return len(inbox(t, owner, "bob@example.com")) == 1 })
	testutil.Eventually(t, "an empty handoff queue", func() bool { return len(front.handoffQueue.List()) == 0 })
	if got := inbox(t, owner, "bob@example.com"); !strings.Contains(got[0], "Subject: while away") {
		t.Errorf("the handed-over message: %q", got[0])
	}
	if got := inbox(t, front, "bob@example.com"); len(got) != 0 {
		t.Errorf("stored on the wrong replica too: %q", got)
	}
}

// A replica that hears of a new mailbox before its owner does hands its mail over all the same:
// the owner's "not in my directory (yet)" is temporary, so the message waits in the handoff
// queue (the client has its 250) until the owner knows the mailbox.
func TestClusterWaitsForTheOwnersDirectory(t *testing.T) {
	var ownerDir string
	var withBob []byte
	owner := startServer(t, func(c *config.Config) {
		clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"})(c)
		ownerDir = c.Directory.File
		var err error
		if withBob, err = os.ReadFile(ownerDir); err != nil {
			t.Fatal(err)
		}
		var spec dirspec.Spec
		if err := yaml.Unmarshal(withBob, &spec); err != nil {
			t.Fatal(err)
		}
		spec.Mailboxes = slices.DeleteFunc(spec.Mailboxes, func(mb dirspec.MailboxSpec) bool { return mb.Address == "bob@example.com" })
		without, err := yaml.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ownerDir, without, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	front := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}))
	if out, err := swaks(t, front, "bob@example.com", "before the owner knew"); err != nil {
		t.Fatalf("mail for a mailbox its owner does not know yet: %v\n%s", err, out)
	}
	if n := len(front.handoffQueue.List()); n != 1 {
		t.Fatalf("handoff queue: %d messages, want 1", n)
	}
	if err := os.WriteFile(ownerDir, withBob, 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the queued message on its owner", func() bool { return len(inbox(t, owner, "bob@example.com")) == 1 })
}

// The owner's permanent refusal (bob's mailbox is full there) is the client's answer.
func TestClusterPassesTheOwnersRefusal(t *testing.T) {
	full := func(mb *dirspec.MailboxSpec) { mb.Quota = 1 }
	owner := startServer(t, clusterEditWith(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}, full))
	front := startServer(t, clusterEditWith(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}, full))
	mb, _ := owner.store.Mailbox("bob@example.com")
	f, _ := mb.Folder("INBOX")
	if _, err := f.Append(strings.NewReader(ownerMsg("filler")), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	out, err := swaks(t, front, "bob@example.com", "too much")
	if err == nil || !strings.Contains(out, "552 5.2.2") {
		t.Errorf("mail for a full mailbox on another replica: %v\n%s", err, out)
	}
	if n := len(front.handoffQueue.List()); n != 0 {
		t.Errorf("a refused message was queued: %d", n)
	}
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A message handed over twice (its answer lost, or the sender crashed before it dropped its
// queued copy) is stored once; the id field it travels with is not stored.
func TestClusterStoresARepeatedHandoffOnce(t *testing.T) {
	owner := startServer(t, clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	m := tlstest.Cluster(t)
	dials := 0
	client := &handoff.Client{Hostname: "replica-0", Dial: func(ctx context.Context, shard int) (net.Conn, error) {
		dials++
		cfg := m.Client.Clone()
		cfg.ServerName, cfg.NextProtos = "127.0.0.1", []string{"lmtp"}
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", owner.addr(t, "cluster"))
	}}
	data := []byte("X-Kubemail-Handoff: 00112233445566778899aabbccddeeff\r\n" + ownerMsg("twice"))
	for range 2 {
		out, err := client.Send(context.Background(), 1, "carol@example.org", []string{"bob@example.com"}, data)
		if err != nil || len(out) != 1 || out[0].Err != nil {
			t.Fatalf("handoff: %v %+v", err, out)
		}
	}
	got := inbox(t, owner, "bob@example.com")
	if len(got) != 1 {
		t.Fatalf("a handoff made twice stored %d times", len(got))
	}
	if strings.Contains(got[0], "X-Kubemail-Handoff") || !strings.Contains(got[0], "Subject: twice") {
		t.Errorf("stored message:\n%s", got[0])
	}
	// Another id is another message.
	other := []byte("X-Kubemail-Handoff: ffeeddccbbaa99887766554433221100\r\n" + ownerMsg("twice"))
	if out, err := client.Send(context.Background(), 1, "carol@example.org", []string{"bob@example.com"}, other); err != nil || out[0].Err != nil {
		t.Fatalf("handoff: %v %+v", err, out)
	}
	if n := len(inbox(t, owner, "bob@example.com")); n != 2 {
		t.Errorf("a second message with the same text: %d stored, want 2", n)
	}
	// The three handoffs went over one session: a TLS handshake per message would cost more
	// than the message.
	if dials != 1 {
		t.Errorf("%d connections for three handoffs, want 1 kept for the next", dials)
	}
	client.Close()
}

// submit sends one message as bob on the submissions listener of s with swaks.
func submit(t *testing.T, s *testServer) (string, error) {
	t.Helper()
	host, p, _ := net.SplitHostPort(s.addr(t, "submissions"))
	out, err := exec.Command(testutil.Program(t, "swaks"), "--server", host, "--port", p, "--tls-on-connect",
		"--auth", "PLAIN", "--auth-user", "bob@example.com", "--auth-password", password,
		"--from", "bob@example.com", "--to", "alice@example.com", "--timeout", "20").CombinedOutput()
	return string(out), err
}

// limitedCluster is clusterEdit with an hourly submission limit and the submissions listener.
func limitedCluster(t *testing.T, shard, limit int, peers []string) func(*config.Config) {
	return func(c *config.Config) {
		clusterEdit(t, shard, peers)(c)
		c.Limits.MaxMessagesPerHour = limit
		c.Listeners.Submissions = config.Listener{Address: "127.0.0.1:0"}
	}
}

// The hourly submission limit is counted where the user's mailbox lives: bob's messages through
// either replica draw on one allowance.
func TestClusterCountsTheSendingLimitAtTheOwner(t *testing.T) {
	owner := startServer(t, limitedCluster(t, 1, 2, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	front := startServer(t, limitedCluster(t, 0, 2, []string{"127.0.0.1:1", owner.addr(t, "cluster")}))
	for i, s := range []*testServer{front, owner} {
		if out, err := submit(t, s); err != nil {
			t.Fatalf("message %d of the allowance: %v\n%s", i+1, err, out)
		}
	}
	for _, s := range []*testServer{front, owner} {
		if out, err := submit(t, s); err == nil || !strings.Contains(out, "450 4.7.1") {
			t.Errorf("a third message in the hour: %v\n%s", err, out)
		}
	}
}

// An owner that does not answer does not keep its users from sending: the replica serving the
// session counts for it meanwhile.
func TestClusterCountsTheSendingLimitHereWhileTheOwnerIsAway(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	away := ln.Addr().String()
	ln.Close()
	front := startServer(t, limitedCluster(t, 0, 1, []string{"127.0.0.1:1", away}))
	if out, err := submit(t, front); err != nil {
		t.Fatalf("a message while bob's replica is away: %v\n%s", err, out)
	}
	if out, err := submit(t, front); err == nil || !strings.Contains(out, "450 4.7.1") {
		t.Errorf("over the limit counted here: %v\n%s", err, out)
	}
}

// The operator's move endpoints: a replica copies bob's mailbox from his replica (again, after
// more mail, only what changed) and adopts it, UIDs, flags and all.
func TestClusterCopiesAMailboxFromAnotherReplica(t *testing.T) {
	owner := startServer(t, func(c *config.Config) {
		clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"})(c)
		withAdmin(t, adminToken)(c)
	})
	target := startServer(t, func(c *config.Config) {
		clusterEdit(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")})(c)
		withAdmin(t, adminToken)(c)
	})
	mb, err := owner.store.Mailbox("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := mb.Inbox().Append(strings.NewReader(ownerMsg(fmt.Sprint("before ", i))), []string{`\Seen`}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	pull := func() MoveStats {
		t.Helper()
		code, body := target.request(t, "POST", "/admin/v1/moves/bob@example.com/pull?from=1", "Bearer "+adminToken)
		var st MoveStats
		if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("pull: %d %s", code, body)
		}
		return st
	}
	if st := pull(); st.Files < 4 || st.Bytes == 0 {
		t.Errorf("the first copy: %+v", st)
	}
	if _, err := mb.Inbox().Append(strings.NewReader(ownerMsg("after")), nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st := pull(); st.Files > 10 {
		t.Errorf("the catch-up copied %d files: the messages copied before came again", st.Files)
	}
	if code, body := target.request(t, "POST", "/admin/v1/moves/bob@example.com/adopt", "Bearer "+adminToken); code != http.StatusNoContent {
		t.Fatalf("adopt: %d %s", code, body)
	}
	want, _ := mb.Inbox().Messages()
	moved, err := target.store.Mailbox("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := moved.Inbox().Messages()
	if len(got) != 4 || len(want) != 4 {
		t.Fatalf("moved INBOX: %d messages, the source's %d", len(got), len(want))
	}
	for i := range got {
		if got[i].UID != want[i].UID || !slices.Equal(got[i].Flags, want[i].Flags) || got[i].ModSeq != want[i].ModSeq {
			t.Errorf("message %d: %+v, the source's %+v", i, got[i], want[i])
		}
	}
	if moved.Inbox().UIDValidity() != mb.Inbox().UIDValidity() {
		t.Errorf("UIDVALIDITY %d, the source's %d", moved.Inbox().UIDValidity(), mb.Inbox().UIDValidity())
	}
	if code, _ := target.request(t, "POST", "/admin/v1/moves/bob@example.com/pull?from=0", "Bearer "+adminToken); code != http.StatusBadRequest {
		t.Errorf("a copy from this replica's own shard: %d, want 400", code)
	}

	// The source keeps its copy while its directory puts bob there; once it names the new
	// replica, the copy left behind may be purged.
	where := func() string {
		_, body := owner.request(t, "GET", "/admin/v1/directory/mailboxes/bob@example.com", "Bearer "+adminToken)
		return strings.TrimSpace(body)
	}
	if got := where(); got != `{"shard":1,"frozen":false}` {
		t.Errorf("the source's directory puts bob at %s", got)
	}
	if code, body := owner.request(t, "DELETE", "/admin/v1/mailboxes/bob@example.com", "Bearer "+adminToken); code != http.StatusConflict {
		t.Fatalf("purging the mailbox on the replica that holds it: %d %s, want 409", code, body)
	}
	moveBob(t, owner, 0)
	testutil.Eventually(t, "the source's directory to put bob on replica 0", func() bool { return where() == `{"shard":0,"frozen":false}` })
	if code, body := owner.request(t, "DELETE", "/admin/v1/mailboxes/bob@example.com", "Bearer "+adminToken); code != http.StatusNoContent {
		t.Fatalf("purging the copy a move left behind: %d %s", code, body)
	}
	if n, _, _ := owner.store.Usage("bob@example.com"); n != 0 {
		t.Errorf("the source still stores %d bytes of bob's", n)
	}
}

// moveBob rewrites the directory file of s with bob's mailbox on shard.
func moveBob(t *testing.T, s *testServer, shard int) {
	t.Helper()
	editBob(t, s, func(mb *dirspec.MailboxSpec) { mb.Shard = shard })
}

// setFrozen rewrites the directory file of s with bob's mailbox frozen or not.
func setFrozen(t *testing.T, s *testServer, frozen bool) {
	t.Helper()
	editBob(t, s, func(mb *dirspec.MailboxSpec) { mb.Frozen = frozen })
}

// editBob rewrites bob's entry in the directory file of s.
func editBob(t *testing.T, s *testServer, edit func(*dirspec.MailboxSpec)) {
	t.Helper()
	editBobIn(t, s.cfg.Directory.File, edit)
}

// editBobIn rewrites bob's entry in the directory file at path.
func editBobIn(t *testing.T, path string, edit func(*dirspec.MailboxSpec)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec dirspec.Spec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	for i := range spec.Mailboxes {
		if spec.Mailboxes[i].Address == "bob@example.com" {
			edit(&spec.Mailboxes[i])
		}
	}
	if data, err = yaml.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A mailbox in the cut-over of a move (frozen): no replica stores its mail, its owner included
// (the mail waits in their handoff queues, acknowledged), and its logins get the temporary
// failure; once it thaws, the waiting mail reaches its replica, once.
func TestClusterHoldsAFrozenMailbox(t *testing.T) {
	frozen := func(mb *dirspec.MailboxSpec) { mb.Frozen = true }
	owner := startServer(t, clusterEditWith(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}, frozen))
	front := startServer(t, clusterEditWith(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}, frozen))
	for _, s := range []*testServer{front, owner} {
		if out, err := swaks(t, s, "bob@example.com", "while frozen"); err != nil {
			t.Fatalf("mail for a frozen mailbox: %v\n%s", err, out)
		}
		if n := len(s.handoffQueue.List()); n != 1 {
			t.Errorf("handoff queue: %d messages, want the frozen mailbox's 1", n)
		}
	}
	if got := inbox(t, owner, "bob@example.com"); len(got) != 0 {
		t.Fatalf("stored while frozen: %q", got)
	}
	c, err := imapclient.DialTLS(owner.addr(t, "imaps"), &imapclient.Options{TLSConfig: owner.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob@example.com", password).Wait(); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Errorf("IMAP login to a frozen mailbox on its own replica: %v, want NO [UNAVAILABLE]", err)
	}

	setFrozen(t, owner, false)
	setFrozen(t, front, false)
	testutil.Eventually(t, "the two waiting messages on bob's replica", func() bool { return len(inbox(t, owner, "bob@example.com")) == 2 })
	testutil.Eventually(t, "empty handoff queues", func() bool {
		return len(front.handoffQueue.List()) == 0 && len(owner.handoffQueue.List()) == 0
	})
	if got := inbox(t, front, "bob@example.com"); len(got) != 0 {
		t.Errorf("stored on the wrong replica: %q", got)
	}
}

// Freezing a mailbox ends its sessions on its replica (with BYE [UNAVAILABLE]); the operator's
// end-sessions endpoint counts those still running.
func TestClusterEndsTheSessionsOfAFrozenMailbox(t *testing.T) {
	owner := startServer(t, func(c *config.Config) {
		clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"})(c)
		withAdmin(t, adminToken)(c)
	})
	c, err := imapclient.DialTLS(owner.addr(t, "imaps"), &imapclient.Options{TLSConfig: owner.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob@example.com", password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sessions := func() int {
		_, body := owner.request(t, "POST", "/admin/v1/moves/bob@example.com/end-sessions", "Bearer "+adminToken)
		var out struct{ Sessions int }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("end-sessions: %q: %v", body, err)
		}
		return out.Sessions
	}
	setFrozen(t, owner, true)
	testutil.Eventually(t, "bob's session to end", func() bool { return c.Noop().Wait() != nil })
	testutil.Eventually(t, "no session of bob left", func() bool { return sessions() == 0 })
}

// A transaction that named bob before his mailbox froze and ends after: the message is queued,
// not stored (a move's last copy may have been taken already).
func TestClusterQueuesATransactionThatOutlivedTheFreeze(t *testing.T) {
	owner := startServer(t, clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	c, err := smtp.Dial(owner.addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("carol@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.com", nil); err != nil {
		t.Fatal(err)
	}
	setFrozen(t, owner, true)
	testutil.Eventually(t, "the owner's directory to freeze bob", func() bool {
		mb, ok := owner.dir.Load().Mailbox("bob@example.com")
		return ok && mb.Frozen
	})
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: begun before the freeze\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA after the freeze: %v", err)
	}
	if got := inbox(t, owner, "bob@example.com"); len(got) != 0 {
		t.Errorf("stored after the freeze: %q", got)
	}
	if n := len(owner.handoffQueue.List()); n != 1 {
		t.Errorf("handoff queue: %d messages, want 1", n)
	}
}

// A delivery status notification for a mailbox of another replica goes to that replica, as
// any accepted mail does.
func TestClusterHandsADSNToTheOwner(t *testing.T) {
	owner := startServer(t, clusterEdit(t, 1, []string{"127.0.0.1:1", "127.0.0.1:1"}))
	front := startServer(t, clusterEdit(t, 0, []string{"127.0.0.1:1", owner.addr(t, "cluster")}))
	dsn := []byte("From: MAILER-DAEMON@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nIt bounced.\r\n")
	if err := front.returnDSN("bob@example.com", dsn); err != nil {
		t.Fatal(err)
	}
	if got := inbox(t, owner, "bob@example.com"); len(got) != 1 || !strings.Contains(got[0], "Undelivered Mail") {
		t.Errorf("bob's INBOX on his replica: %q", got)
	}
	if got := inbox(t, front, "bob@example.com"); len(got) != 0 {
		t.Errorf("the DSN was stored on the replica that generated it: %q", got)
	}
}
