package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/internal/relay"
	"github.com/kubemail/kubemail/mailserver/login"
)

// Login proxying between the replicas of a cluster. A client may reach any replica; the one it
// reached checks the password (it has the hashes and the login throttle) and, when the mailbox
// lives on another replica, Proxy opens a session there on the internal listener
// (ServeInternal): mutual TLS with the cluster's certificates, then AUTHENTICATE EXTERNAL with
// the mailbox as authorization identity (RFC 4422 appendix A). From then on it relays bytes
// both ways: IDLE, literals and COMPRESS pass through untouched, and the client sees the
// owner's capabilities, which are every replica's.

var errPeerLogin = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed,
	Text: "This port is for the cluster's replicas, which log in with AUTHENTICATE EXTERNAL"}

// peerVerified reports whether the connection's TLS handshake verified a client certificate:
// the internal listener's configuration requires one from the cluster's CA.
func (s *session) peerVerified() bool {
	tc, ok := s.nc.(*tls.Conn)
	return ok && len(tc.ConnectionState().VerifiedChains) > 0
}

// authenticateExternal logs a replica in as the mailbox it vouches for.
func (s *session) authenticateExternal(tag string, args []wire.Value) (res reply, err error) {
	defer func() { s.track("LOGIN", err) }()
	if !s.peerVerified() {
		return reply{}, errPeerLogin
	}
	if len(args) != 1 || args[0].Kind != wire.KindAtom {
		return reply{}, badArg("AUTHENTICATE EXTERNAL takes the mailbox, base64-encoded, as its initial response")
	}
	authzid, err := base64.StdEncoding.DecodeString(args[0].Str)
	if err != nil || len(authzid) == 0 {
		return reply{}, badArg("AUTHENTICATE EXTERNAL: the initial response is the mailbox, base64-encoded")
	}
	mb, err := s.srv.cfg.Auth.Vouched(Protocol, string(authzid))
	switch {
	case errors.Is(err, login.ErrDisabled):
		return reply{}, errDisabled
	case err != nil:
		return reply{}, errAuthFailed
	}
	s.log = s.log.With("proxied", true)
	return s.open(mb)
}

// errOwnerUnavailable is what the client hears when the replica that owns its mailbox cannot
// be reached: a temporary failure, never a session on an empty mailbox.
const errOwnerUnavailable = "NO [UNAVAILABLE] Your mailbox's server is unavailable, try again shortly"

// Proxy returns a Takeover that serves the session on the replica that owns the mailbox: dial
// connects to that replica's internal listener, TLS with this replica's client certificate
// included. The client's login is answered with the owner's tagged OK, its capabilities.
func Proxy(dial func(ctx context.Context) (net.Conn, error)) Takeover {
	return func(ctx context.Context, h *Handoff) error {
		sess := relay.Session{Dial: dial, Greeting: "* OK", Unavailable: h.Tag + " " + errOwnerUnavailable + "\r\n",
			Login: func(up net.Conn, upR *bufio.Reader) error { return proxyLogin(up, upR, h) }}
		return sess.Proxy(ctx, h.Conn, h.Pending)
	}
}

// proxyLogin logs in on the owner as h.Mailbox and answers the client's login under its tag.
func proxyLogin(up net.Conn, upR *bufio.Reader, h *Handoff) error {
	const tag = "kmproxy"
	authzid := base64.StdEncoding.EncodeToString([]byte(h.Mailbox.Address))
	if _, err := fmt.Fprintf(up, "%s AUTHENTICATE EXTERNAL %s\r\n", tag, authzid); err != nil {
		return err
	}
	for {
		line, err := upR.ReadString('\n')
		if err != nil {
			return fmt.Errorf("logging in on the mailbox's replica: %w", err)
		}
		rest, tagged := strings.CutPrefix(line, tag+" ")
		if !tagged {
			continue // untagged responses before the answer are the owner's business
		}
		if !strings.HasPrefix(rest, "OK") {
			return fmt.Errorf("the mailbox's replica refused the login: %q", clip(strings.TrimSpace(rest), 120))
		}
		_, err = io.WriteString(h.Conn, h.Tag+" "+rest)
		return err
	}
}
