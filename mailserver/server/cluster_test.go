package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
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
		msg := "From: carol@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
		if _, err := f.Append(strings.NewReader(msg), nil, time.Now()); err != nil {
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
