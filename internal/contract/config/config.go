// Package config is the mail server's settings file: what to listen on, where data and
// certificates live, where the directory comes from, and limits. Settings here need a restart;
// accounts live in the directory, which reloads on its own.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// Config is the whole settings file.
type Config struct {
	// Hostname is the server's name in its SMTP banner, EHLO and Received fields.
	Hostname string `json:"hostname"`
	// DataDir holds the mail store (and later the outbound queue).
	DataDir string `json:"dataDir"`
	// Shard is this replica's ordinal; mailboxes of other shards live elsewhere.
	Shard int `json:"shard,omitempty"`
	// ShardFromEnv names an environment variable holding the pod's name, whose trailing
	// "-N" (a StatefulSet's ordinal) is then the shard: every pod of a StatefulSet reads the
	// same settings.
	ShardFromEnv string `json:"shardFromEnv,omitempty"`

	Directory DirectorySource `json:"directory"`
	TLS       TLS             `json:"tls"`
	Listeners Listeners       `json:"listeners"`
	// ProxyProtocol lists the networks allowed to send PROXY headers on listeners that have
	// proxyProtocol on.
	ProxyProtocol ProxyProtocol `json:"proxyProtocol,omitempty"`
	Limits        Limits        `json:"limits,omitempty"`
	// LogFormat is text or json.
	LogFormat string `json:"logFormat,omitempty"`
	// DNS says which resolver outbound delivery and the inbound checks ask.
	DNS DNS `json:"dns,omitzero"`
	// Outbound configures the queue and delivery to other servers.
	Outbound Outbound `json:"outbound,omitzero"`
	// Inbound configures the checks of mail arriving on the smtp listener.
	Inbound Inbound `json:"inbound,omitzero"`
	// SRS rewrites the envelope sender of forwarded mail so SPF passes at the destination.
	SRS SRS `json:"srs,omitzero"`
	// Admin enables the operator's endpoints on the HTTP listener (/admin/v1/...), guarded by a
	// bearer token read from TokenFile on every request.
	Admin Admin `json:"admin,omitempty"`
	// Store tunes the mail store.
	Store Store `json:"store,omitzero"`
	// Autoconfig tunes what listeners.autoconfig serves.
	Autoconfig Autoconfig `json:"autoconfig,omitzero"`
	// Cluster joins this replica to the other replicas of its cluster.
	Cluster Cluster `json:"cluster,omitzero"`
}

// Cluster joins the replicas of a cluster of several. Every replica serves every mailbox: an
// IMAP login for a mailbox another replica holds (its shard) is proxied to that replica, over
// an internal listener with mutual TLS from the cluster's own CA. Without peers the replica
// serves the mailboxes of its own shard, as a cluster of one.
type Cluster struct {
	// Peers are the internal listeners of every replica, host:port, by ordinal: Peers[shard]
	// is this replica's own.
	Peers []string `json:"peers,omitempty"`
	// PeerAddress names any replica's internal listener instead of Peers, with "{shard}" for
	// its ordinal, as a StatefulSet's pods are named under its headless Service
	// ("mail-{shard}.mail-headless.mail.svc:7993"): the settings then do not change when the
	// cluster scales.
	PeerAddress string `json:"peerAddress,omitempty"`
	// Listen is the address of this replica's internal listener, such as ":7993".
	Listen string `json:"listen,omitempty"`
	// CertFile and KeyFile are this replica's certificate, presented as server and as client
	// on the internal connections (reloaded when they change); CAFile is the cluster's CA, the
	// only one trusted there.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	CAFile   string `json:"caFile,omitempty"`
	// HandoffTimeout bounds handing a message to the replica that holds a mailbox while the
	// client waits; after it the message goes to the handoff queue (default 10s).
	HandoffTimeout Duration `json:"handoffTimeout,omitzero"`
	// HandoffRetry is the first wait before the handoff queue tries again; it doubles up to
	// a minute (default 10s).
	HandoffRetry Duration `json:"handoffRetry,omitzero"`
}

// Enabled reports whether the replica is part of a cluster of several.
func (c *Cluster) Enabled() bool { return len(c.Peers) > 0 || c.PeerAddress != "" }

