package server

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// get fetches path from the autoconfig listener with the given Host header.
func get(t *testing.T, client *http.Client, base, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAutoconfigListener: the listener serves HTTPS with the server's certificate, tells
// clients the configured ports, answers with the live directory's domains, and serves plain
// HTTP only when the settings say a proxy terminates TLS.
func TestAutoconfigListener(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Listeners.Autoconfig = config.Listener{Address: "127.0.0.1:0"}
		c.Autoconfig.Ports.IMAPS = 10993
		c.Autoconfig.MTASTS.Mode = "enforce"
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: s.clientTLS}}
	base := "https://" + s.addr(t, "autoconfig")
	code, body := get(t, client, base, "autoconfig.example.com", "/mail/config-v1.1.xml?emailaddress=alice%40example.com")
	if code != 200 || !strings.Contains(body, "<port>10993</port>") || !strings.Contains(body, "<hostname>mail.example.com</hostname>") {
		t.Errorf("autoconfig: %d %s", code, body)
	}
	code, body = get(t, client, base, "mta-sts.example.com", "/.well-known/mta-sts.txt")
	if code != 200 || !strings.Contains(body, "mode: enforce\r\n") {
		t.Errorf("MTA-STS: %d %q", code, body)
	}
	if code, body := get(t, client, base, "mta-sts.example.net", "/.well-known/mta-sts.txt"); code != 404 {
		t.Errorf("unknown domain: %d %q", code, body)
	}
	// Plain HTTP on the HTTPS port gets net/http's 400, never the policy: RFC 8461 senders
	// accept it only over HTTPS.
	plain := &http.Client{Timeout: 10 * time.Second}
	if code, body := get(t, plain, "http://"+s.addr(t, "autoconfig"), "mta-sts.example.com", "/.well-known/mta-sts.txt"); code == 200 {
		t.Errorf("the HTTPS listener served plain HTTP: %q", body)
	}

	behindProxy := startServer(t, func(c *config.Config) {
		c.Listeners.Autoconfig = config.Listener{Address: "127.0.0.1:0"}
		c.Autoconfig.PlainHTTP = true
	})
	code, body = get(t, plain, "http://"+behindProxy.addr(t, "autoconfig"), "mta-sts.example.com", "/.well-known/mta-sts.txt")
	if code != 200 || !strings.HasPrefix(body, "version: STSv1\r\nmode: testing\r\n") {
		t.Errorf("plain HTTP MTA-STS: %d %q", code, body)
	}
	if _, err := tls.Dial("tcp", behindProxy.addr(t, "autoconfig"), s.clientTLS); err == nil {
		t.Error("the plain HTTP listener completed a TLS handshake")
	}
}
