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
	"time"

	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/internal/relay"
	"github.com/kubemail/kubemail/mailserver/login"
)

// Login proxying between the replicas of a cluster, as for IMAP (see imapd's peer.go): the
// replica the client reached checks the password; for a mailbox another replica holds, Proxy
// logs in there on the internal listener (mutual TLS, AUTH EXTERNAL with the mailbox as
// authorization identity) and relays the bytes both ways.

var errPeerLogin = fail("AUTH", "This port is for the cluster's replicas, which log in with AUTH EXTERNAL")

// errHandedOff ends a session whose connection a Takeover served; errAnswered is a proxy's
// failure the client was told of already.
var (
	errHandedOff = errors.New("pop3: session handed off")
	errAnswered  = errors.New("pop3: the owner's refusal was passed on")
)

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

// Proxy timeouts: reaching the owner and logging in there, which a client waits for.
const (
	proxyDialTimeout  = 10 * time.Second
	proxyLoginTimeout = 15 * time.Second
)

// Proxy returns a Takeover that serves the session on the replica that owns the mailbox: dial
// connects to that replica's internal listener, TLS with this replica's client certificate
// included. An unreachable owner gets a temporary failure, never a session on an empty
// maildrop.
func Proxy(dial func(ctx context.Context) (net.Conn, error)) Takeover {
	return func(ctx context.Context, h *Handoff) error {
		h.Conn.SetDeadline(time.Time{}) // the owner's timeouts rule from here on
		up, upR, err := proxyLogin(ctx, dial, h)
		if err != nil {
			if !errors.Is(err, errAnswered) {
				io.WriteString(h.Conn, "-ERR [SYS/TEMP] Your mailbox's server is unavailable, try again shortly\r\n")
			}
			return err
		}
		defer up.Close()
		if _, err := up.Write(h.Pending); err != nil {
			return err
		}
		relay.Run(ctx, h.Conn, up, upR)
		return nil
	}
}

// proxyLogin connects to the owner, logs in there as h.Mailbox, and passes the owner's answer
// (the maildrop's size) to the client.
func proxyLogin(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), h *Handoff) (up net.Conn, upR *bufio.Reader, err error) {
	dctx, cancel := context.WithTimeout(ctx, proxyDialTimeout)
	up, err = dial(dctx)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("reaching the mailbox's replica: %w", err)
	}
	defer func() {
		if err != nil {
			up.Close()
		}
	}()
	up.SetDeadline(time.Now().Add(proxyLoginTimeout))
	upR = bufio.NewReader(up)
	greeting, err := upR.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, "+OK") {
		return nil, nil, fmt.Errorf("the mailbox's replica greeted with %q: %v", greeting, err)
	}
	authzid := base64.StdEncoding.EncodeToString([]byte(h.Mailbox.Address))
	if _, err := fmt.Fprintf(up, "AUTH EXTERNAL %s\r\n", authzid); err != nil {
		return nil, nil, err
	}
	answer, err := upR.ReadString('\n')
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("logging in on the mailbox's replica: %w", err)
	case strings.HasPrefix(answer, "-ERR [IN-USE]"):
		// The maildrop is locked by another session: the client's own answer, not a failure
		// of the cluster.
		io.WriteString(h.Conn, answer)
		return nil, nil, errAnswered
	case !strings.HasPrefix(answer, "+OK"):
		return nil, nil, fmt.Errorf("the mailbox's replica refused the login: %q", strings.TrimSpace(answer))
	}
	up.SetDeadline(time.Time{})
	if _, err := io.WriteString(h.Conn, answer); err != nil {
		return nil, nil, err
	}
	return up, upR, nil
}