// Peer is the internal listener of the replica of shard, "" when the settings name none.
func (c *Cluster) Peer(shard int) string {
	switch {
	case shard < 0:
		return ""
	case c.PeerAddress != "":
		return strings.ReplaceAll(c.PeerAddress, "{shard}", strconv.Itoa(shard))
	case shard < len(c.Peers):
		return c.Peers[shard]
	}
	return ""
}

// validate checks a cluster section against the replica's shard.
func (c *Cluster) validate(shard int) error {
	if !c.Enabled() {
		if c.Listen != "" {
			return errors.New("cluster.listen is set but cluster.peers is empty: list every replica's internal address")
		}
		return nil
	}
	switch {
	case len(c.Peers) > 0 && c.PeerAddress != "":
		return errors.New("cluster: set peers or peerAddress, not both")
	case c.PeerAddress != "" && !strings.Contains(c.PeerAddress, "{shard}"):
		return fmt.Errorf("cluster.peerAddress %q: it names every replica's address with {shard} for the ordinal", c.PeerAddress)
	case c.PeerAddress == "" && shard >= len(c.Peers):
		return fmt.Errorf("shard %d has no entry in cluster.peers (%d replicas listed)", shard, len(c.Peers))
	case c.Listen == "":
		return errors.New("cluster.listen is empty: the internal listener needs an address, such as :7993")
	case c.CertFile == "" || c.KeyFile == "" || c.CAFile == "":
		return errors.New("cluster.certFile, cluster.keyFile and cluster.caFile are all needed: the internal listener uses mutual TLS")
	}
	for i, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			return fmt.Errorf("cluster.peers[%d] %q: want host:port: %w", i, p, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Peer(shard)); c.PeerAddress != "" && err != nil {
		return fmt.Errorf("cluster.peerAddress %q: want host:port: %w", c.PeerAddress, err)
	}
	return nil
}

// Autoconfig configures the client autoconfiguration and MTA-STS listener: Thunderbird's
// autoconfig, Outlook's autodiscover, Apple profiles and the MTA-STS policy of every served
// domain.
type Autoconfig struct {
	// PlainHTTP serves the listener without TLS, for a TLS-terminating proxy (an Ingress) in
	// front that holds the autoconfig., autodiscover. and mta-sts. names. Off: HTTPS with the
	// server's certificate.
	PlainHTTP bool `json:"plainHTTP,omitempty"`
	// Ports are the ports clients are told to use, as the Service exposes them; 0 means the
	// standard port (993, 995, 465, 587).
	Ports AutoconfigPorts `json:"ports,omitzero"`
	// MTASTS is the policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
	MTASTS MTASTS `json:"mtaSTS,omitzero"`
}

// AutoconfigPorts are client-facing ports.
type AutoconfigPorts struct {
	IMAPS       int `json:"imaps,omitempty"`
	POP3S       int `json:"pop3s,omitempty"`
	Submissions int `json:"submissions,omitempty"`
	Submission  int `json:"submission,omitempty"`
}

// MTASTS is the inbound MTA-STS policy (RFC 8461) of every served domain.
type MTASTS struct {
	// Mode is enforce, testing or none (default testing: senders report failures and deliver
	// anyway, the safe start while the certificate's names are checked).
	Mode string `json:"mode,omitempty"`
	// MaxAge is how long senders cache the policy (default 168h, at most about a year).
	MaxAge Duration `json:"maxAge,omitzero"`
}

// Store tunes the mail store.
type Store struct {
	// HeaderCacheBytes bounds the memory of the cache of message headers that IMAP searches and
	// message lists read instead of the message files, shared by every session of the server.
	// 0 or absent: 64 MiB; negative: no cache.
	HeaderCacheBytes int64 `json:"headerCacheBytes,omitempty"`
}

// HeaderCacheBudget is the header cache's budget in bytes, 0 for none.
func (s Store) HeaderCacheBudget(defaultBytes int64) int64 {
	switch {
	case s.HeaderCacheBytes < 0:
		return 0
	case s.HeaderCacheBytes == 0:
		return defaultBytes
	}
	return s.HeaderCacheBytes
}

