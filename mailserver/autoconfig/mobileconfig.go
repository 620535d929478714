package autoconfig

import (
	"bytes"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// mobileconfig answers /apple/mobileconfig?emailaddress=... with an unsigned configuration
// profile holding one com.apple.mail.managed payload. The password is not in it: the device
// asks for it when the profile is installed.
func (h *handler) mobileconfig(w http.ResponseWriter, r *http.Request) {
	addr, domain, err := h.address(r.URL.Query().Get("emailaddress"))
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-apple-aspen-config")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.mobileconfig"`, domain))
	w.Write(h.profile(addr))
}

// plistDict is a property list dictionary in the order written; its values are strings,
// ints, bools, plistDicts or []plistDict.
type plistDict []plistEntry

type plistEntry struct {
	key   string
	value any
}

func (h *handler) profile(addr string) []byte {
	p := h.cfg.Ports
	// Identifiers and UUIDs derive from the host and address, so fetching the profile again
	// gives the same ones and installing it replaces the account instead of adding a second.
	ident := reverseDNS(h.cfg.Hostname) + ".mail." + addr
	account := plistDict{
		{"EmailAccountDescription", addr},
		{"EmailAccountType", "EmailTypeIMAP"},
		{"EmailAddress", addr},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerHostName", h.cfg.Hostname},
		{"IncomingMailServerPortNumber", p.IMAPS},
		{"IncomingMailServerUseSSL", true},
		{"IncomingMailServerUsername", addr},
		{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		{"OutgoingMailServerHostName", h.cfg.Hostname},
		{"OutgoingMailServerPortNumber", p.Submissions},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerUsername", addr},
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", "Mail account " + addr},
		{"PayloadDisplayName", addr},
		{"PayloadIdentifier", ident + ".account"},
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadUUID", nameUUID(ident + ".account")},
		{"PayloadVersion", 1},
	}
	profile := plistDict{
		{"PayloadContent", []plistDict{account}},
		{"PayloadDescription", "Sets up the mail account " + addr},
		{"PayloadDisplayName", "Mail: " + addr},
		{"PayloadIdentifier", ident},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", nameUUID(ident)},
		{"PayloadVersion", 1},
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writePlist(&b, profile, 0)
	b.WriteString("</plist>\n")
	return b.Bytes()
}

// writePlist writes v in the XML property list format, escaping every string.
func writePlist(b *bytes.Buffer, v any, depth int) {
	indent := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case plistDict:
		b.WriteString(indent + "<dict>\n")
		for _, e := range v {
			b.WriteString(indent + "\t<key>")
			xml.EscapeText(b, []byte(e.key))
			b.WriteString("</key>\n")
			writePlist(b, e.value, depth+1)
		}
		b.WriteString(indent + "</dict>\n")
	case []plistDict:
		b.WriteString(indent + "<array>\n")
		for _, d := range v {
			writePlist(b, d, depth+1)
		}
		b.WriteString(indent + "</array>\n")
	case string:
		b.WriteString(indent + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case int:
		fmt.Fprintf(b, "%s<integer>%d</integer>\n", indent, v)
	case bool:
		fmt.Fprintf(b, "%s<%t/>\n", indent, v)
	default:
		panic(fmt.Sprintf("autoconfig: no plist form for %T", v))
	}
}

// reverseDNS turns mail.example.com into com.example.mail, the form payload identifiers take.
func reverseDNS(host string) string {
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// nameUUID is a name-based UUID (version 5 layout over SHA-1 of the name), stable for a name.
func nameUUID(name string) string {
	sum := sha1.Sum([]byte(name))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
