package autoconfig

import (
	"fmt"
	"net/http"
)

// mtaSTS answers https://mta-sts.DOMAIN/.well-known/mta-sts.txt with the domain's policy
// (RFC 8461 section 3.2). Senders fetch it only from that name, so any other Host is 404.
func (h *handler) mtaSTS(w http.ResponseWriter, r *http.Request) {
	if _, err := h.hostDomain(r, "mta-sts.", true); err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	// Every domain of the cluster has the same MX: this server's name.
	fmt.Fprintf(w, "version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n",
		h.cfg.MTASTSMode, h.cfg.Hostname, int64(h.cfg.MTASTSMaxAge.Seconds()))
}
