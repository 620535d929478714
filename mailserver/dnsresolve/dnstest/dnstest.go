// Package dnstest runs a small authoritative DNS server on loopback for tests: records are
// added as zone-file lines, names without records answer NXDOMAIN, and names can be made to
// fail with SERVFAIL or to get no answer at all.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server answers UDP and TCP queries on the same loopback port.
type Server struct {
	// Addr is host:port of the server.
	Addr string

	mu      sync.Mutex
	records map[string][]dns.RR // by lowercase FQDN
	failing map[string]bool
	dropAll bool
	asked   []string // query names, lowercase FQDN, in order of arrival
	servers []*dns.Server
}

// Start listens on 127.0.0.1 (a random port) and serves until Close.
func Start() (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}, failing: map[string]bool{}}
	var lastErr error
	for try := 0; try < 20; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		s.Addr = pc.LocalAddr().String()
		udp := &dns.Server{PacketConn: pc, Handler: s}
		tcp := &dns.Server{Listener: ln, Handler: s}
		s.servers = []*dns.Server{udp, tcp}
		started := make(chan struct{}, 2)
		udp.NotifyStartedFunc = func() { started <- struct{}{} }
		tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		<-started
		<-started
		return s, nil
	}
	return nil, fmt.Errorf("no port free for UDP and TCP: %w", lastErr)
}

// Close stops the server.
func (s *Server) Close() {
	for _, srv := range s.servers {
		srv.Shutdown()
	}
}

// Add adds records in zone-file syntax ("a.test. MX 10 mail.a.test.").
func (s *Server) Add(lines ...string) error {
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			return fmt.Errorf("record %q: %w", l, err)
		}
		s.mu.Lock()
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
		s.mu.Unlock()
	}
	return nil
}

// AddTXT adds a TXT record, split into strings of at most 255 bytes as DNS requires.
func (s *Server) AddTXT(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, value[:255])
		value = value[255:]
	}
	parts = append(parts, value)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts}
	s.mu.Lock()
	s.records[strings.ToLower(dns.Fqdn(name))] = append(s.records[strings.ToLower(dns.Fqdn(name))], rr)
	s.mu.Unlock()
}

// Fail makes every query for name answer SERVFAIL (or stop doing so).
func (s *Server) Fail(name string, fail bool) {
	s.mu.Lock()
	s.failing[strings.ToLower(dns.Fqdn(name))] = fail
	s.mu.Unlock()
}

// DropAll makes the server read every query and answer none (or answer again), as a resolver
// that black-holes queries does.
func (s *Server) DropAll(drop bool) {
	s.mu.Lock()
	s.dropAll = drop
	s.mu.Unlock()
}

// Queries is how many queries the server has received.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.asked)
}

// Asked reports whether a query for name has arrived.
func (s *Server) Asked(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.asked {
		if a == strings.ToLower(dns.Fqdn(name)) {
			return true
		}
	}
	return false
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	if len(req.Question) > 0 {
		s.asked = append(s.asked, strings.ToLower(req.Question[0].Name))
	}
	drop := s.dropAll
	s.mu.Unlock()
	if drop {
		return
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	rrs, exists := s.records[name]
	failing := s.failing[name]
	s.mu.Unlock()
	switch {
	case failing:
		resp.Rcode = dns.RcodeServerFailure
	case !exists:
		resp.Rcode = dns.RcodeNameError
	default:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				resp.Answer = append(resp.Answer, dns.Copy(rr))
			}
		}
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), false)
	}
	w.WriteMsg(resp)
}
