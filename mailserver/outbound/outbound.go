// Package outbound is the queue's Transport: it hands a message to the mail servers of its
// recipients' domains (MX lookup per RFC 5321 section 5) or to a configured smarthost, over SMTP
// with STARTTLS (or, for a smarthost on a trusted network, without TLS), reusing connections and
// bounding the connections per destination.
package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/idna"

	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// Resolver is the DNS a Transport needs. dnsresolve.Resolver implements it: a name that does
// not exist is a *net.DNSError with IsNotFound, a name without records an empty answer.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Relay is a smarthost that takes all outbound mail.
type Relay struct {
	Host string
	Port int
	// ImplicitTLS connects with TLS from the start (port 465); otherwise STARTTLS is required,
	// unless PlainText.
	ImplicitTLS bool
	// PlainText is for a smarthost on a trusted network: the session stays in plain text and
	// STARTTLS is never attempted, even when offered. AUTH is then refused, so a password never
	// crosses the network in clear text.
	PlainText bool
	// UsernameFile and PasswordFile hold the AUTH credentials, read at every connection so a
	// rotated Secret takes effect without a restart. Empty means no AUTH.
	UsernameFile string
	PasswordFile string
	// RootCAs verify the smarthost's certificate; nil uses the system roots.
	RootCAs *x509.CertPool
}

// Config configures a Transport.
type Config struct {
	// Hostname is sent in EHLO.
	Hostname string
	Resolver Resolver
	// MXPort is the port of MX hosts (25; tests use another).
	MXPort int
	// SourceIP, if set, is the local address of outgoing connections.
	SourceIP net.IP
	// Relay sends everything through a smarthost instead of MX lookup.
	Relay *Relay
	// RootCAs verify MX hosts' certificates (nil: system roots). Verification failures do not
	// stop delivery (opportunistic TLS); they are recorded.
	RootCAs        *x509.CertPool
	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	// DataTimeout bounds the wait for the reply after the message's final dot.
	DataTimeout time.Duration
	// MaxConnectionsPerDestination bounds concurrent sessions per recipient domain (or to the
	// smarthost).
	MaxConnectionsPerDestination int
	// IdleTimeout is how long an idle session is kept for the next message to the same host.
	IdleTimeout time.Duration
	Metrics     *metrics.Metrics
	Log         *slog.Logger
}

// Transport delivers queued messages.
type Transport struct {
	cfg  Config
	pool *pool

	mu   sync.Mutex
	sems map[string]chan struct{}
}

// Bounds on how much of a domain's MX set one attempt walks.
const (
	maxHostsPerAttempt = 5
	maxAddrsPerHost    = 2
	maxMessagesPerConn = 100
)

// New returns a Transport.
func New(cfg Config) *Transport {
	if cfg.MXPort == 0 {
		cfg.MXPort = 25
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = 10 * time.Minute
	}
	if cfg.MaxConnectionsPerDestination <= 0 {
		cfg.MaxConnectionsPerDestination = 4
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	t := &Transport{cfg: cfg, sems: map[string]chan struct{}{}}
	t.pool = newPool(cfg.IdleTimeout, cfg.MaxConnectionsPerDestination)
	return t
}

// Close closes idle sessions.
func (t *Transport) Close() { t.pool.close() }

// Deliver implements queue.Transport.
func (t *Transport) Deliver(ctx context.Context, d *queue.Delivery) []queue.Result {
	if t.cfg.Relay != nil {
		return t.deliverRelay(ctx, d)
	}
	var domains []string
	groups := map[string][]string{}
	for _, r := range d.Recipients {
		dom := asciiDomain(domainOf(r))
		if _, ok := groups[dom]; !ok {
			domains = append(domains, dom)
		}
		groups[dom] = append(groups[dom], r)
	}
	results := make([][]queue.Result, len(domains))
	var wg sync.WaitGroup
	for i, dom := range domains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = t.deliverDomain(ctx, dom, d, groups[dom])
		}()
	}
	wg.Wait()
	var out []queue.Result
	for _, r := range results {
		out = append(out, r...)
	}
	return out
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// all gives every recipient the same result.
func all(rcpts []string, r queue.Result) []queue.Result {
	out := make([]queue.Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = r
		out[i].Recipient = rc
	}
	return out
}

func temp(status, format string, args ...any) queue.Result {
	return queue.Result{Status: status, Text: fmt.Sprintf(format, args...)}
}