// DNS configures name resolution for mail.
type DNS struct {
	// Resolver is the address of a recursive DNS server ("10.96.0.10:53", "127.0.0.1:5353");
	// empty uses the nameservers of /etc/resolv.conf.
	Resolver string `json:"resolver,omitempty"`
}

// Outbound configures the outbound queue and delivery.
type Outbound struct {
	// MXPort is the port of other domains' mail servers (25). Only tests change it.
	MXPort int `json:"mxPort,omitempty"`
	// SourceAddress is the local IP address outgoing connections come from (the one SPF
	// records name); empty lets the system choose.
	SourceAddress string `json:"sourceAddress,omitempty"`
	// Workers is how many queued messages are attempted at once (8).
	Workers int `json:"workers,omitempty"`
	// MaxConnectionsPerDomain bounds concurrent sessions to one recipient domain or to the
	// smarthost (4).
	MaxConnectionsPerDomain int `json:"maxConnectionsPerDomain,omitempty"`
	// MaxAge is how long a message is retried before the sender gets a bounce (120h).
	MaxAge Duration `json:"maxAge,omitzero"`
	// RetryInitial is the wait after the first failed attempt; it doubles up to RetryMax
	// (5m and 4h).
	RetryInitial Duration `json:"retryInitial,omitzero"`
	RetryMax     Duration `json:"retryMax,omitzero"`
	// ConnectTimeout and CommandTimeout bound waiting for other servers (30s and 5m).
	ConnectTimeout Duration `json:"connectTimeout,omitzero"`
	CommandTimeout Duration `json:"commandTimeout,omitzero"`
	// Relay sends all outbound mail through a smarthost instead of looking up MX records.
	Relay *Relay `json:"relay,omitempty"`
}

// Inbound configures SPF, DKIM and DMARC checks on the smtp (MX) listener.
type Inbound struct {
	// AuthChecks records SPF, DKIM and DMARC results in an Authentication-Results field of
	// every message arriving from another server (default true).
	AuthChecks *bool `json:"authChecks,omitempty"`
	// DMARCReject refuses with 550 5.7.1 a message that fails DMARC when its From domain
	// publishes p=reject (default true).
	DMARCReject *bool `json:"dmarcReject,omitempty"`
	// DNSBudget bounds the time all DNS lookups of one message's checks may take together
	// (default 5s); what is unanswered by then is a temporary error in the results, and the
	// message is accepted without DMARC's policy applied.
	DNSBudget Duration `json:"dnsBudget,omitzero"`
}

// ChecksEnabled reports whether the inbound checks run.
func (i Inbound) ChecksEnabled() bool { return i.AuthChecks == nil || *i.AuthChecks }

// RejectDMARC reports whether DMARC p=reject failures are refused.
func (i Inbound) RejectDMARC() bool { return i.DMARCReject == nil || *i.DMARCReject }

// SRS configures the Sender Rewriting Scheme for forwarded mail.
type SRS struct {
	// SecretFile holds the HMAC secret, one per line: the first signs, all verify (so a secret
	// can be rotated). Every replica of a cluster needs the same file. Empty: the server makes
	// one in <dataDir>/srs.key.
	SecretFile string `json:"secretFile,omitempty"`
	// Domain is the domain of rewritten addresses (default: hostname). Bounces to it must reach
	// this server (MX or A record), and its SPF record must allow this server.
	Domain string `json:"domain,omitempty"`
}

// Relay is a smarthost.
type Relay struct {
	Host string `json:"host"`
	// Port defaults to 587 with STARTTLS, 465 with implicit TLS and 25 without TLS.
	Port int `json:"port,omitempty"`
	// TLS is "starttls" (the default; the smarthost must offer it), "implicit", or "none" for a
	// smarthost on a trusted network: plain text, STARTTLS never attempted, and no AUTH (the
	// password would cross the network in clear text).
	TLS string `json:"tls,omitempty"`
	// UsernameFile and PasswordFile hold AUTH credentials (a mounted Secret); read at every
	// connection. Leave both empty for a smarthost that needs no AUTH.
	UsernameFile string `json:"usernameFile,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty"`
	// CAFile holds PEM certificates that verify the smarthost, instead of the system roots.
	CAFile string `json:"caFile,omitempty"`
}

