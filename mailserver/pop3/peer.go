package pop3

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

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/internal/relay"
	"github.com/kubemail/kubemail/mailserver/login"
)

// Login proxying between the replicas of a cluster, as for IMAP (see imapd's peer.go): the
// replica the client reached checks the password; for a mailbox another replica holds, Proxy
// logs in there on the internal listener (mutual TLS, AUTH EXTERNAL with the mailbox as
// authorization identity) and relays the bytes both ways.

var errPeerLogin = fail("AUTH", "This port is for the cluster's replicas, which log in with AUTH EXTERNAL")

// errHandedOff ends a session whose connection a Takeover served.
var errHandedOff = errors.New("pop3: session handed off")

// authExternal logs a replica in as the mailbox it vouches for, once the TLS handshake verified
// its certificate.
func (s *session) authExternal(args []string) error {
	tc, ok := s.conn.(*tls.Conn)
	if !ok || len(tc.ConnectionState().VerifiedChains) == 0 {
		return errPeerLogin
	}
	if len(args) != 1 {
		return syntaxError("AUTH EXTERNAL takes the mailbox, base64-encoded, as its initial response")
	}
	authzid, err := base64.StdEncoding.DecodeString(args[0])
	if err != nil || len(authzid) == 0 {
		return syntaxError("AUTH EXTERNAL: the initial response is the mailbox, base64-encoded")
	}
	mb, err := s.cfg.Auth.Vouched(protocol, string(authzid))
	switch {
	case errors.Is(err, login.ErrDisabled):
		return errDisabled
	case err != nil:
		return errAuthFailed
	}
	s.log = s.log.With("proxied", true)
	return s.open(mb)
}

// handOff gives the connection, after the login, to take; the session ends when take returns.
func (s *session) handOff(mb *directory.Mailbox, take Takeover) error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	pending, _ := s.br.Peek(s.br.Buffered())
	h := &Handoff{Conn: s.conn, Pending: append([]byte(nil), pending...), Mailbox: mb, Log: s.log}
	s.log.Info("POP3 login, handed off", "mailbox", mb.Address)
	if err := take(s.srv.ctx, h); err != nil {
		s.log.Warn("serving a handed-off POP3 session", "mailbox", mb.Address, "err", err)
	}
	return errHandedOff
}

// Proxy returns a Takeover that serves the session on the replica that owns the mailbox: dial
// connects to that replica's internal listener, TLS with this replica's client certificate
// included. An unreachable owner gets a temporary failure, never a session on an empty
// maildrop.
func Proxy(dial func(ctx context.Context) (net.Conn, error)) Takeover {
	return func(ctx context.Context, h *Handoff) error {
		sess := relay.Session{Dial: dial, Greeting: "+OK",
			Unavailable: "-ERR [SYS/TEMP] Your mailbox's server is unavailable, try again shortly\r\n",
			Login:       func(up net.Conn, upR *bufio.Reader) error { return proxyLogin(up, upR, h) }}
		return sess.Proxy(ctx, h.Conn, h.Pending)
	}
}

// proxyLogin logs in on the owner as h.Mailbox and passes the owner's answer (the maildrop's
// size) to the client.
func proxyLogin(up net.Conn, upR *bufio.Reader, h *Handoff) error {
	authzid := base64.StdEncoding.EncodeToString([]byte(h.Mailbox.Address))
	if _, err := fmt.Fprintf(up, "AUTH EXTERNAL %s\r\n", authzid); err != nil {
		return err
	}
	answer, err := upR.ReadString('\n')
	switch {
	case err != nil:
		return fmt.Errorf("logging in on the mailbox's replica: %w", err)
	case strings.HasPrefix(answer, "-ERR [IN-USE]"):
		// The maildrop is locked by another session: the client's own answer, not a failure
		// of the cluster.
		io.WriteString(h.Conn, answer)
		return relay.ErrAnswered
	case !strings.HasPrefix(answer, "+OK"):
		return fmt.Errorf("the mailbox's replica refused the login: %q", strings.TrimSpace(answer))
	}
	_, err = io.WriteString(h.Conn, answer)
	return err
}
