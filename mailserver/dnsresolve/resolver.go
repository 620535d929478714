// Package dnsresolve asks DNS for what mail needs (MX, A/AAAA, TXT, PTR) through one configured
// server, or the servers in /etc/resolv.conf. Its methods have net.Resolver's signatures, so the
// SPF, DKIM and DMARC libraries use it as they would the system resolver, and its errors are
// *net.DNSError values that tell a name that does not exist (IsNotFound) from a failure worth
// retrying (IsTemporary). A name that exists without records of the asked type is an empty
// answer and no error, which MX delivery needs to fall back to the address records.
package dnsresolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// Resolver queries recursive DNS servers.
type Resolver struct {
	servers  []string
	udp, tcp *dns.Client
	attempts int
	cache    *cache
}

// New returns a resolver for addr ("127.0.0.1:5353", "10.0.0.10", "[::1]:53"); an empty addr
// uses the nameservers of /etc/resolv.conf.
func New(addr string) (*Resolver, error) {
	var servers []string
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(strings.Trim(addr, "[]"), "53")
		}
		servers = []string{addr}
	} else {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			servers = []string{"127.0.0.1:53"}
		} else {
			for _, s := range cc.Servers {
				servers = append(servers, net.JoinHostPort(s, cc.Port))
			}
		}
	}
	const timeout = 3 * time.Second
	return &Resolver{servers: servers, attempts: 2, cache: newCache(),
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 4096},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout}}, nil
}

// Servers are the addresses asked, in order.
func (r *Resolver) Servers() []string { return r.servers }

// query answers from the cache, or asks the servers and keeps what they say for its TTL.
// The answer returned must not be modified.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	ascii, err := toASCII(name)
	if err != nil {
		return nil, &net.DNSError{Err: "invalid domain name", Name: name, IsNotFound: true}
	}
	key := keyOf(ascii, qtype)
	resp := r.cache.get(key)
	if resp == nil {
		if resp, err = r.ask(ctx, name, ascii, qtype); err != nil {
			return nil, err
		}
		r.cache.put(key, resp)
	}
	if resp.Rcode == dns.RcodeNameError {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return resp, nil
}

// ask asks the servers in turn until one gives an authoritative-enough answer: NOERROR or
// NXDOMAIN. Other outcomes become temporary errors.
func (r *Resolver) ask(ctx context.Context, name, ascii string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(ascii), qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var last *net.DNSError
	for attempt := 0; attempt < r.attempts; attempt++ {
		for _, server := range r.servers {
			if err := ctx.Err(); err != nil {
				return nil, &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTimeout: true, IsTemporary: true}
			}
			resp, _, err := r.udp.ExchangeContext(ctx, m, server)
			if err == nil && resp.Truncated {
				resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
			}
			if err != nil {
				var ne net.Error
				timeout := errors.As(err, &ne) && ne.Timeout()
				last = &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTimeout: timeout, IsTemporary: true}
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, nil
			default:
				last = &net.DNSError{Err: "server answered " + dns.RcodeToString[resp.Rcode], Name: name, Server: server, IsTemporary: true}
			}
		}
	}
	return nil, last
}

// toASCII turns an internationalized name into A-labels. ASCII names pass unchanged, so
// _dmarc and _domainkey labels stay valid.
func toASCII(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return idna.Lookup.ToASCII(name)
		}
	}
	if name == "" {
		return "", errors.New("empty name")
	}
	return name, nil
}

// LookupMX returns the MX records of name as the server sent them (callers sort by
// preference). A null MX (RFC 7505) is returned as one record with Host ".".
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	resp, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range resp.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			host := mx.Mx
			if host != "." {
				host = strings.TrimSuffix(host, ".")
			}
			out = append(out, &net.MX{Host: host, Pref: mx.Preference})
		}
	}
	return out, nil
}

// LookupTXT returns the TXT records of name, the strings of each record joined.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	resp, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out, nil
}

// LookupIPAddr returns the IPv4 and IPv6 addresses of host (IPv4 first). It fails only when
// neither family could be looked up.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IPAddr{{IP: ip}}, nil
	}
	type answer struct {
		addrs []net.IPAddr
		err   error
	}
	ch := make(chan answer, 2)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		go func() {
			resp, err := r.query(ctx, host, qt)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			var a answer
			for _, rr := range resp.Answer {
				switch v := rr.(type) {
				case *dns.A:
					a.addrs = append(a.addrs, net.IPAddr{IP: v.A})
				case *dns.AAAA:
					a.addrs = append(a.addrs, net.IPAddr{IP: v.AAAA})
				}
			}
			ch <- a
		}()
	}
	var v4, v6 []net.IPAddr
	var errs []error
	for i := 0; i < 2; i++ {
		a := <-ch
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		for _, ip := range a.addrs {
			if ip.IP.To4() != nil {
				v4 = append(v4, ip)
			} else {
				v6 = append(v6, ip)
			}
		}
	}
	addrs := append(v4, v6...)
	if len(addrs) > 0 || len(errs) == 0 {
		return addrs, nil
	}
	// Both failed: a temporary failure wins over "does not exist", so mail is retried.
	var first *net.DNSError
	for _, e := range errs {
		var de *net.DNSError
		if errors.As(e, &de) && (first == nil || de.IsTemporary) {
			first = de
		}
	}
	if first != nil {
		return nil, first
	}
	return nil, errs[0]
}

// LookupAddr returns the names of an IP address (PTR records).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: fmt.Sprintf("invalid address: %v", err), Name: addr, IsNotFound: true}
	}
	resp, err := r.query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if ptr, ok := rr.(*dns.PTR); ok {
			out = append(out, ptr.Ptr)
		}
	}
	return out, nil
}

// TXTFunc adapts LookupTXT to the DKIM and DMARC libraries' callback form.
func (r *Resolver) TXTFunc(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
}
