package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/queue"
)

// session is one SMTP client connection, ready for mail transactions.
type session struct {
	c     *smtp.Client
	conn  net.Conn
	host  string
	tls   string // verified, unverified, none
	used  time.Time
	count int
	// commandTimeout is the client's normal command timeout.
	commandTimeout time.Duration
}

func (s *session) close() { s.c.Close() }

// quit ends the session politely, without waiting long for the reply.
func (s *session) quit() {
	s.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := s.c.Quit(); err != nil {
		s.c.Close()
	}
}

var errTLSHandshake = errors.New("TLS handshake failed")

// dial opens a session: greeting, EHLO with our hostname, STARTTLS when offered (required for
// the smarthost unless it is configured without TLS), EHLO again, and AUTH for the smarthost.
func (t *Transport) dial(ctx context.Context, host, addr string, relay bool) (*session, error) {
	s, err := t.dialOnce(ctx, host, addr, relay, true)
	if err != nil && !relay && errors.Is(err, errTLSHandshake) {
		// Opportunistic TLS that fails to negotiate is retried in plain text, as other MTAs do,
		// rather than holding the mail back.
		t.cfg.Log.Info("TLS negotiation failed; retrying without TLS", "host", host, "addr", addr, "err", err)
		s, err = t.dialOnce(ctx, host, addr, relay, false)
	}
	if err != nil {
		return nil, err
	}
	t.cfg.Metrics.OutboundTLS.WithLabelValues(s.tls).Inc()
	t.cfg.Log.Debug("SMTP session opened", "host", host, "addr", addr, "tls", s.tls)
	return s, nil
}

