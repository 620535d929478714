package autoconfig

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
)

// The POX autodiscover schemas Outlook speaks
// ([MS-OXDSCLI] and the "Autodiscover for Exchange" POX reference).
const (
	autodiscoverResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	outlookResponseNS      = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// autodiscoverRequest is the part of Outlook's request read here; elements are matched by
// local name, so the request schema's namespace may be present or not.
type autodiscoverRequest struct {
	Request struct {
		EMailAddress string `xml:"EMailAddress"`
	} `xml:"Request"`
}

type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"Autodiscover"`
	XMLNS    string   `xml:"xmlns,attr"`
	Response struct {
		XMLNS   string `xml:"xmlns,attr"`
		Account struct {
			AccountType string     `xml:"AccountType"`
			Action      string     `xml:"Action"`
			Protocols   []protocol `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

type protocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"`
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	AuthRequired   string `xml:"AuthRequired"`
}

// maxAutodiscoverRequest bounds the request body: a real one is a few hundred bytes.
const maxAutodiscoverRequest = 16 << 10

// autodiscover answers Outlook's POX request (POST with an XML body naming EMailAddress) and,
// for a look by hand, GET with ?emailaddress=.
func (h *handler) autodiscover(w http.ResponseWriter, r *http.Request) {
	raw, err := autodiscoverAddress(w, r)
	if err != nil {
		fail(w, err)
		return
	}
	addr, _, err := h.address(raw)
	if err != nil {
		fail(w, err)
		return
	}
	writeXML(w, "application/xml", h.autodiscoverResponse(addr))
}

func autodiscoverAddress(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Method != http.MethodPost {
		return r.URL.Query().Get("emailaddress"), nil
	}
	var req autodiscoverRequest
	err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, maxAutodiscoverRequest)).Decode(&req)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return "", badRequest{"request too large"}
	case errors.Is(err, io.EOF):
		return "", badRequest{"empty request"}
	case err != nil:
		return "", badRequest{"request is not XML"}
	case req.Request.EMailAddress == "":
		return "", badRequest{"request has no EMailAddress"}
	}
	return req.Request.EMailAddress, nil
}

func (h *handler) autodiscoverResponse(addr string) autodiscoverResponse {
	p := h.cfg.Ports
	proto := func(typ string, port int) protocol {
		return protocol{Type: typ, Server: h.cfg.Hostname, Port: port, DomainRequired: "off",
			LoginName: addr, SPA: "off", SSL: "on", AuthRequired: "on"}
	}
	var resp autodiscoverResponse
	resp.XMLNS = autodiscoverResponseNS
	resp.Response.XMLNS = outlookResponseNS
	resp.Response.Account.AccountType = "email"
	resp.Response.Account.Action = "settings"
	// SSL on with the implicit-TLS ports: Outlook's POX has no way to say STARTTLS.
	resp.Response.Account.Protocols = []protocol{proto("IMAP", p.IMAPS), proto("POP3", p.POP3S), proto("SMTP", p.Submissions)}
	return resp
}
