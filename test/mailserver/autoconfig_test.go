package mailserver_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/mailserver/tlsconf"
)

// withAutoconfig turns the autoconfig listener on with a certificate for the names clients
// and senders fetch from, so curl verifies it instead of skipping the check.
func withAutoconfig(t *testing.T, caFile *string) serverOption {
	return func(c *config.Config) {
		cert, key, err := tlsconf.WriteSelfSigned(filepath.Join(t.TempDir(), "tls"), []string{"localhost", "127.0.0.1",
			"mail.example.com", "example.com", "autoconfig.example.com", "autodiscover.example.com", "mta-sts.example.com", "mta-sts.example.org"})
		if err != nil {
			t.Fatal(err)
		}
		c.TLS = config.TLS{CertFile: cert, KeyFile: key}
		c.Listeners.Autoconfig = config.Listener{Address: "127.0.0.1:0"}
		*caFile = cert
	}
}

// fetched is what curl got.
type fetched struct {
	code        int
	contentType string
	body        string
	file        string
}

// fetch has curl get https://HOST/PATH from the autoconfig listener, verifying the certificate
// for HOST; extra arguments (a POST body) go before the URL.
func fetch(t *testing.T, s *server, caFile, host, path string, stdin string, extra ...string) fetched {
	t.Helper()
	out := filepath.Join(t.TempDir(), "body")
	args := append([]string{"-sS", "--cacert", caFile, "--connect-to", host + ":443:" + s.addr("autoconfig"),
		"-o", out, "-w", "%{http_code} %{content_type}"}, extra...)
	res, err := run(t, stdin, "curl", append(args, "https://"+host+path)...)
	if err != nil {
		t.Fatalf("curl %s%s: %v\n%s", host, path, err, res)
	}
	codeText, ct, _ := strings.Cut(res, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil {
		t.Fatalf("curl wrote %q", res)
	}
	body, _ := os.ReadFile(out)
	return fetched{code: code, contentType: ct, body: string(body), file: out}
}

// thunderbirdConfig holds the elements of config-v1.1.xml that Thunderbird reads.
type thunderbirdConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string              `xml:"id,attr"`
		Domains  []string            `xml:"domain"`
		Incoming []thunderbirdServer `xml:"incomingServer"`
		Outgoing []thunderbirdServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type thunderbirdServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Username       string `xml:"username"`
	Authentication string `xml:"authentication"`
}

// TestAutoconfigDocuments fetches every document with curl over verified HTTPS from the real
// server and reads each the way its client does.
func TestAutoconfigDocuments(t *testing.T) {
	var caFile string
	s := startServer(t, withAutoconfig(t, &caFile))
	t.Run("thunderbird", func(t *testing.T) { checkThunderbird(t, s, caFile) })
	t.Run("autodiscover", func(t *testing.T) { checkAutodiscover(t, s, caFile) })
	t.Run("mobileconfig", func(t *testing.T) { checkMobileconfig(t, s, caFile) })
	t.Run("mta-sts", func(t *testing.T) { checkMTASTS(t, s, caFile) })
}

func checkThunderbird(t *testing.T, s *server, caFile string) {
	for _, tc := range []struct{ host, path string }{
		{"autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=alice%40example.com"},
		{"autoconfig.example.com", "/mail/config-v1.1.xml"},
		{"example.com", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40example.com"},
	} {
		f := fetch(t, s, caFile, tc.host, tc.path, "")
		if f.code != 200 {
			t.Fatalf("%s%s: %d %s", tc.host, tc.path, f.code, f.body)
		}
		var cc thunderbirdConfig
		if err := xml.Unmarshal([]byte(f.body), &cc); err != nil {
			t.Fatalf("%s: %v\n%s", tc.path, err, f.body)
		}
		p := cc.Provider
		if cc.Version != "1.1" || p.ID != "example.com" || len(p.Domains) != 1 || p.Domains[0] != "example.com" {
			t.Errorf("%s: provider %+v", tc.path, cc)
		}
		want := []thunderbirdServer{
			{"imap", "mail.example.com", 993, "SSL", "%EMAILADDRESS%", "password-cleartext"},
			{"pop3", "mail.example.com", 995, "SSL", "%EMAILADDRESS%", "password-cleartext"},
			{"smtp", "mail.example.com", 465, "SSL", "%EMAILADDRESS%", "password-cleartext"},
			{"smtp", "mail.example.com", 587, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"},
		}
		if got := append(p.Incoming, p.Outgoing...); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: servers %+v, want %+v", tc.path, got, want)
		}
	}
	for _, tc := range []struct {
		host, path string
		code       int
	}{
		{"autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=alice%40example.net", 404},
		{"example.com", "/mail/config-v1.1.xml?emailaddress=not-an-address", 400},
	} {
		if f := fetch(t, s, caFile, tc.host, tc.path, ""); f.code != tc.code {
			t.Errorf("%s: %d, want %d: %s", tc.path, f.code, tc.code, f.body)
		}
	}
}

// autodiscoverResponse holds what Outlook reads of a POX response.
type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType string `xml:"AccountType"`
			Action      string `xml:"Action"`
			Protocols   []struct {
				Type      string `xml:"Type"`
				Server    string `xml:"Server"`
				Port      int    `xml:"Port"`
				LoginName string `xml:"LoginName"`
				SSL       string `xml:"SSL"`
			} `xml:"Protocol"`
		} `xml:"Account"`
	} `xml:"Response"`
}

