package autoconfig

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
)

// newHandler serves example.com, the IDN bücher.example and example.org (MTA-STS mode none)
// from mail.example.com.
func newHandler(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	d, err := directory.Parse([]byte("domains: [{name: example.com}, {name: xn--bcher-kva.example}, {name: example.org, mtaSTSMode: none}]\n"),
		func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var live directory.Live
	live.Store(d)
	cfg.Directory = &live
	if cfg.Hostname == "" {
		cfg.Hostname = "mail.example.com"
	}
	return New(cfg)
}

type result struct {
	code int
	body string
	ct   string
}

func do(h http.Handler, method, host, target, body string) result {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return result{w.Code, string(b), w.Header().Get("Content-Type")}
}

func TestThunderbird(t *testing.T) {
	h := newHandler(t, Config{Ports: Ports{IMAPS: 10993}})
	for _, tc := range []struct {
		name, host, target string
		code               int
		domain             string
	}{
		{"address names the domain", "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=alice%40example.com", 200, "example.com"},
		{"host names the domain", "autoconfig.example.com:443", "/mail/config-v1.1.xml", 200, "example.com"},
		{"well-known on the domain", "example.com", "/.well-known/autoconfig/mail/config-v1.1.xml", 200, "example.com"},
		{"unicode address", "x", "/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape("jörg@bücher.example"), 200, "xn--bcher-kva.example"},
		{"unknown domain by address", "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=a%40example.net", 404, ""},
		{"unknown domain by host", "autoconfig.example.net", "/mail/config-v1.1.xml", 404, ""},
		{"host no domain", "[::1]", "/mail/config-v1.1.xml", 404, ""},
		{"bad address", "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=alice", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(h, "GET", tc.host, tc.target, "")
			if res.code != tc.code {
				t.Fatalf("status %d, want %d: %s", res.code, tc.code, res.body)
			}
			if tc.code != 200 {
				return
			}
			var cc clientConfig
			if err := xml.Unmarshal([]byte(res.body), &cc); err != nil {
				t.Fatal(err)
			}
			p := cc.Provider
			if cc.Version != "1.1" || p.ID != tc.domain || p.Domain != tc.domain || len(p.Incoming) != 2 || len(p.Outgoing) != 2 {
				t.Fatalf("document %+v", cc)
			}
			want := []serverConfig{
				{"imap", "mail.example.com", 10993, "SSL", "%EMAILADDRESS%", "password-cleartext"},
				{"pop3", "mail.example.com", 995, "SSL", "%EMAILADDRESS%", "password-cleartext"},
				{"smtp", "mail.example.com", 465, "SSL", "%EMAILADDRESS%", "password-cleartext"},
				{"smtp", "mail.example.com", 587, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"},
			}
			for i, got := range append(p.Incoming, p.Outgoing...) {
				if got != want[i] {
					t.Errorf("server %d: %+v, want %+v", i, got, want[i])
				}
			}
		})
	}
	if res := do(h, "POST", "autoconfig.example.com", "/mail/config-v1.1.xml", ""); res.code != 405 {
		t.Errorf("POST: %d", res.code)
	}
}

func TestAutodiscover(t *testing.T) {
	h := newHandler(t, Config{})
	req := func(addr string) string {
		return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>` + addr + `</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>`
	}
	for _, tc := range []struct {
		name, method, target, body string
		code                       int
		login                      string
	}{
		{"POX request", "POST", "/autodiscover/autodiscover.xml", req("Alice@Example.com"), 200, "alice@example.com"},
		{"capitalised path", "POST", "/Autodiscover/Autodiscover.xml", req("alice@example.com"), 200, "alice@example.com"},
		{"GET by hand", "GET", "/autodiscover/autodiscover.xml?emailaddress=bob%40example.com", "", 200, "bob@example.com"},
		{"escaped in the response", "POST", "/autodiscover/autodiscover.xml", req("o'hara&amp;co@example.com"), 200, "o'hara&co@example.com"},
		{"unknown domain", "POST", "/autodiscover/autodiscover.xml", req("alice@example.net"), 404, ""},
		{"no address", "POST", "/autodiscover/autodiscover.xml", req(""), 400, ""},
		{"not XML", "POST", "/autodiscover/autodiscover.xml", "{}", 400, ""},
		{"empty body", "POST", "/autodiscover/autodiscover.xml", "", 400, ""},
		{"too large", "POST", "/autodiscover/autodiscover.xml", req(strings.Repeat("a", 20<<10) + "@example.com"), 400, ""},
		{"bad address", "POST", "/autodiscover/autodiscover.xml", req("alice@@example.com"), 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(h, tc.method, "autodiscover.example.com", tc.target, tc.body)
			if res.code != tc.code {
				t.Fatalf("status %d, want %d: %s", res.code, tc.code, res.body)
			}
			if tc.code != 200 {
				return
			}
			if strings.Contains(res.body, "&co") {
				t.Errorf("& not escaped: %s", res.body)
			}
			var resp autodiscoverResponse
			if err := xml.Unmarshal([]byte(res.body), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.XMLName.Space != autodiscoverResponseNS || resp.Response.XMLNS != outlookResponseNS {
				t.Errorf("namespaces %q %q", resp.XMLName.Space, resp.Response.XMLNS)
			}
			a := resp.Response.Account
			if a.AccountType != "email" || a.Action != "settings" || len(a.Protocols) != 3 {
				t.Fatalf("account %+v", a)
			}
			for i, want := range []struct {
				typ  string
				port int
			}{{"IMAP", 993}, {"POP3", 995}, {"SMTP", 465}} {
				got := a.Protocols[i]
				if got.Type != want.typ || got.Port != want.port || got.Server != "mail.example.com" ||
					got.SSL != "on" || got.LoginName != tc.login {
					t.Errorf("protocol %d: %+v", i, got)
				}
			}
		})
	}
}

func TestMobileconfig(t *testing.T) {
	h := newHandler(t, Config{})
	for _, tc := range []struct {
		name, query string
		code        int
	}{
		{"account", "emailaddress=alice%40example.com", 200},
		{"unknown domain", "emailaddress=alice%40example.net", 404},
		{"missing address", "", 400},
		{"bad address", "emailaddress=alice%40", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(h, "GET", "autoconfig.example.com", "/apple/mobileconfig?"+tc.query, "")
			if res.code != tc.code {
				t.Fatalf("status %d, want %d: %s", res.code, tc.code, res.body)
			}
			if tc.code != 200 {
				return
			}
			if res.ct != "application/x-apple-aspen-config" {
				t.Errorf("Content-Type %q", res.ct)
			}
			for _, want := range []string{"<key>EmailAddress</key>\n\t\t\t<string>alice@example.com</string>",
				"<key>IncomingMailServerPortNumber</key>\n\t\t\t<integer>993</integer>",
				"<string>com.apple.mail.managed</string>", "<key>IncomingMailServerUseSSL</key>\n\t\t\t<true/>"} {
				if !strings.Contains(res.body, want) {
					t.Errorf("profile lacks %q:\n%s", want, res.body)
				}
			}
			if strings.Contains(res.body, "<key>IncomingPassword</key>") || strings.Contains(res.body, "<key>OutgoingPassword</key>") {
				t.Errorf("profile carries a password field:\n%s", res.body)
			}
		})
	}
	// Fetched twice, the profile is the same, so installing it again replaces the account.
	a := do(h, "GET", "x", "/apple/mobileconfig?emailaddress=alice%40example.com", "")
	b := do(h, "GET", "x", "/apple/mobileconfig?emailaddress=alice%40example.com", "")
	if a.body != b.body {
		t.Error("the profile differs between two fetches")
	}
}

// TestProfileEscapes checks that characters an address may carry cannot break the plist:
// the whole profile parses as XML and gives the address back as it was.
func TestProfileEscapes(t *testing.T) {
	h := &handler{cfg: Config{Hostname: "mail.example.com"}}
	addr := `o'hara&<co>@example.com`
	body := h.profile(addr)
	dec := xml.NewDecoder(strings.NewReader(string(body)))
	var texts []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("profile is not XML: %v\n%s", err, body)
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	if !strings.Contains(strings.Join(texts, "|"), "|"+addr+"|") {
		t.Errorf("address not given back as it was: %q", texts)
	}
}

func TestMTASTS(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		cfg        Config
		code       int
		want       string
	}{
		{"default", "mta-sts.example.com", Config{}, 200,
			"version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"},
		{"enforce with port in Host", "MTA-STS.example.com:443", Config{MTASTSMode: "enforce", MTASTSMaxAge: 24 * time.Hour}, 200,
			"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n"},
		{"the domain's own mode wins", "mta-sts.example.org", Config{MTASTSMode: "enforce"}, 200,
			"version: STSv1\r\nmode: none\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"},
		{"unknown domain", "mta-sts.example.net", Config{}, 404, ""},
		{"domain without the mta-sts label", "example.com", Config{}, 404, ""},
		{"other label", "autoconfig.example.com", Config{}, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(newHandler(t, tc.cfg), "GET", tc.host, "/.well-known/mta-sts.txt", "")
			if res.code != tc.code {
				t.Fatalf("status %d, want %d: %s", res.code, tc.code, res.body)
			}
			if tc.code == 200 && (res.body != tc.want || res.ct != "text/plain") {
				t.Errorf("policy %q (%s), want %q", res.body, res.ct, tc.want)
			}
		})
	}
}

func TestNameUUID(t *testing.T) {
	u := nameUUID("com.example.mail.mail.alice@example.com")
	if len(u) != 36 || u[14] != '5' || !strings.ContainsAny(u[19:20], "89AB") {
		t.Errorf("not a version 5 UUID: %s", u)
	}
	if u == nameUUID("com.example.mail.mail.bob@example.com") {
		t.Error("two names, one UUID")
	}
}
