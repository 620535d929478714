// Package autoconfig serves what mail clients and sending servers fetch over HTTP to set
// themselves up for a domain this server hosts: Thunderbird's autoconfig, Outlook's
// autodiscover (POX), an Apple configuration profile, and the MTA-STS policy (RFC 8461).
package autoconfig

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
)

// Ports are the client-facing ports clients are told to use: the ports the Service exposes,
// which differ from the unprivileged ports the container listens on.
type Ports struct {
	IMAPS       int // implicit TLS IMAP, 993
	POP3S       int // implicit TLS POP3, 995
	Submissions int // implicit TLS submission, 465
	Submission  int // STARTTLS submission, 587
}

// Config is what the answers are built from.
type Config struct {
	// Hostname is the name clients connect to and the MX the MTA-STS policy names.
	Hostname string
	// Ports left zero take the standard ports.
	Ports Ports
	// Directory says which domains are served; every other domain gets 404.
	Directory *directory.Live
	// MTASTSMode is enforce, testing or none (default testing), for domains whose directory
	// entry names none.
	MTASTSMode string
	// MTASTSMaxAge is how long senders may cache the policy (default one week).
	MTASTSMaxAge time.Duration
}

// DefaultMTASTSMaxAge is the policy lifetime senders are told when none is configured.
const DefaultMTASTSMaxAge = 7 * 24 * time.Hour

type handler struct{ cfg Config }

// New returns the handler of every document this package serves.
func New(cfg Config) http.Handler {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&cfg.Ports.IMAPS, 993)
	def(&cfg.Ports.POP3S, 995)
	def(&cfg.Ports.Submissions, 465)
	def(&cfg.Ports.Submission, 587)
	if cfg.MTASTSMode == "" {
		cfg.MTASTSMode = "testing"
	}
	if cfg.MTASTSMaxAge <= 0 {
		cfg.MTASTSMaxAge = DefaultMTASTSMaxAge
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /mail/config-v1.1.xml", h.thunderbird)
	mux.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", h.thunderbird)
	// Outlook asks with POST; GET with a query parameter lets a person (or curl) look.
	mux.HandleFunc("POST /autodiscover/autodiscover.xml", h.autodiscover)
	mux.HandleFunc("GET /autodiscover/autodiscover.xml", h.autodiscover)
	// Outlook also tries the capitalised path on some versions.
	mux.HandleFunc("POST /Autodiscover/Autodiscover.xml", h.autodiscover)
	mux.HandleFunc("GET /apple/mobileconfig", h.mobileconfig)
	mux.HandleFunc("GET /.well-known/mta-sts.txt", h.mtaSTS)
	return mux
}

// errUnknownDomain is answered with 404: the domain is not served here.
var errUnknownDomain = errors.New("domain not served here")

// badRequest is input a client got wrong; its text is the short reason sent back.
type badRequest struct{ reason string }

func (e badRequest) Error() string { return e.reason }

// fail answers an error with its status: 400 for bad input, 404 for a domain not served.
func fail(w http.ResponseWriter, err error) {
	var br badRequest
	switch {
	case errors.As(err, &br):
		http.Error(w, br.reason, http.StatusBadRequest)
	case errors.Is(err, errUnknownDomain):
		http.Error(w, "domain not served here", http.StatusNotFound)
	default:
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
}

// address validates an account address and checks that its domain is served. Only the
// domain is checked, not the mailbox: the documents hold nothing secret, and answering the
// same for every address of a domain tells nobody which accounts exist.
func (h *handler) address(raw string) (addr, domain string, err error) {
	if raw == "" {
		return "", "", badRequest{"missing emailaddress"}
	}
	addr, err = dirspec.NormalizeAddress(raw)
	if err != nil {
		return "", "", badRequest{"bad emailaddress: " + err.Error()}
	}
	domain = addr[strings.LastIndexByte(addr, '@')+1:]
	if err := h.served(domain); err != nil {
		return "", "", err
	}
	return addr, domain, nil
}

// hostDomain is the served domain a request's Host names, with the service label a client
// prepends (autoconfig., mta-sts.) removed; required says whether that label must be there.
func (h *handler) hostDomain(r *http.Request, label string, required bool) (string, error) {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	rest, found := strings.CutPrefix(host, label)
	if required && !found {
		return "", errUnknownDomain
	}
	domain, err := dirspec.NormalizeDomain(rest)
	if err != nil {
		// A Host that is no domain name names no domain of ours.
		return "", errUnknownDomain
	}
	return domain, h.served(domain)
}

func (h *handler) served(domain string) error {
	if h.cfg.Directory == nil || !h.cfg.Directory.Load().IsLocalDomain(domain) {
		return errUnknownDomain
	}
	return nil
}