func autodiscoverRequest(addr string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>` + addr + `</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
}

func checkAutodiscover(t *testing.T, s *server, caFile string) {
	post := []string{"-H", "Content-Type: text/xml", "--data-binary", "@-"}
	f := fetch(t, s, caFile, "autodiscover.example.com", "/autodiscover/autodiscover.xml", autodiscoverRequest("alice@example.com"), post...)
	if f.code != 200 {
		t.Fatalf("%d %s", f.code, f.body)
	}
	var resp autodiscoverResponse
	if err := xml.Unmarshal([]byte(f.body), &resp); err != nil {
		t.Fatalf("not a POX response: %v\n%s", err, f.body)
	}
	a := resp.Response.Account
	if a.AccountType != "email" || a.Action != "settings" {
		t.Errorf("account %+v", a)
	}
	ports := map[string]int{}
	for _, p := range a.Protocols {
		if p.Server != "mail.example.com" || p.SSL != "on" || p.LoginName != "alice@example.com" {
			t.Errorf("protocol %+v", p)
		}
		ports[p.Type] = p.Port
	}
	if ports["IMAP"] != 993 || ports["SMTP"] != 465 {
		t.Errorf("ports %v", ports)
	}
	if f := fetch(t, s, caFile, "autodiscover.example.com", "/autodiscover/autodiscover.xml", autodiscoverRequest("alice@example.net"), post...); f.code != 404 {
		t.Errorf("unknown domain: %d %s", f.code, f.body)
	}
	if f := fetch(t, s, caFile, "autodiscover.example.com", "/autodiscover/autodiscover.xml", "<Autodiscover>", post...); f.code != 400 {
		t.Errorf("broken request: %d %s", f.code, f.body)
	}
}

// readProfile is how a device reads the profile: plistlib accepts only a well-formed property
// list, and the account payload must carry the address and where to fetch mail.
const readProfile = `
import plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
assert p["PayloadType"] == "Configuration", p
[acct] = p["PayloadContent"]
assert acct["PayloadType"] == "com.apple.mail.managed", acct
for key in acct:
    assert "Password" not in key or key == "OutgoingPasswordSameAsIncomingPassword", key
print(acct["EmailAddress"], acct["IncomingMailServerHostName"], acct["IncomingMailServerPortNumber"],
      acct["IncomingMailServerUseSSL"], acct["OutgoingMailServerPortNumber"])
`

func checkMobileconfig(t *testing.T, s *server, caFile string) {
	f := fetch(t, s, caFile, "autoconfig.example.com", "/apple/mobileconfig?emailaddress=alice%40example.com", "")
	if f.code != 200 || f.contentType != "application/x-apple-aspen-config" {
		t.Fatalf("%d %s\n%s", f.code, f.contentType, f.body)
	}
	out, err := python(t, readProfile, f.file)
	if err != nil || strings.TrimSpace(out) != "alice@example.com mail.example.com 993 True 465" {
		t.Errorf("plistlib: %v\n%s\nprofile:\n%s", err, out, f.body)
	}
	if f := fetch(t, s, caFile, "autoconfig.example.com", "/apple/mobileconfig?emailaddress=alice%40example.net", ""); f.code != 404 {
		t.Errorf("unknown domain: %d %s", f.code, f.body)
	}
}

func checkMTASTS(t *testing.T, s *server, caFile string) {
	f := fetch(t, s, caFile, "mta-sts.example.com", "/.well-known/mta-sts.txt", "")
	if f.code != 200 {
		t.Fatalf("%d %s", f.code, f.body)
	}
	p, err := parseSTSPolicy(f.contentType, f.body)
	if err != nil {
		t.Fatalf("policy refused: %v\n%q", err, f.body)
	}
	if p.mode != "testing" || p.maxAge != 604800 || !p.matchesMX("mail.example.com") {
		t.Errorf("policy %+v", p)
	}
	if f := fetch(t, s, caFile, "mta-sts.example.org", "/.well-known/mta-sts.txt", ""); f.code != 200 {
		t.Errorf("second served domain: %d", f.code)
	}
	// The certificate cannot name a domain not served; -k lets the request reach the server.
	if f := fetch(t, s, caFile, "mta-sts.example.net", "/.well-known/mta-sts.txt", "", "-k"); f.code != 404 {
		t.Errorf("unknown domain: %d %s", f.code, f.body)
	}
}

