package server

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/testutil"
)

// allListeners turns on every listener, each on a free loopback port.
func allListeners(cfg *config.Config) {
	lo := config.Listener{Address: "127.0.0.1:0"}
	cfg.Listeners = config.Listeners{SMTP: lo, Submission: lo, Submissions: lo, IMAP: lo, IMAPS: lo,
		POP3: lo, POP3S: lo, HTTP: lo}
}

// TestEveryListenerServesItsProtocol: each configured listener is bound, speaks its own
// protocol, and implicit-TLS ones present the configured certificate.
func TestEveryListenerServesItsProtocol(t *testing.T) {
	s := startServer(t, allListeners)
	for _, tc := range []struct {
		name     string
		implicit bool
		prefix   string
	}{
		{"smtp", false, "220 mail.example.com "},
		{"submission", false, "220 mail.example.com "},
		{"submissions", true, "220 mail.example.com "},
		{"imap", false, "* OK "},
		{"imaps", true, "* OK "},
		{"pop3", false, "+OK "},
		{"pop3s", true, "+OK "},
	} {
		if got := s.greeting(t, tc.name, tc.implicit); !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("%s greets with %q, want %q...", tc.name, got, tc.prefix)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nothing-here": 404} {
		if code, body := s.request(t, "GET", path, ""); code != want {
			t.Errorf("GET %s = %d %q, want %d", path, code, body, want)
		}
	}
}

// TestMailFlowsBetweenListeners: mail taken on the MX and submission listeners lands in the
// store that IMAP reads, and the metrics endpoint counts it per listener.
func TestMailFlowsBetweenListeners(t *testing.T) {
	s := startServer(t, allListeners)

	mx, err := smtp.Dial(s.addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer mx.Close()
	if err := mx.SendMail("sender@elsewhere.net", []string{"alice@example.com"},
		strings.NewReader("From: sender@elsewhere.net\r\nSubject: inbound\r\n\r\nHi.\r\n")); err != nil {
		t.Fatalf("MX: %v", err)
	}

	sub, err := smtp.DialTLS(s.addr(t, "submissions"), s.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Auth(sasl.NewPlainClient("", "bob@example.com", password)); err != nil {
		t.Fatalf("AUTH on submissions: %v", err)
	}
	if err := sub.SendMail("bob@example.com", []string{"alice@example.com"},
		strings.NewReader("From: bob@example.com\r\nSubject: submitted\r\n\r\nHi.\r\n")); err != nil {
		t.Fatalf("submissions: %v", err)
	}

	c, err := imapclient.DialTLS(s.addr(t, "imaps"), &imapclient.Options{TLSConfig: s.clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.com", password).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 {
		t.Errorf("alice's INBOX has %d messages over IMAP, want the 2 sent", sel.NumMessages)
	}

	_, metrics := s.request(t, "GET", "/metrics", "")
	for _, want := range []string{`kubemail_messages_accepted_total{listener="smtp"} 1`, `kubemail_messages_accepted_total{listener="submissions"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestConnectionLimitSpansListeners: the per-address limit counts connections on every
// listener together, refuses in each protocol's own words, and frees the slot on close.
func TestConnectionLimitSpansListeners(t *testing.T) {
	s := startServer(t, func(cfg *config.Config) {
		allListeners(cfg)
		cfg.Limits.MaxConnectionsPerIP = 1
	})
	held, err := net.Dial("tcp", s.addr(t, "smtp"))
	if err != nil {
		t.Fatal(err)
	}
	held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(held).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("first connection: %q, %v", line, err)
	}
	for name, want := range map[string]string{
		"smtp": "421 4.7.0 Too many connections", "imap": "* BYE Too many connections", "pop3": "-ERR [SYS/TEMP] Too many connections",
	} {
		if got := s.greeting(t, name, false); !strings.HasPrefix(got, want) {
			t.Errorf("%s with a connection open elsewhere: %q, want %q...", name, got, want)
		}
	}
	held.Close()
	testutil.Eventually(t, "a new connection admitted once the first is closed", func() bool {
		return strings.HasPrefix(s.greeting(t, "imap", false), "* OK ")
	})
}

// TestStartFailsOnABusyPort: a listener that cannot bind stops Start with an error naming it,
// and what Start had opened is closed again (the same data folder starts cleanly afterwards).
func TestStartFailsOnABusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, _ := prepare(t, func(c *config.Config) { c.Listeners.SMTP = config.Listener{Address: busy.Addr().String()} })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s, err := Start(context.Background(), cfg, log); err == nil {
		s.Shutdown()
		t.Fatal("Start succeeded with the smtp port taken")
	} else if !strings.Contains(err.Error(), "listener smtp") || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("Start with the smtp port taken = %v, want an error naming the smtp listener and its address", err)
	}

	cfg.Listeners.SMTP.Address = "127.0.0.1:0"
	s, err := Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Start on the same data folder after the failure: %v", err)
	}
	s.Shutdown()
	s.Wait()
}

// TestFailedStartClosesWhatItOpened: when a later listener cannot bind, the ones Start had
// already opened are closed with it (nothing keeps serving in a process that goes on).
func TestFailedStartClosesWhatItOpened(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpAddr := free.Addr().String()
	free.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, _ := prepare(t, func(c *config.Config) {
		c.Listeners.SMTP = config.Listener{Address: smtpAddr}
		c.Listeners.IMAPS = config.Listener{Address: busy.Addr().String()}
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s, err := Start(context.Background(), cfg, log); err == nil {
		s.Shutdown()
		t.Fatal("Start succeeded with the imaps port taken")
	}
	again, err := net.Listen("tcp", smtpAddr)
	if err != nil {
		t.Fatalf("the smtp port Start had opened is still taken after it failed: %v", err)
	}
	again.Close()
}

// With a drain delay, a server told to stop reports itself not ready at once and goes on
// accepting clients until the delay is over.
func TestShutdownDrainsBeforeClosing(t *testing.T) {
	cfg, _ := prepare(t, func(c *config.Config) {
		c.Listeners.SMTP = config.Listener{Address: "127.0.0.1:0"}
		c.Limits.DrainDelay.Duration = 2 * time.Second
	})
	s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, cfg: cfg}
	done := make(chan struct{})
	go func() {
		s.Shutdown()
		s.Wait()
		close(done)
	}()
	testutil.Eventually(t, "/readyz failing", func() bool {
		code, _ := ts.request(t, http.MethodGet, "/readyz", "")
		return code == http.StatusServiceUnavailable
	})
	c, err := smtp.Dial(ts.addr(t, "smtp"))
	if err != nil {
		t.Fatalf("a client refused while draining: %v", err)
	}
	if err := c.Hello("client.example.org"); err != nil {
		t.Errorf("EHLO while draining: %v", err)
	}
	c.Close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop after its drain")
	}
}
