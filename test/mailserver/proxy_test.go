package mailserver_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/config"
)

// smtpDialogue sends prefix (such as a PROXY header), then a complete SMTP transaction, and
// returns every reply line.
func smtpDialogue(t *testing.T, addr, prefix, rcpt string) []string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c, prefix)
	r := bufio.NewReader(c)
	var replies []string
	read := func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			replies = append(replies, strings.TrimSpace(l))
			if len(l) < 4 || l[3] != '-' {
				return
			}
		}
	}
	read()
	for _, cmd := range []string{"EHLO proxied.example.net", "MAIL FROM:<x@elsewhere.net>", "RCPT TO:<" + rcpt + ">", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		read()
	}
	fmt.Fprintf(c, "Subject: proxied\r\n\r\nbody\r\n.\r\nQUIT\r\n")
	read()
	read()
	return replies
}

func TestProxyProtocol(t *testing.T) {
	t.Run("trusted peer", func(t *testing.T) {
		s := startServer(t, func(c *config.Config) {
			c.Listeners.SMTP.ProxyProtocol = true
			c.ProxyProtocol.TrustedNetworks = []string{"127.0.0.0/8"}
		})
		replies := smtpDialogue(t, s.addr("smtp"), "PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n", "alice@example.com")
		if last := replies[len(replies)-2]; !strings.HasPrefix(last, "250") {
			t.Fatalf("transaction after a v1 header failed: %q", replies)
		}
		v2 := []byte("\r\n\r\n\x00\r\nQUIT\n")
		v2 = append(v2, 0x21, 0x11, 0x00, 12, 198, 51, 100, 9, 192, 0, 2, 1, 0x9c, 0x40, 0x00, 25)
		replies = smtpDialogue(t, s.addr("smtp"), string(v2), "alice@example.com")
		if last := replies[len(replies)-2]; !strings.HasPrefix(last, "250") {
			t.Fatalf("transaction after a v2 header failed: %q", replies)
		}
		msgs := s.messages("alice@example.com", "INBOX")
		if len(msgs) != 2 || !strings.Contains(msgs[0]+msgs[1], "([203.0.113.7])") || !strings.Contains(msgs[0]+msgs[1], "([198.51.100.9])") {
			t.Fatalf("Received fields do not name the proxied clients:\n%s", strings.Join(msgs, "\n---\n"))
		}
		// A trusted peer that sends no header is cut off rather than served as itself.
		replies = smtpDialogue(t, s.addr("smtp"), "EHLO no-header\r\n", "alice@example.com")
		if len(replies) > 0 && strings.HasPrefix(replies[0], "220") {
			t.Fatalf("a trusted peer without a PROXY header was served: %q", replies)
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		s := startServer(t, func(c *config.Config) {
			c.Listeners.SMTP.ProxyProtocol = true
			c.ProxyProtocol.TrustedNetworks = []string{"10.0.0.0/8"}
		})
		// From an untrusted address a PROXY header is just a bad command; the real address is used.
		replies := smtpDialogue(t, s.addr("smtp"), "PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n", "alice@example.com")
		if len(replies) < 2 || !strings.HasPrefix(replies[0], "220") || !strings.HasPrefix(replies[1], "5") {
			t.Fatalf("untrusted PROXY header: %q", replies)
		}
		msgs := s.messages("alice@example.com", "INBOX")
		if len(msgs) != 1 || !strings.Contains(msgs[0], "([127.0.0.1])") || strings.Contains(msgs[0], "203.0.113.7") {
			t.Fatalf("an untrusted peer could choose its address:\n%s", strings.Join(msgs, "\n---\n"))
		}
	})
}

func TestPerIPConnectionLimit(t *testing.T) {
	s := startServer(t, func(c *config.Config) { c.Limits.MaxConnectionsPerIP = 2 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.addr("smtp"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		l, _ := bufio.NewReader(c).ReadString('\n')
		if !strings.HasPrefix(l, "220") {
			t.Fatalf("connection %d: %q", i, l)
		}
	}
	c, err := net.Dial("tcp", s.addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	l, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(l, "421 4.7.0") {
		t.Fatalf("third connection from one address: %q, want 421 4.7.0", l)
	}
	// Closing one frees its slot.
	conns[0].Close()
	serverPoll.Eventually(t, "a freed slot", func() bool {
		c, err := net.Dial("tcp", s.addr("smtp"))
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		return strings.HasPrefix(l, "220")
	})
}
