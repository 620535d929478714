package mailserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// pipelineScript sends n commands in one go over implicit TLS with Python's ssl module and
// checks that every reply comes back, in order. Replies held back until the input is drained
// must still all arrive.
const pipelineScript = `
import socket, ssl, sys
proto, port, n, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60))
f = s.makefile("rb")
def line():
    l = f.readline()
    if not l:
        raise SystemExit("connection closed")
    return l.decode()
line()  # greeting
if proto == "imap":
    s.sendall(("a%d NOOP\r\n" % 0).encode() + b"".join(b"a%d NOOP\r\n" % i for i in range(1, n)))
    want = ["a%d OK" % i for i in range(n)]
elif proto == "pop3":
    s.sendall(("USER %s\r\nPASS %s\r\n" % (user, pw)).encode() + b"NOOP\r\n" * n)
    want = ["+OK"] * (n + 2)
else:
    s.sendall(b"EHLO client.example.net\r\n" + b"RSET\r\n" * n)
    want = ["250 "] * (n + 1)
for i, w in enumerate(want):
    l = line()
    while l[3:4] == "-":  # continuation lines of a multi-line SMTP reply
        l = line()
    if not l.startswith(w):
        raise SystemExit("reply %d: want %r, got %r" % (i, w, l))
print("ok", len(want))
`

// TestPipelinedCommandsInsideTLS pipelines thousands of commands inside TLS on every
// implicit-TLS listener and checks the replies; then checks that an IDLE client still hears
// of a new message while the server waits for its DONE.
func TestPipelinedCommandsInsideTLS(t *testing.T) {
	s := startServer(t, func(c *config.Config) {
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
	})
	for _, tc := range []struct{ proto, listener string }{
		{"imap", "imaps"}, {"pop3", "pop3s"}, {"smtp", "submissions"},
	} {
		_, port, _ := strings.Cut(s.addr(tc.listener), ":")
		out, err := python(t, pipelineScript, tc.proto, port, "3000", "bob@example.org", bobPW)
		if err != nil || !strings.HasPrefix(out, "ok ") {
			t.Errorf("%s: %v\n%s", tc.listener, err, out)
		}
	}

	exists := make(chan uint32, 16)
	c := dialIMAP(t, s.addr("imaps"), &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := sendPlain(s.addr("smtp"), "x@elsewhere.net", "alice@example.com", testMessage("x@elsewhere.net", "alice@example.com", "pushed", "hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no EXISTS while idling within 30s of the delivery")
	}
}