// Admin configures the administrative HTTP endpoints.
type Admin struct {
	TokenFile string `json:"tokenFile,omitempty"`
}

// DirectorySource says where accounts come from: a file, or the operator's Secrets.
type DirectorySource struct {
	File string `json:"file,omitempty"`
	// Kubernetes reads the directory from Secrets through the API.
	Kubernetes *KubernetesDirectory `json:"kubernetes,omitempty"`
}

// KubernetesDirectory names the directory Secrets.
type KubernetesDirectory struct {
	Namespace string `json:"namespace"`
	// Secret is the name of the first directory Secret; further parts are listed in it.
	Secret string `json:"secret"`
}

// TLS names the certificate files (reloaded when they change).
type TLS struct {
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
}

// Listeners are the ports served. An empty address switches a listener off.
type Listeners struct {
	SMTP        Listener `json:"smtp,omitempty"`
	Submission  Listener `json:"submission,omitempty"`
	Submissions Listener `json:"submissions,omitempty"`
	IMAP        Listener `json:"imap,omitempty"`
	IMAPS       Listener `json:"imaps,omitempty"`
	POP3        Listener `json:"pop3,omitempty"`
	POP3S       Listener `json:"pop3s,omitempty"`
	HTTP        Listener `json:"http,omitempty"`
	// Autoconfig serves client autoconfiguration and MTA-STS over HTTPS (see Autoconfig).
	// omitzero: settings files without it render as before.
	Autoconfig Listener `json:"autoconfig,omitzero"`
}

// Listener is one port.
type Listener struct {
	Address       string `json:"address,omitempty"`
	ProxyProtocol bool   `json:"proxyProtocol,omitempty"`
}

// ProxyProtocol configures PROXY header trust.
type ProxyProtocol struct {
	TrustedNetworks []string `json:"trustedNetworks,omitempty"`
}

// Limits bound what clients may do.
type Limits struct {
	MaxMessageBytes     int64    `json:"maxMessageBytes,omitempty"`
	MaxRecipients       int      `json:"maxRecipients,omitempty"`
	MaxConnections      int      `json:"maxConnections,omitempty"`
	MaxConnectionsPerIP int      `json:"maxConnectionsPerIP,omitempty"`
	ReadTimeout         Duration `json:"readTimeout,omitempty"`
	WriteTimeout        Duration `json:"writeTimeout,omitempty"`
	// ShutdownTimeout bounds how long SIGTERM waits for transactions in flight.
	ShutdownTimeout Duration `json:"shutdownTimeout,omitempty"`
	// DrainDelay is how long after SIGTERM the server keeps accepting connections while it
	// reports itself not ready (/readyz), so that a load balancer or a Service stops sending
	// clients before the listeners close: a rolling update of several replicas then refuses
	// no one. 0: the listeners close at once.
	DrainDelay Duration `json:"drainDelay,omitzero"`
	// LoginFailures slows and then refuses repeated failed logins.
	LoginFailures LoginFailures `json:"loginFailures,omitempty"`
	// MaxMessagesPerHour bounds the messages one authenticated user may submit on this server
	// within any hour (submission and submissions together); more are refused at MAIL FROM
	// with 450 4.7.1. 0: no limit. Mail arriving on the smtp (MX) listener is not counted.
	MaxMessagesPerHour int `json:"maxMessagesPerHour,omitempty"`
}

// LoginFailures tunes login throttling; zero values take the defaults of auth.LimiterConfig
// (3 free failures, 1s doubling to 16s, refusal after 20 per address, or 10 per account from
// one address or from the addresses that have not logged in to it, within 15 minutes; an
// address that logged in to an account stays known for it 720h).
type LoginFailures struct {
	FreeFailures       int      `json:"freeFailures,omitempty"`
	BaseDelay          Duration `json:"baseDelay,omitempty"`
	MaxDelay           Duration `json:"maxDelay,omitempty"`
	MaxIPFailures      int      `json:"maxIPFailures,omitempty"`
	MaxAccountFailures int      `json:"maxAccountFailures,omitempty"`
	Window             Duration `json:"window,omitempty"`
	// omitzero: a settings file without it stays byte for byte what earlier operators wrote, so
	// an upgrade of the operator does not roll every mail server for a setting left at its default.
	KnownAddressFor Duration `json:"knownAddressFor,omitzero"`
}

