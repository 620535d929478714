package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Timeouts of reaching the mailbox's replica and logging in there, which a client waits for.
const (
	DialTimeout  = 10 * time.Second
	LoginTimeout = 15 * time.Second
)

// ErrAnswered is a login's failure that the client was told of already: Proxy then writes
// nothing more.
var ErrAnswered = errors.New("relay: the client has its answer")

// Session is how one protocol reaches its mailbox on another replica.
type Session struct {
	// Dial connects to the replica's internal listener.
	Dial func(ctx context.Context) (net.Conn, error)
	// Greeting starts the replica's greeting ("* OK", "+OK").
	Greeting string
	// Login logs in on the replica and answers the client's login; from then on the bytes
	// pass untouched. It runs under LoginTimeout.
	Login func(up net.Conn, upR *bufio.Reader) error
	// Unavailable is the client's answer when the replica cannot be reached or refuses, CRLF
	// included: a temporary failure, never a session on an empty mailbox.
	Unavailable string
}

// Proxy serves client on the mailbox's replica: dial, greeting, login, then pending (what the
// client sent after its login and the replica the client reached read) and the relay, until
// either side closes or ctx ends.
func (s Session) Proxy(ctx context.Context, client net.Conn, pending []byte) error {
	client.SetDeadline(time.Time{}) // the owner's timeouts rule from here on
	up, upR, err := s.login(ctx)
	if err != nil {
		if !errors.Is(err, ErrAnswered) {
			io.WriteString(client, s.Unavailable)
		}
		return err
	}
	defer up.Close()
	if _, err := up.Write(pending); err != nil {
		return err
	}
	Run(ctx, client, up, upR)
	return nil
}

func (s Session) login(ctx context.Context) (up net.Conn, upR *bufio.Reader, err error) {
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	up, err = s.Dial(dctx)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("reaching the mailbox's replica: %w", err)
	}
	defer func() {
		if err != nil {
			up.Close()
		}
	}()
	up.SetDeadline(time.Now().Add(LoginTimeout))
	upR = bufio.NewReader(up)
	greeting, err := upR.ReadString('\n')
	if err != nil || !strings.HasPrefix(greeting, s.Greeting) {
		return nil, nil, fmt.Errorf("the mailbox's replica greeted with %q: %v", clip(greeting, 80), err)
	}
	if err := s.Login(up, upR); err != nil {
		return nil, nil, err
	}
	up.SetDeadline(time.Time{})
	return up, upR, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
