package server

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/testutil"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

// clusterEdit joins a server to a cluster: bob's mailbox on shard 1, the cluster's
// certificate, this replica's shard and the peers' internal addresses.
func clusterEdit(t *testing.T, shard int, peers []string) func(*config.Config) {
	m := tlstest.Cluster(t)
	dir := t.TempDir()
	files := map[string][]byte{"cert.pem": m.CertPEM, "key.pem": m.KeyPEM, "ca.pem": m.CAPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return func(c *config.Config) {
		data, err := os.ReadFile(c.Directory.File)
		if err != nil {
			t.Fatal(err)
		}
		var spec dirspec.Spec
		if err := yaml.Unmarshal(data, &spec); err != nil {
			t.Fatal(err)
		}
		for i := range spec.Mailboxes {
			if spec.Mailboxes[i].Address == "bob@example.com" {
				spec.Mailboxes[i].Shard = 1
			}
		}
		if data, err = yaml.Marshal(spec); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.Directory.File, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c.Shard = shard
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
		c.Cluster = config.Cluster{Peers: peers, Listen: "127.0.0.1:0", CertFile: filepath.Join(dir, "cert.pem"),
			KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
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
		if c, err := dial(cfg, "imap"); err == nil {
			_, err = readLine(c) // TLS 1.3: the verdict on the client's certificate comes with the first read
			c.Close()
			if err == nil {
				t.Errorf("%s: served on the internal listener", name)
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