func perm(status, format string, args ...any) queue.Result {
	return queue.Result{Permanent: true, Status: status, Text: fmt.Sprintf(format, args...)}
}

// acquire takes one of the destination's connection slots.
func (t *Transport) acquire(ctx context.Context, dest string) (func(), error) {
	t.mu.Lock()
	sem, ok := t.sems[dest]
	if !ok {
		sem = make(chan struct{}, t.cfg.MaxConnectionsPerDestination)
		t.sems[dest] = sem
	}
	t.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// route returns the hosts to try for a domain in order, or a result for every recipient when
// there is nowhere to go.
func (t *Transport) route(ctx context.Context, domain string) (hosts []string, implicit bool, fail *queue.Result) {
	mxs, err := t.cfg.Resolver.LookupMX(ctx, domain)
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		r := perm("5.1.2", "domain %s does not exist (DNS: %s)", domain, publicError(err))
		return nil, false, &r
	case err != nil:
		r := temp("4.4.3", "looking up the mail servers of %s failed: %s", domain, publicError(err))
		return nil, false, &r
	}
	var real []*net.MX
	for _, mx := range mxs {
		if mx.Host != "." && mx.Host != "" {
			real = append(real, mx)
		}
	}
	if len(mxs) > 0 && len(real) == 0 {
		// RFC 7505: the domain declares it accepts no mail.
		r := perm("5.1.10", "domain %s does not accept mail (null MX)", domain)
		return nil, false, &r
	}
	if len(real) == 0 {
		// RFC 5321 section 5.1: no MX records, the domain itself is the implicit MX.
		return []string{domain}, true, nil
	}
	// Lowest preference first; hosts of equal preference in random order to spread load.
	rand.Shuffle(len(real), func(i, j int) { real[i], real[j] = real[j], real[i] })
	sort.SliceStable(real, func(i, j int) bool { return real[i].Pref < real[j].Pref })
	for _, mx := range real {
		hosts = append(hosts, strings.ToLower(mx.Host))
	}
	return hosts, false, nil
}

// deliverDomain delivers to one domain's recipients through its MX hosts.
func (t *Transport) deliverDomain(ctx context.Context, domain string, d *queue.Delivery, rcpts []string) []queue.Result {
	hosts, implicit, fail := t.route(ctx, domain)
	if fail != nil {
		return all(rcpts, *fail)
	}
	release, err := t.acquire(ctx, domain)
	if err != nil {
		return all(rcpts, temp("4.4.0", "delivery interrupted: %v", err))
	}
	defer release()
	last := temp("4.4.1", "no mail server of %s could be reached", domain)
	for i, host := range hosts {
		if i == maxHostsPerAttempt {
			break
		}
		ips, err := t.cfg.Resolver.LookupIPAddr(ctx, host)
		var de *net.DNSError
		if implicit && (len(ips) == 0 && err == nil || errors.As(err, &de) && de.IsNotFound) {
			// Neither MX nor address records: there is nowhere to deliver, ever.
			return all(rcpts, perm("5.1.2", "domain %s has no MX and no address records", domain))
		}
		if err != nil {
			last = temp("4.4.3", "looking up the address of %s failed: %s", host, publicError(err))
			continue
		}
		for j, ip := range ips {
			if j == maxAddrsPerHost {
				break
			}
			addr := net.JoinHostPort(ip.IP.String(), strconv.Itoa(t.cfg.MXPort))
			results, connFail := t.transact(ctx, host, addr, false, d, rcpts)
			if connFail == nil {
				return results
			}
			last = *connFail
			if ctx.Err() != nil {
				return all(rcpts, last)
			}
		}
	}
	return all(rcpts, last)
}

// deliverRelay sends every recipient through the smarthost.
func (t *Transport) deliverRelay(ctx context.Context, d *queue.Delivery) []queue.Result {
	r := t.cfg.Relay
	release, err := t.acquire(ctx, "relay")
	if err != nil {
		return all(d.Recipients, temp("4.4.0", "delivery interrupted: %v", err))
	}
	defer release()
	addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	results, connFail := t.transact(ctx, r.Host, addr, true, d, d.Recipients)
	if connFail != nil {
		return all(d.Recipients, *connFail)
	}
	return results
}

