package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const base = `
hostname: mail.example.com
dataDir: /var/lib/kubemail
directory: {file: /etc/kubemail/directory.yaml}
`

func load(t *testing.T, extra string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(base+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestOutboundSettings(t *testing.T) {
	c, err := load(t, `
dns: {resolver: "10.96.0.10"}
outbound:
  mxPort: 2525
  sourceAddress: 192.0.2.10
  maxAge: 48h
  relay: {host: smtp.provider.example, tls: implicit, usernameFile: /u, passwordFile: /p}
inbound: {dmarcReject: false}
srs: {secretFile: /s, domain: fwd.example.com}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Outbound.Relay.Port != 465 || c.Outbound.MaxAge.Hours() != 48 || c.Outbound.MXPort != 2525 {
		t.Errorf("outbound %+v relay %+v", c.Outbound, c.Outbound.Relay)
	}
	if !c.Inbound.ChecksEnabled() || c.Inbound.RejectDMARC() {
		t.Errorf("inbound %+v", c.Inbound)
	}
}

func TestOutboundDefaultsStayOutOfRenderedSettings(t *testing.T) {
	c, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := yaml.Marshal(c)
	for _, key := range []string{"outbound", "dns", "inbound", "srs"} {
		if strings.Contains(string(out), key+":") {
			t.Errorf("rendered defaults contain %s:\n%s", key, out)
		}
	}
	if !c.Inbound.ChecksEnabled() || !c.Inbound.RejectDMARC() {
		t.Error("inbound checks and DMARC rejection are on by default")
	}
}

func TestOutboundValidation(t *testing.T) {
	_, err := load(t, `
dns: {resolver: "not-an-ip:53"}
outbound:
  sourceAddress: nowhere
  retryInitial: 1h
  retryMax: 1m
  relay: {tls: sometimes, usernameFile: /u}
srs: {domain: "bad domain"}
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"dns.resolver", "outbound.sourceAddress", "retryMax", "outbound.relay.host",
		"outbound.relay.tls", "usernameFile and passwordFile", "srs.domain"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestHeaderCacheBudget(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  int64
	}{
		{"", 64 << 20},
		{"store: {headerCacheBytes: 1048576}", 1 << 20},
		{"store: {headerCacheBytes: -1}", 0},
	} {
		c, err := load(t, tc.extra)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Store.HeaderCacheBudget(64 << 20); got != tc.want {
			t.Errorf("%q: header cache budget %d, want %d", tc.extra, got, tc.want)
		}
	}
}

func TestMaxMessagesPerHour(t *testing.T) {
	c, err := load(t, "limits: {maxMessagesPerHour: 200}")
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxMessagesPerHour != 200 {
		t.Errorf("maxMessagesPerHour %d", c.Limits.MaxMessagesPerHour)
	}
	if c, err = load(t, ""); err != nil || c.Limits.MaxMessagesPerHour != 0 {
		t.Errorf("absent: %d, %v; want 0 (no limit)", c.Limits.MaxMessagesPerHour, err)
	}
	_, err = load(t, "limits: {maxMessagesPerHour: -1}")
	if err == nil || !strings.Contains(err.Error(), "limits.maxMessagesPerHour: -1 must not be negative") {
		t.Fatalf("negative limit: %v", err)
	}
}

func TestRelayWithoutTLS(t *testing.T) {
	c, err := load(t, "outbound: {relay: {host: relay.internal, tls: none}}")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Outbound.Relay; r.TLS != "none" || r.Port != 25 {
		t.Errorf("relay %+v; want tls none on port 25", r)
	}
	for _, extra := range []string{
		"outbound: {relay: {host: relay.internal, tls: none, usernameFile: /u, passwordFile: /p}}",
		"outbound: {relay: {host: relay.internal, tls: none, passwordFile: /p}}",
		"outbound: {relay: {host: relay.internal, tls: none, usernameFile: /u}}",
	} {
		_, err := load(t, extra)
		if err == nil || !strings.Contains(err.Error(), "would send the relay password in clear text") {
			t.Errorf("%s: %v; want a refusal naming the clear-text password", extra, err)
		}
	}
	_, err = load(t, "outbound: {relay: {host: relay.internal, tls: plain}}")
	if err == nil || !strings.Contains(err.Error(), "use starttls, implicit or none") {
		t.Errorf("unknown tls mode: %v", err)
	}
}

func TestAutoconfigSettings(t *testing.T) {
	c, err := load(t, `
tls: {certFile: /c, keyFile: /k}
listeners: {autoconfig: {address: ":8443"}}
autoconfig:
  ports: {imaps: 10993}
  mtaSTS: {mode: enforce, maxAge: 24h}
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners.Autoconfig.Address != ":8443" || c.Autoconfig.Ports.IMAPS != 10993 ||
		c.Autoconfig.MTASTS.Mode != "enforce" || c.Autoconfig.MTASTS.MaxAge.Hours() != 24 {
		t.Errorf("autoconfig %+v listener %+v", c.Autoconfig, c.Listeners.Autoconfig)
	}
	// Behind a TLS-terminating proxy no certificate is needed.
	if _, err := load(t, "listeners: {autoconfig: {address: \":8080\"}}\nautoconfig: {plainHTTP: true}\n"); err != nil {
		t.Error(err)
	}
}

func TestAutoconfigValidation(t *testing.T) {
	_, err := load(t, `
listeners: {autoconfig: {address: "nowhere"}}
autoconfig:
  ports: {pop3s: 70000, submission: -1}
  mtaSTS: {mode: strict, maxAge: 9000h}
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"listeners.autoconfig.address", "listeners.autoconfig: serves HTTPS and needs tls.certFile",
		"autoconfig.ports.pop3s", "autoconfig.ports.submission", "autoconfig.mtaSTS.mode", "autoconfig.mtaSTS.maxAge"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// An operator that does not know the listener renders the same settings file as before.
func TestAutoconfigStaysOutOfRenderedSettings(t *testing.T) {
	c, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := yaml.Marshal(c)
	if strings.Contains(string(out), "autoconfig") {
		t.Errorf("rendered settings mention autoconfig:\n%s", out)
	}
}

// Every pod of a StatefulSet reads the same settings and takes its shard from its own name.
func TestShardFromPodName(t *testing.T) {
	cluster := `shardFromEnv: KUBEMAIL_TEST_POD
cluster:
  peerAddress: "mail-{shard}.mail-headless.mail.svc:7993"
  listen: ":7993"
  certFile: /c
  keyFile: /k
  caFile: /ca
`
	t.Setenv("KUBEMAIL_TEST_POD", "mail-2")
	c, err := load(t, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if c.Shard != 2 || c.Cluster.Peer(2) != "mail-2.mail-headless.mail.svc:7993" || c.Cluster.Peer(11) != "mail-11.mail-headless.mail.svc:7993" {
		t.Errorf("shard %d, peers %q %q", c.Shard, c.Cluster.Peer(2), c.Cluster.Peer(11))
	}
	for _, bad := range []string{"", "mail", "mail-x", "mail-"} {
		t.Setenv("KUBEMAIL_TEST_POD", bad)
		if _, err := load(t, cluster); err == nil || !strings.Contains(err.Error(), "shardFromEnv") {
			t.Errorf("pod name %q: %v", bad, err)
		}
	}
	t.Setenv("KUBEMAIL_TEST_POD", "mail-0")
	if _, err := load(t, strings.Replace(cluster, "{shard}", "0", 1)); err == nil || !strings.Contains(err.Error(), "{shard}") {
		t.Errorf("a peer address without {shard}: %v", err)
	}
}