func (t *Transport) dialOnce(ctx context.Context, host, addr string, relay, tryTLS bool) (*session, error) {
	d := net.Dialer{Timeout: t.cfg.ConnectTimeout}
	if src := t.cfg.SourceIP; src != nil {
		// Bind only within the same address family; an IPv6 MX is reached from any IPv6 address.
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip == nil || (ip.To4() == nil) == (src.To4() == nil) {
				d.LocalAddr = &net.TCPAddr{IP: src}
			}
		}
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Abort the setup if the delivery is cancelled (shutdown).
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	tlsCfg, verified := t.tlsPolicy(host, relay)
	var conn net.Conn = raw
	state := "none"
	if relay && t.cfg.Relay.ImplicitTLS {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS with the smarthost: %w", err)
		}
		conn, state = tc, "verified"
	} else {
		plain := relay && t.cfg.Relay.PlainText
		greeting, startTLS, err := preamble(raw, t.cfg.Hostname, tryTLS && !plain, t.cfg.CommandTimeout)
		if err != nil {
			raw.Close()
			return nil, err
		}
		switch {
		case startTLS:
			tc := tls.Client(raw, tlsCfg)
			hctx, cancel := context.WithTimeout(ctx, t.cfg.CommandTimeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				raw.Close()
				if relay {
					return nil, fmt.Errorf("TLS with the smarthost: %w", err)
				}
				return nil, fmt.Errorf("%w: %v", errTLSHandshake, err)
			}
			conn, state = tc, "unverified"
			if *verified {
				state = "verified"
			}
		case relay && !plain:
			raw.Close()
			return nil, errors.New("the smarthost does not offer STARTTLS, and TLS is required for it")
		}
		// go-smtp's client reads a greeting first and has no way to EHLO with our name
		// before STARTTLS, so the exchange so far was ours; replay the greeting to it.
		conn = &greetedConn{Conn: conn, pending: []byte("220 " + greeting + "\r\n")}
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = t.cfg.CommandTimeout
	c.SubmissionTimeout = t.cfg.DataTimeout
	if err := c.Hello(t.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	if relay && t.cfg.Relay.UsernameFile != "" {
		if state == "none" {
			c.Close()
			return nil, errors.New("not sending the smarthost password over a connection without TLS")
		}
		if err := t.auth(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &session{c: c, conn: raw, host: host, tls: state, commandTimeout: t.cfg.CommandTimeout}, nil
}

func (t *Transport) auth(c *smtp.Client) error {
	user, err := readSecret(t.cfg.Relay.UsernameFile)
	if err != nil {
		return fmt.Errorf("reading the smarthost username: %w", err)
	}
	pass, err := readSecret(t.cfg.Relay.PasswordFile)
	if err != nil {
		return fmt.Errorf("reading the smarthost password: %w", err)
	}
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", user, pass)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(user, pass)
	default:
		return errors.New("the smarthost offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	if err := c.Auth(mech); err != nil {
		return fmt.Errorf("the smarthost refused our credentials: %w", err)
	}
	return nil
}

// preamble reads the greeting, sends EHLO with our name and, when wantTLS and the server
// offers it, STARTTLS. startTLS reports that the server is ready for the TLS handshake.
func preamble(conn net.Conn, hostname string, wantTLS bool, timeout time.Duration) (greeting string, startTLS bool, err error) {
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewConn(conn)
	_, msg, err := tp.ReadResponse(220)
	if err != nil {
		return "", false, smtpError("greeting", err)
	}
	greeting, _, _ = strings.Cut(msg, "\n")
	code, msg, err := cmd(tp, "EHLO "+hostname)
	if err != nil || code != 250 {
		// An old server without EHLO: go-smtp falls back to HELO, without STARTTLS.
		return greeting, false, nil
	}
	offered := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if kw, _, _ := strings.Cut(line, " "); strings.EqualFold(kw, "STARTTLS") {
			offered = true
		}
	}
	if !offered || !wantTLS {
		return greeting, false, nil
	}
	code, _, err = cmd(tp, "STARTTLS")
	if err != nil {
		return "", false, err
	}
	return greeting, code == 220, nil
}

// cmd sends one command and reads its reply, whatever the code.
func cmd(tp *textproto.Conn, line string) (int, string, error) {
	id, err := tp.Cmd("%s", line)
	if err != nil {
		return 0, "", err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	code, msg, err := tp.ReadResponse(0)
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, te.Msg, nil
	}
	return code, msg, err
}

func smtpError(stage string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, EnhancedCode: smtp.NoEnhancedCode, Message: stage + ": " + te.Msg}
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// greetedConn hands go-smtp's client a greeting that was already read off the wire.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (g *greetedConn) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// send runs one mail transaction. A nil results with an error means the connection failed
// before the message was handed over, so nothing was delivered and another attempt is safe.
func (s *session) send(ctx context.Context, d *queue.Delivery, rcpts []string) (results []queue.Result, broken error) {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	s.count++
	base := queue.Result{RemoteMTA: s.host, TLS: s.tls}
	from := wireAddress(d.From)
	wire := make([]string, len(rcpts))
	for i, rc := range rcpts {
		wire[i] = wireAddress(rc)
	}
	utf8 := needsUTF8(from, wire)
	// noUTF8 is the answer for recipients in UTF-8 when the server cannot take them: sending
	// would mean mangling the addresses (RFC 6531 section 3.2), so they fail, saying why. The
	// others still go, without SMTPUTF8, unless the sender itself needs it.
	var noUTF8 *queue.Result
	if ok, _ := s.c.Extension("SMTPUTF8"); utf8 && !ok {
		r := base
		r.Permanent, r.Status = true, "5.6.7"
		r.Text = "the receiving server " + s.host + " does not support internationalised addresses (SMTPUTF8), which this message's sender or recipient needs"
		if !isASCII(from) || !slices.ContainsFunc(wire, isASCII) {
			return all(rcpts, r), nil
		}
		noUTF8, utf8 = &r, false
	}
	if max, ok := s.c.MaxMessageSize(); ok && max > 0 && len(d.Data) > max {
		r := base
		r.Permanent, r.Status, r.Text = true, "5.3.4", fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes of %s", len(d.Data), max, s.host)
		return all(rcpts, r), nil
	}
	if err := s.c.Mail(from, &smtp.MailOptions{Size: int64(len(d.Data)), UTF8: utf8}); err != nil {
		if se := asSMTP(err); se != nil {
			s.c.Reset()
			return all(rcpts, reply(base, se)), nil
		}
		return nil, err
	}
	results = make([]queue.Result, len(rcpts))
	var accepted []int
	for i, rc := range rcpts {
		if noUTF8 != nil && !isASCII(wire[i]) {
			results[i] = *noUTF8
			results[i].Recipient = rc
			continue
		}
		err := s.c.Rcpt(wire[i], nil)
		if se := asSMTP(err); se != nil {
			results[i] = reply(base, se)
			results[i].Recipient = rc
			continue
		} else if err != nil {
			return nil, err
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		if err := s.c.Reset(); err != nil {
			return results, err
		}
		return results, nil
	}
	w, err := s.c.Data()
	if se := asSMTP(err); se != nil {
		for _, i := range accepted {
			results[i] = reply(base, se)
			results[i].Recipient = rcpts[i]
		}
		return results, nil
	} else if err != nil {
		return nil, err
	}
	if _, err := w.Write(d.Data); err != nil {
		return nil, err
	}
	resp, err := w.CloseWithResponse()
	for _, i := range accepted {
		r := base
		r.Recipient = rcpts[i]
		switch se := asSMTP(err); {
		case se != nil:
			r = reply(base, se)
			r.Recipient = rcpts[i]
		case err != nil:
			// The message was sent but the answer was lost: it may have arrived. Retrying
			// risks a duplicate, which is better than losing it.
			r.Status, r.Text = "4.4.2", "connection lost waiting for the answer to the message: "+publicError(err)
		default:
			r.Delivered, r.Code = true, 250
			r.Status, r.Text = splitEnhancedCode(resp.StatusText, "2.0.0")
		}
		results[i] = r
	}
	if err != nil && asSMTP(err) == nil {
		return results, err
	}
	return results, nil
}

// splitEnhancedCode separates the enhanced status code (RFC 3463) that starts a reply text
// from the rest, which go-smtp's client leaves together in the text of a successful DATA.
func splitEnhancedCode(text, fallback string) (status, rest string) {
	code, after, ok := strings.Cut(text, " ")
	if !ok {
		code, after = text, ""
	}
	parts := strings.Split(code, ".")
	if len(parts) != 3 || code[0] != '2' && code[0] != '4' && code[0] != '5' {
		return fallback, text
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return fallback, text
		}
	}
	return code, after
}

func asSMTP(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// reply turns an SMTP error reply into a result.
func reply(base queue.Result, se *smtp.SMTPError) queue.Result {
	r := base
	r.Code = se.Code
	r.Permanent = se.Code >= 500
	r.Text = se.Message
	if ec := se.EnhancedCode; ec != smtp.NoEnhancedCode && ec[0] > 0 {
		r.Status = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	} else if r.Permanent {
		r.Status = "5.0.0"
	} else {
		r.Status = "4.0.0"
	}
	return r
}

// pool keeps idle sessions per address for reuse.
type pool struct {
	timeout time.Duration
	max     int
	mu      sync.Mutex
	idle    map[string][]*session
	stop    chan struct{}
	once    sync.Once
}

func newPool(timeout time.Duration, max int) *pool {
	p := &pool{timeout: timeout, max: max, idle: map[string][]*session{}, stop: make(chan struct{})}
	go p.janitor()
	return p
}

// get returns a live idle session for key, checking it with RSET, or nil.
func (p *pool) get(key string) *session {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		s := list[len(list)-1]
		p.idle[key] = list[:len(list)-1]
		p.mu.Unlock()
		if time.Since(s.used) > p.timeout {
			go s.quit()
			continue
		}
		// A quick RSET tells a live session from one the server has closed meanwhile.
		s.c.CommandTimeout = 15 * time.Second
		err := s.c.Reset()
		s.c.CommandTimeout = s.commandTimeout
		if err != nil {
			s.close()
			continue
		}
		return s
	}
}

func (p *pool) put(key string, s *session) {
	s.used = time.Now()
	p.mu.Lock()
	if s.count >= maxMessagesPerConn || len(p.idle[key]) >= p.max {
		p.mu.Unlock()
		go s.quit()
		return
	}
	p.idle[key] = append(p.idle[key], s)
	p.mu.Unlock()
}

func (p *pool) janitor() {
	tick := time.NewTicker(max(p.timeout/2, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		var expired []*session
		p.mu.Lock()
		for key, list := range p.idle {
			keep := list[:0]
			for _, s := range list {
				if time.Since(s.used) > p.timeout {
					expired = append(expired, s)
				} else {
					keep = append(keep, s)
				}
			}
			if len(keep) == 0 {
				delete(p.idle, key)
			} else {
				p.idle[key] = keep
			}
		}
		p.mu.Unlock()
		for _, s := range expired {
			s.quit()
		}
	}
}

func (p *pool) close() {
	p.once.Do(func() { close(p.stop) })
	p.mu.Lock()
	idle := p.idle
	p.idle = map[string][]*session{}
	p.mu.Unlock()
	for _, list := range idle {
		for _, s := range list {
			s.quit()
		}
	}
}
