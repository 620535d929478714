package autoconfig

import (
	"encoding/xml"
	"net/http"
)

// clientConfig is Thunderbird's autoconfig document, version 1.1
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           string         `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []serverConfig `xml:"incomingServer"`
	Outgoing         []serverConfig `xml:"outgoingServer"`
}

type serverConfig struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// thunderbird answers /mail/config-v1.1.xml (on autoconfig.DOMAIN) and
// /.well-known/autoconfig/mail/config-v1.1.xml (on DOMAIN itself). The address, when given,
// names the domain; without it the Host does.
func (h *handler) thunderbird(w http.ResponseWriter, r *http.Request) {
	var domain string
	var err error
	if raw := r.URL.Query().Get("emailaddress"); raw != "" {
		_, domain, err = h.address(raw)
	} else {
		domain, err = h.hostDomain(r, "autoconfig.", false)
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeXML(w, "application/xml", h.clientConfig(domain))
}

func (h *handler) clientConfig(domain string) clientConfig {
	host, p := h.cfg.Hostname, h.cfg.Ports
	// %EMAILADDRESS% is filled in by Thunderbird: accounts log in with their full address.
	server := func(typ string, port int, socket string) serverConfig {
		return serverConfig{Type: typ, Hostname: host, Port: port, SocketType: socket,
			Username: "%EMAILADDRESS%", Authentication: "password-cleartext"}
	}
	return clientConfig{Version: "1.1", Provider: emailProvider{
		ID: domain, Domain: domain, DisplayName: domain, DisplayShortName: domain,
		Incoming: []serverConfig{server("imap", p.IMAPS, "SSL"), server("pop3", p.POP3S, "SSL")},
		// Implicit TLS first (RFC 8314 prefers it); 587 for networks that block 465.
		Outgoing: []serverConfig{server("smtp", p.Submissions, "SSL"), server("smtp", p.Submission, "STARTTLS")},
	}}
}

// writeXML sends v as an XML document; encoding/xml escapes every value it writes.
func writeXML(w http.ResponseWriter, contentType string, v any) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", contentType+"; charset=utf-8")
	w.Write([]byte(xml.Header))
	w.Write(out)
	w.Write([]byte("\n"))
}
