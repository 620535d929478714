package mailserver_test

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// refusedScript connects with Python's ssl module, which raises on any TLS error (an unclean
// end included, with suppress_ragged_eofs off), and prints what the server said before closing.
const refusedScript = `
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30), suppress_ragged_eofs=False)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
`

// TestImplicitTLSRefusalIsReadable fills the per-address connection limit, then connects to
// each implicit-TLS listener: the refusal must come inside TLS, as the protocol's own reply,
// followed by a clean close.
func TestImplicitTLSRefusalIsReadable(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Limits.MaxConnectionsPerIP = 1
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
	})
	held, err := tls.Dial("tcp", s.addr("imaps"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Now().Add(30 * time.Second))
	if l, err := bufio.NewReader(held).ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("first connection: %q, %v", l, err)
	}
	for _, tc := range []struct{ listener, want string }{
		{"imaps", "* BYE Too many connections"},
		{"pop3s", "-ERR [SYS/TEMP] Too many connections"},
		{"submissions", "421 4.7.0 Too many connections"},
	} {
		_, port, _ := strings.Cut(s.addr(tc.listener), ":")
		out, err := python(t, refusedScript, port)
		if err != nil || !strings.HasPrefix(out, tc.want) {
			t.Errorf("%s: want %q, then a clean close; got %v\n%s", tc.listener, tc.want, err, out)
		}
	}
	// OpenSSL reports TLS failures as "...:error:0A00010B:SSL routines:..."; the verify error
	// about the self-signed certificate is expected.
	out, err := run(t, "", "openssl", "s_client", "-connect", s.addr("imaps"), "-quiet")
	if err != nil || !strings.Contains(out, "* BYE Too many connections") || strings.Contains(out, ":error:") {
		t.Errorf("openssl s_client: %v\n%s", err, out)
	}
	if got := s.metric(`kubemail_connections_rejected_total{listener="imaps",reason="per_ip_limit"}`); !strings.HasSuffix(got, " 2") {
		t.Errorf("refusals on imaps counted: %q, want 2", got)
	}
	for _, l := range strings.Split(s.logs(), "\n") {
		if strings.Contains(l, "level=WARN") && !strings.Contains(l, "SRS secret") {
			t.Errorf("refusal logged as a warning: %s", l)
		}
	}
}
