package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/internal/servertest"
	"github.com/kubemail/kubemail/mailserver/login"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/sendlimit"
	"github.com/kubemail/kubemail/mailserver/store"
	"github.com/kubemail/kubemail/mailserver/tlsconf/tlstest"
)

const password = "correct horse battery"

var hashOnce = sync.OnceValues(func() (string, error) { return passwordhash.Hash(password) })

// testDirectory serves example.com; gone.example was served once and is now unavailable.
const testDirectory = `
domains:
  - name: example.com
mailboxes:
  - address: alice@example.com
    passwordHash: %[1]q
    aliases: [postmaster@example.com]
  - address: bob@example.com
    passwordHash: %[1]q
  - address: tiny@example.com
    passwordHash: %[1]q
    quota: 1000
  - address: carol@example.com
    passwordHash: %[1]q
    forwardTo: [carol@elsewhere.net]
    keepCopy: false
  - address: dave@example.com
    passwordHash: %[1]q
    disabled: true
    disabledReason: suspended
unavailableDomains: [gone.example]
`

// queued is one message handed to the outbound queue.
type queued struct {
	from  string
	rcpts []string
	msg   string
}

// fakeOutbound records what would go to the outbound queue.
type fakeOutbound struct {
	mu   sync.Mutex
	msgs []queued
}

func (o *fakeOutbound) Enqueue(from string, rcpts []string, msg []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, queued{from, append([]string(nil), rcpts...), string(msg)})
	return nil
}

func (o *fakeOutbound) queued() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]queued(nil), o.msgs...)
}

type envOptions struct {
	noOutbound bool // remote recipients get a temporary failure
	sendLimit  int  // messages per user and hour on submission; 0: no limit
}

// env is an MX listener and a submission listener (STARTTLS) on 127.0.0.1 over a real
// directory and store.
type env struct {
	mx, submission string
	store          *store.Store
	outbound       *fakeOutbound
	metrics        *metrics.Metrics
	clientTLS      *tls.Config
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	hash, err := hashOnce()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.Parse([]byte(fmt.Sprintf(testDirectory, hash)), passwordhash.ValidateHash)
	if err != nil {
		t.Fatal(err)
	}
	var live directory.Live
	live.Store(dir)
	m := metrics.New()
	authn, err := login.New(&live, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	certs := tlstest.Loopback(t)
	e := &env{store: st, outbound: &fakeOutbound{}, metrics: m, clientTLS: certs.Client}
	cfg := Config{Hostname: "mail.example.com", MaxMessageBytes: 64 << 10, MaxRecipients: 5, MaxHops: 5,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		Directory: &live, Local: &delivery.Local{Store: st}, Outbound: e.outbound, Auth: authn,
		SendLimit: sendlimit.New(sendlimit.Config{Limit: opts.sendLimit}), Metrics: m, Log: log}
	if opts.noOutbound {
		cfg.Outbound = nil
	}
	mx, sub := cfg, cfg
	mx.Role, mx.Name = RoleMX, "smtp"
	sub.Role, sub.Name = RoleSubmission, "submission"
	e.mx = serve(t, NewServer(mx, certs.Server))
	e.submission = serve(t, NewServer(sub, certs.Server))
	return e
}

// serve runs srv on a loopback port until the test ends and returns the port's address.
func serve(t *testing.T, srv *smtp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// dial connects a go-smtp client and says EHLO.
func (e *env) dial(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	return hello(t, c, err)
}

// dialTLS connects, upgrades with STARTTLS and says EHLO again.
func (e *env) dialTLS(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, e.clientTLS)
	return hello(t, c, err)
}

// hello says EHLO as client.example.net on a connection just made, which the end of the test
// closes.
func hello(t *testing.T, c *smtp.Client, dialErr error) *smtp.Client {
	t.Helper()
	if dialErr != nil {
		t.Fatal(dialErr)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	return c
}

// login opens a submission session over STARTTLS, authenticated as user.
func (e *env) login(t *testing.T, user string) *smtp.Client {
	t.Helper()
	c := e.dialTLS(t, e.submission)
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		t.Fatalf("AUTH PLAIN as %s: %v", user, err)
	}
	return c
}

// send runs DATA with msg and returns the server's answer to the final dot.
func send(t *testing.T, c *smtp.Client, msg string) error {
	t.Helper()
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatalf("writing the message: %v", err)
	}
	return w.Close()
}

// inbox returns the messages stored in address's INBOX.
func (e *env) inbox(t *testing.T, address string) []string {
	t.Helper()
	return servertest.Inbox(t, e.store, address)
}

// wantReply fails the test unless err is the SMTP reply code/enhanced.
func wantReply(t *testing.T, what string, err error, code int, enhanced smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Errorf("%s: %v, want a %d %v reply", what, err, code, enhanced)
		return
	}
	if se.Code != code || se.EnhancedCode != enhanced {
		t.Errorf("%s: %d %v %q, want %d %v", what, se.Code, se.EnhancedCode, se.Message, code, enhanced)
	}
}

// counter reads one series of a counter vector.
func counter(t *testing.T, vec *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := vec.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func message(from, to, subject string) string {
	return "From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nHello.\r\n"
}

// received returns the first Received field of msg, unfolded.
func received(msg string) string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	for _, field := range strings.Split(strings.ReplaceAll(head, "\r\n\t", " "), "\r\n") {
		if strings.HasPrefix(field, "Received: ") {
			return field
		}
	}
	return ""
}