// Duration is a time.Duration written as "30s" or "5m".
type Duration struct{ time.Duration }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q (write it like 30s or 5m)", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Load reads a settings file (YAML or JSON), fills in defaults and validates it.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.shardFromEnv(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// shardFromEnv sets Shard from the pod name in ShardFromEnv.
func (c *Config) shardFromEnv() error {
	if c.ShardFromEnv == "" {
		return nil
	}
	name := os.Getenv(c.ShardFromEnv)
	i := strings.LastIndexByte(name, '-')
	n, err := strconv.Atoi(name[i+1:])
	if i < 0 || err != nil || n < 0 {
		return fmt.Errorf("shardFromEnv: $%s is %q, not a StatefulSet pod's name ending in -N", c.ShardFromEnv, name)
	}
	c.Shard = n
	return nil
}

// Default fills in unset limits.
func (c *Config) Default() {
	l := &c.Limits
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = 25 << 20
	}
	if l.MaxRecipients == 0 {
		l.MaxRecipients = 100
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = 2000
	}
	if l.MaxConnectionsPerIP == 0 {
		l.MaxConnectionsPerIP = 20
	}
	if l.ReadTimeout.Duration == 0 {
		l.ReadTimeout.Duration = 5 * time.Minute
	}
	if l.WriteTimeout.Duration == 0 {
		l.WriteTimeout.Duration = time.Minute
	}
	if l.ShutdownTimeout.Duration == 0 {
		l.ShutdownTimeout.Duration = 25 * time.Second
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	// Outbound's zero values take the defaults of the queue and the transport, so a rendered
	// settings file stays free of them.
	o := &c.Outbound
	if r := o.Relay; r != nil {
		if r.TLS == "" {
			r.TLS = "starttls"
		}
		if r.Port == 0 {
			switch r.TLS {
			case "implicit":
				r.Port = 465
			case "none":
				r.Port = 25
			default:
				r.Port = 587
			}
		}
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if err := dirspec.ValidateDomain(strings.ToLower(c.Hostname)); err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("dataDir: required"))
	}
	if (c.Directory.File == "") == (c.Directory.Kubernetes == nil) {
		errs = append(errs, errors.New("directory: set exactly one of file or kubernetes"))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both certFile and keyFile, or neither"))
	}
	needTLS := c.Listeners.Submissions.Address != "" || c.Listeners.IMAPS.Address != "" || c.Listeners.POP3S.Address != ""
	if needTLS && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls: implicit-TLS listeners (submissions, imaps, pop3s) need a certificate"))
	}
	for name, l := range c.Listeners.all() {
		if l.Address == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			errs = append(errs, fmt.Errorf("listeners.%s.address: %w", name, err))
		}
		if l.ProxyProtocol && len(c.ProxyProtocol.TrustedNetworks) == 0 {
			errs = append(errs, fmt.Errorf("listeners.%s.proxyProtocol: needs proxyProtocol.trustedNetworks", name))
		}
	}
	if c.Limits.MaxMessageBytes < 0 || c.Limits.MaxRecipients < 0 || c.Limits.MaxConnections < 0 || c.Limits.MaxConnectionsPerIP < 0 {
		errs = append(errs, errors.New("limits: must not be negative"))
	}
	if n := c.Limits.MaxMessagesPerHour; n < 0 {
		errs = append(errs, fmt.Errorf("limits.maxMessagesPerHour: %d must not be negative (0 means no limit)", n))
	}
	if d := c.Inbound.DNSBudget.Duration; d < 0 {
		errs = append(errs, fmt.Errorf("inbound.dnsBudget: %s must not be negative (0 means the default, 5s)", d))
	}
	errs = append(errs, c.validateOutbound()...)
	errs = append(errs, c.validateAutoconfig()...)
	if c.Shard < 0 {
		errs = append(errs, fmt.Errorf("shard: %d must not be negative", c.Shard))
	} else if err := c.Cluster.validate(c.Shard); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *Config) validateOutbound() []error {
	var errs []error
	o := c.Outbound
	if o.MXPort < 0 || o.MXPort > 65535 {
		errs = append(errs, fmt.Errorf("outbound.mxPort: %d is not a port", o.MXPort))
	}
	if o.SourceAddress != "" && net.ParseIP(o.SourceAddress) == nil {
		errs = append(errs, fmt.Errorf("outbound.sourceAddress: %q is not an IP address", o.SourceAddress))
	}
	if o.Workers < 0 || o.MaxConnectionsPerDomain < 0 {
		errs = append(errs, errors.New("outbound: workers and maxConnectionsPerDomain must not be negative"))
	}
	if o.RetryMax.Duration != 0 && o.RetryMax.Duration < o.RetryInitial.Duration {
		errs = append(errs, errors.New("outbound: retryMax must not be shorter than retryInitial"))
	}
	if r := o.Relay; r != nil {
		if r.Host == "" {
			errs = append(errs, errors.New("outbound.relay.host: required"))
		}
		if r.TLS != "starttls" && r.TLS != "implicit" && r.TLS != "none" {
			errs = append(errs, fmt.Errorf("outbound.relay.tls: %q (use starttls, implicit or none)", r.TLS))
		}
		if r.TLS == "none" && (r.UsernameFile != "" || r.PasswordFile != "") {
			errs = append(errs, errors.New("outbound.relay: tls none with usernameFile or passwordFile would send the relay password in clear text; use starttls or implicit, or drop the credentials"))
		}
		if r.Port < 1 || r.Port > 65535 {
			errs = append(errs, fmt.Errorf("outbound.relay.port: %d is not a port", r.Port))
		}
		if (r.UsernameFile == "") != (r.PasswordFile == "") {
			errs = append(errs, errors.New("outbound.relay: set both usernameFile and passwordFile, or neither"))
		}
	}
	if c.SRS.Domain != "" {
		if err := dirspec.ValidateDomain(strings.ToLower(c.SRS.Domain)); err != nil {
			errs = append(errs, fmt.Errorf("srs.domain: %w", err))
		}
	}
	if a := c.DNS.Resolver; a != "" {
		host := a
		if h, _, err := net.SplitHostPort(a); err == nil {
			host = h
		}
		if net.ParseIP(strings.Trim(host, "[]")) == nil {
			errs = append(errs, fmt.Errorf("dns.resolver: %q is not an IP address with an optional port", a))
		}
	}
	return errs
}