// transact runs one mail transaction on a pooled or new session. connFail is set when no
// answer about the recipients was obtained and another host may be tried.
func (t *Transport) transact(ctx context.Context, host, addr string, relay bool, d *queue.Delivery, rcpts []string) (results []queue.Result, connFail *queue.Result) {
	key := poolKey(host, addr, relay)
	for try := 0; try < 2; try++ {
		s := t.pool.get(key)
		reused := s != nil
		if s == nil {
			var err error
			s, err = t.dial(ctx, host, addr, relay)
			if err != nil {
				r := sessionFailure(host, err)
				if relay {
					t.cfg.Log.Warn("smarthost session failed", "host", host, "addr", addr, "err", err)
				}
				return nil, &r
			}
		}
		results, broken := s.send(ctx, d, rcpts)
		if broken != nil && reused && results == nil {
			// The server closed the idle connection: try a fresh one.
			s.close()
			continue
		}
		if broken != nil {
			s.close()
			if results == nil {
				r := temp("4.4.2", "connection to %s broke: %s", host, publicError(broken))
				r.RemoteMTA = host
				return nil, &r
			}
			return results, nil
		}
		t.pool.put(key, s)
		return results, nil
	}
	r := temp("4.4.2", "connection to %s broke", host)
	return nil, &r
}

// sessionFailure turns a failure to set up a session into a result. A server that refuses us
// at greeting or EHLO with 5xx is still only a reason to try elsewhere and later.
func sessionFailure(host string, err error) queue.Result {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := temp("4.4.1", "%s refused the session: %v", host, err)
		r.RemoteMTA = host
		return r
	}
	return temp("4.4.1", "connecting to %s failed: %s", host, publicError(err))
}

// poolKey says which idle sessions a delivery to host at addr may reuse. An MX session belongs
// to the host name it was opened for as well as its address: the name is what the certificate
// was checked against and what results report as the remote MTA, and two domains' MX hosts
// often share an address. The smarthost's sessions carry its stricter TLS policy and its login.
func poolKey(host, addr string, relay bool) string {
	if relay {
		return "relay|" + addr
	}
	return "mx|" + host + "|" + addr
}

// publicError is err's text without the addresses of our side: the resolver a failed lookup
// asked ("lookup x on 10.96.0.10:53") and the local address of a connection. Results end up in
// bounces to senders outside the cluster.
func publicError(err error) string {
	text := err.Error()
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Source != nil {
		c := *oe
		c.Source = nil
		text = strings.Replace(text, oe.Error(), c.Error(), 1)
	}
	var de *net.DNSError
	if errors.As(err, &de) && de.Server != "" {
		c := *de
		c.Server = ""
		text = strings.Replace(text, de.Error(), c.Error(), 1)
	}
	return text
}

// readSecret reads a credential file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// asciiDomain is a domain as DNS and other servers know it: lowercase, in A-labels (an
// internationalised domain queued in U-labels is looked up as xn--...). A name that does not
// convert is returned lowercased, for the lookup to fail on.
func asciiDomain(domain string) string {
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		return strings.ToLower(a)
	}
	return strings.ToLower(domain)
}

// wireAddress is an address as it goes into MAIL FROM or RCPT TO: the domain in A-labels, so
// that only a local part in UTF-8 makes an envelope need SMTPUTF8 (RFC 6531 section 3.2). The
// local part is left as it is: its meaning belongs to the receiving domain.
func wireAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	return addr[:at+1] + asciiDomain(addr[at+1:])
}

// needsUTF8 reports whether an envelope of wire addresses needs SMTPUTF8.
func needsUTF8(from string, rcpts []string) bool {
	return !isASCII(from) || slices.ContainsFunc(rcpts, func(r string) bool { return !isASCII(r) })
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// tlsPolicy returns the TLS settings for a host and a place to record whether its certificate
// verified. For MX hosts verification failures are recorded, not fatal.
func (t *Transport) tlsPolicy(host string, relay bool) (*tls.Config, *bool) {
	verified := new(bool)
	if relay {
		*verified = true
		return &tls.Config{ServerName: host, RootCAs: t.cfg.Relay.RootCAs, MinVersion: tls.VersionTLS12}, verified
	}
	roots := t.cfg.RootCAs
	return &tls.Config{
		ServerName: host,
		// Opportunistic TLS (RFC 7435): encrypt even when the certificate cannot be checked, as
		// other MTAs do; a failed check is recorded, not fatal.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
			*verified = err == nil
			return nil
		},
	}, verified
}