// stsPolicy is a parsed MTA-STS policy.
type stsPolicy struct {
	mode   string
	mx     []string
	maxAge int64
}

var (
	stsKey    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_]{0,31}$`)
	stsMaxAge = regexp.MustCompile(`^[0-9]{1,10}$`)
)

// parseSTSPolicy follows RFC 8461 section 3.2 as a sender does: the media type is text/plain,
// fields are "key: value" lines ending in LF or CRLF, version comes first and is STSv1, mode is
// enforce, testing or none, there is at least one mx pattern (a name, optionally led by "*."),
// and max_age is a number of seconds of at most 31557600. Unknown fields are ignored.
func parseSTSPolicy(contentType, body string) (stsPolicy, error) {
	var p stsPolicy
	if mt, _, _ := strings.Cut(contentType, ";"); strings.TrimSpace(mt) != "text/plain" {
		return p, fmt.Errorf("media type %q, want text/plain", contentType)
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimSuffix(strings.ReplaceAll(body, "\r\n", "\n"), "\n"), "\n") {
		key, value, ok := strings.Cut(line, ":")
		value = strings.Trim(value, " \t")
		if !ok || !stsKey.MatchString(key) {
			return p, fmt.Errorf("line %d %q is not key: value", i+1, line)
		}
		if i == 0 && (key != "version" || value != "STSv1") {
			return p, fmt.Errorf("first field %q, want version: STSv1", line)
		}
		if key != "mx" && seen[key] {
			return p, fmt.Errorf("field %s twice", key)
		}
		seen[key] = true
		switch key {
		case "mode":
			if value != "enforce" && value != "testing" && value != "none" {
				return p, fmt.Errorf("mode %q", value)
			}
			p.mode = value
		case "mx":
			if !validMXPattern(value) {
				return p, fmt.Errorf("mx %q is not a host name or *.pattern", value)
			}
			p.mx = append(p.mx, value)
		case "max_age":
			n, err := strconv.ParseInt(value, 10, 64)
			if !stsMaxAge.MatchString(value) || err != nil || n > 31557600 {
				return p, fmt.Errorf("max_age %q", value)
			}
			p.maxAge = n
		}
	}
	if p.mode == "" || !seen["max_age"] || (p.mode != "none" && len(p.mx) == 0) {
		return p, fmt.Errorf("missing fields: mode %q, mx %v, max_age set %t", p.mode, p.mx, seen["max_age"])
	}
	return p, nil
}

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validMXPattern(v string) bool {
	v = strings.TrimPrefix(strings.ToLower(v), "*.")
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

// matchesMX is RFC 8461 section 4.1: a pattern matches the MX host itself, or "*." matches
// exactly one leftmost label.
func (p stsPolicy) matchesMX(host string) bool {
	host = strings.ToLower(host)
	for _, pat := range p.mx {
		pat = strings.ToLower(pat)
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if _, parent, found := strings.Cut(host, "."); found && parent == rest {
				return true
			}
		} else if pat == host {
			return true
		}
	}
	return false
}

// TestSTSPolicyChecker: the checker refuses what RFC 8461 refuses, so its pass above means
// something.
func TestSTSPolicyChecker(t *testing.T) {
	good := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n"
	p, err := parseSTSPolicy("text/plain", good)
	if err != nil || !p.matchesMX("mail.example.com") || !p.matchesMX("mx1.example.net") || p.matchesMX("a.b.example.net") {
		t.Errorf("good policy: %+v %v", p, err)
	}
	for name, body := range map[string]string{
		"version not first": "mode: testing\nversion: STSv1\nmx: mail.example.com\nmax_age: 1\n",
		"unknown version":   "version: STSv2\nmode: testing\nmx: mail.example.com\nmax_age: 1\n",
		"unknown mode":      "version: STSv1\nmode: strict\nmx: mail.example.com\nmax_age: 1\n",
		"no mx":             "version: STSv1\nmode: testing\nmax_age: 1\n",
		"bad mx":            "version: STSv1\nmode: testing\nmx: mail example\nmax_age: 1\n",
		"max_age words":     "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: a week\n",
		"max_age too long":  "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: 31557601\n",
		"no max_age":        "version: STSv1\nmode: testing\nmx: mail.example.com\n",
	} {
		if _, err := parseSTSPolicy("text/plain", body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseSTSPolicy("text/html", good); err == nil {
		t.Error("text/html accepted")
	}
}