// maxMTASTSAge is RFC 8461's upper bound of max_age, 31557600 seconds.
const maxMTASTSAge = 31557600 * time.Second

func (c *Config) validateAutoconfig() []error {
	var errs []error
	a := c.Autoconfig
	if c.Listeners.Autoconfig.Address != "" && !a.PlainHTTP && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("listeners.autoconfig: serves HTTPS and needs tls.certFile; set autoconfig.plainHTTP behind a TLS-terminating proxy"))
	}
	for name, port := range map[string]int{"imaps": a.Ports.IMAPS, "pop3s": a.Ports.POP3S,
		"submissions": a.Ports.Submissions, "submission": a.Ports.Submission} {
		if port < 0 || port > 65535 {
			errs = append(errs, fmt.Errorf("autoconfig.ports.%s: %d is not a port (0 means the standard one)", name, port))
		}
	}
	switch a.MTASTS.Mode {
	case "", "enforce", "testing", "none":
	default:
		errs = append(errs, fmt.Errorf("autoconfig.mtaSTS.mode: %q (use enforce, testing or none)", a.MTASTS.Mode))
	}
	if d := a.MTASTS.MaxAge.Duration; d < 0 || d > maxMTASTSAge {
		errs = append(errs, fmt.Errorf("autoconfig.mtaSTS.maxAge: %s is outside 0 to %s (RFC 8461)", d, maxMTASTSAge))
	}
	return errs
}

func (l *Listeners) all() map[string]Listener {
	return map[string]Listener{"smtp": l.SMTP, "submission": l.Submission, "submissions": l.Submissions,
		"imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S, "http": l.HTTP, "autoconfig": l.Autoconfig}
}
