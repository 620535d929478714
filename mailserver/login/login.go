// Package login checks user names and passwords for every protocol (SMTP submission, IMAP,
// POP3) in one place: directory look-up, password verification, throttling of failures, and
// metrics. A wrong user and a wrong password look the same from outside.
package login

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Errors a protocol turns into its own answer.
var (
	// ErrFailed: unknown user or wrong password — deliberately one error.
	ErrFailed = errors.New("authentication failed")
	// ErrDisabled: the password is right but the account may not log in (suspended, or its
	// password Secret is broken). Only someone who knows the password learns this.
	ErrDisabled = errors.New("account disabled")
	// ErrThrottled: too many recent failures from this address or for this account.
	ErrThrottled = auth.ErrTooManyFailures
)

// Authenticator verifies logins against the live directory.
type Authenticator struct {
	dir      *directory.Live
	verifier *auth.Verifier
	limiter  *auth.Limiter
	metrics  *metrics.Metrics
	log      *slog.Logger
	// dummy is verified for unknown users so their answer takes as long as a wrong password.
	dummy string
}

// New returns an Authenticator. limiter may be nil to disable throttling (tests).
func New(dir *directory.Live, limiter *auth.Limiter, m *metrics.Metrics) (*Authenticator, error) {
	dummy, err := passwordhash.Hash("kubemail-dummy-password-for-timing")
	if err != nil {
		return nil, err
	}
	return &Authenticator{dir: dir, verifier: auth.NewVerifier(4096, 10*time.Minute), limiter: limiter, metrics: m,
		log: slog.Default(), dummy: dummy}, nil
}

// SetLog sets where throttled sources are reported.
func (a *Authenticator) SetLog(l *slog.Logger) { a.log = l }

// Login returns the mailbox for username if password is right and the account is enabled. A
// disabled account with the right password gets ErrDisabled, and the log says why it is
// disabled (the client is only told to contact its administrator).
func (a *Authenticator) Login(ctx context.Context, protocol string, ip netip.Addr, username, password string) (*directory.Mailbox, error) {
	// One account, one name for throttling, however the client spells it: JÖRG@bücher.example
	// and jörg@xn--bcher-kva.example count against the same account.
	if n, err := dirspec.NormalizeAddress(username); err == nil {
		username = n
	}
	if err := a.throttle(ctx, protocol, ip, username); err != nil {
		return nil, err
	}
	if a.limiter != nil {
		// A panic below must not keep the attempt under way for good.
		defer func() {
			if r := recover(); r != nil {
				a.limiter.Done(ip)
				panic(r)
			}
		}()
	}
	mb, ok := a.dir.Load().Mailbox(username)
	hash := a.dummy
	if ok && mb.PasswordHash != "" {
		hash = mb.PasswordHash
	}
	good, err := a.verifier.Verify(hash, password)
	if err != nil || !ok || !good || mb.PasswordHash == "" {
		// One line per failure, with the client's address (the real one behind PROXY
		// protocol), for fail2ban or a SIEM to act on; never the password.
		a.log.Info("login failed", "protocol", protocol, "remote", ip.String(), "user", username, "reason", failureReason(ok, mb, err))
		a.failure(protocol, ip, username)
		a.count(protocol, "failure")
		return nil, ErrFailed
	}
	if mb.Disabled {
		// Not a failure: the client has the right password, so nothing to throttle.
		if a.limiter != nil {
			a.limiter.Done(ip)
		}
		a.count(protocol, "disabled")
		a.log.Info("login refused: account disabled", "protocol", protocol, "mailbox", mb.Address, "reason", mb.DisabledReason)
		return nil, ErrDisabled
	}
	if a.limiter != nil {
		a.limiter.Success(ip, username)
	}
	a.count(protocol, "success")
	return mb, nil
}

// Vouched returns the mailbox at address for a login another replica of the cluster checked
// (its password, its throttling) and now passes on to this one, which owns the mailbox: no
// password is asked for, but an unknown or, meanwhile, disabled account is refused as in
// Login. Only a caller that authenticated the replica (the cluster's mutual TLS) may ask.
func (a *Authenticator) Vouched(protocol, address string) (*directory.Mailbox, error) {
	if n, err := dirspec.NormalizeAddress(address); err == nil {
		address = n
	}
	mb, ok := a.dir.Load().Mailbox(address)
	switch {
	case !ok:
		a.log.Info("vouched login for an unknown mailbox", "protocol", protocol, "user", address)
		return nil, ErrFailed
	case mb.Disabled:
		a.log.Info("vouched login refused: account disabled", "protocol", protocol, "mailbox", mb.Address, "reason", mb.DisabledReason)
		return nil, ErrDisabled
	}
	return mb, nil
}

// failureReason says for the log why a login failed; the client only learns that it did.
func failureReason(known bool, mb *directory.Mailbox, verifyErr error) string {
	switch {
	case !known:
		return "unknown user"
	case mb.PasswordHash == "":
		return "no password (logins disabled)"
	case verifyErr != nil:
		return "unusable password hash"
	}
	return "wrong password"
}

// throttle waits out the delay the limiter asks for and says whether the attempt is refused.
// An admitted attempt is under way until its Failure or Success is recorded (or, without an
// outcome, the limiter is told it is done).
func (a *Authenticator) throttle(ctx context.Context, protocol string, ip netip.Addr, username string) error {
	if a.limiter == nil {
		return nil
	}
	v := a.limiter.Decide(ip, username)
	if v.Delay > 0 {
		t := time.NewTimer(v.Delay)
		select {
		case <-ctx.Done():
			t.Stop()
			if !v.Refused {
				a.limiter.Done(ip)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
	if a.metrics != nil && v.Scope != "" {
		action := "delayed"
		if v.Refused {
			action = "refused"
		}
		a.metrics.LoginsThrottled.WithLabelValues(v.Scope, action).Inc()
	}
	if v.Refused {
		// Not counted as a failure: a client that keeps trying must not keep itself locked out.
		a.count(protocol, "throttled")
		a.log.Info("login refused: throttled", "protocol", protocol, "remote", ip.String(), "user", username, "scope", v.Scope)
		return ErrThrottled
	}
	return nil
}

// failure records a failed login and logs the moment a source's logins start being slowed:
// one line per client address (or account) and window, however long the guessing goes on.
// The user name is logged, the password never.
func (a *Authenticator) failure(protocol string, ip netip.Addr, username string) {
	if a.limiter == nil {
		return
	}
	if scopes := a.limiter.Failure(ip, username); len(scopes) > 0 {
		a.log.Warn("logins throttled after repeated failures", "protocol", protocol, "remote", ip.String(),
			"user", username, "scopes", strings.Join(scopes, ","))
	}
}

func (a *Authenticator) count(protocol, result string) {
	if a.metrics != nil {
		a.metrics.AuthAttempts.WithLabelValues(protocol, result).Inc()
	}
}
