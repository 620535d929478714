package tlstest

import (
	"crypto/tls"
	"net"
	"testing"
)

// TestLoopback: a client with Pair.Client completes a handshake with a server using
// Pair.Server by either loopback name, and a client without it does not.
func TestLoopback(t *testing.T) {
	p := Loopback(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", p.Server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c, err := tls.Dial("tcp", net.JoinHostPort(host, port), p.Client)
		if err != nil {
			t.Errorf("handshake with %s: %v", host, err)
			continue
		}
		c.Close()
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{}); err == nil {
		c.Close()
		t.Error("a client without the pair's roots trusted the self-signed certificate")
	}
}
