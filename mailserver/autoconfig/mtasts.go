package autoconfig

import (
	"fmt"
	"net/http"
)

// mtaSTS answers https://mta-sts.DOMAIN/.well-known/mta-sts.txt with the domain's policy
// (RFC 8461 section 3.2). Senders fetch it only from that name, so any other Host is 404.
func (h *handler) mtaSTS(w http.ResponseWriter, r *http.Request) {
	domain, err := h.hostDomain(r, "mta-sts.", true)
	if err != nil {
		fail(w, err)
		return
	}
	// Looked up again, so a directory swapped in since hostDomain is read whole or not at all.
	d, ok := h.cfg.Directory.Load().Domain(domain)
	if !ok {
		fail(w, errUnknownDomain)
		return
	}
	mode := h.cfg.MTASTSMode
	if d.MTASTSMode != "" {
		mode = d.MTASTSMode
	}
	w.Header().Set("Content-Type", "text/plain")
	// Every domain of the cluster has the same MX: this server's name.
	fmt.Fprintf(w, "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		mode, h.cfg.Hostname, int64(h.cfg.MTASTSMaxAge.Seconds()))
}
