package handoff

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// lmtpSession is the client side of one LMTP session to another replica. A transaction sends
// MAIL, every RCPT and DATA in one write (PIPELINING, RFC 2920, which the other replica's
// LMTP server offers) and the message dot-stuffed in one pass: a handoff costs two round
// trips, not one per command.
type lmtpSession struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	idle time.Time // when it was last put back in the pool
}

// lmtpReply is one reply: its code, enhanced status code and text (lines joined).
type lmtpReply struct {
	code int
	enh  smtp.EnhancedCode
	text string
}

func (r lmtpReply) err() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.code, EnhancedCode: r.enh, Message: r.text}
}

func (r lmtpReply) String() string { return fmt.Sprintf("%d %s", r.code, r.text) }

// newLMTPSession reads the greeting on conn and introduces this replica with LHLO.
func newLMTPSession(conn net.Conn, hostname string) (*lmtpSession, error) {
	s := &lmtpSession{conn: conn, r: bufio.NewReaderSize(conn, 4<<10), w: bufio.NewWriterSize(conn, 64<<10)}
	if r, err := s.reply(); err != nil || r.code != 220 {
		return nil, replyErr("greeting", r, err)
	}
	if strings.ContainsAny(hostname, "\r\n") {
		return nil, errors.New("LHLO: a line break in the host name")
	}
	s.w.WriteString("LHLO " + hostname + "\r\n")
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("LHLO: %w", err)
	}
	if r, err := s.reply(); err != nil || r.code != 250 {
		return nil, replyErr("LHLO", r, err)
	}
	return s, nil
}

func (s *lmtpSession) close() { s.conn.Close() }

func replyErr(step string, r lmtpReply, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return fmt.Errorf("%s: %w", step, r.err())
}

// reply reads one reply, of one line or several ("250-...", then "250 ...").
func (s *lmtpSession) reply() (lmtpReply, error) {
	var r lmtpReply
	var text []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return r, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return r, fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || r.code != 0 && code != r.code {
			return r, fmt.Errorf("malformed reply %q", line)
		}
		r.code = code
		more := len(line) > 3 && line[3] == '-'
		msg := ""
		if len(line) > 4 {
			msg = line[4:]
		}
		text = append(text, msg)
		if !more {
			break
		}
	}
	r.text = strings.Join(text, " ")
	// An enhanced status code leads the first line's text: "2.1.5 Ok".
	if first, rest, ok := strings.Cut(r.text, " "); ok || first != "" {
		parts := strings.Split(first, ".")
		if len(parts) == 3 {
			var enh smtp.EnhancedCode
			valid := true
			for i, p := range parts {
				n, err := strconv.Atoi(p)
				valid = valid && err == nil && n >= 0 && n < 1000
				enh[i] = n
			}
			if valid && enh[0] == r.code/100 {
				r.enh, r.text = enh, rest
			}
		}
	}
	return r, nil
}

// transaction hands data to rcpts. An error means the session failed as a whole; otherwise
// there is one Outcome per recipient, in order.
func (s *lmtpSession) transaction(ctx context.Context, from string, rcpts []string, data []byte) ([]Outcome, error) {
	if deadline, ok := ctx.Deadline(); ok {
		s.conn.SetDeadline(deadline)
	} else {
		s.conn.SetDeadline(time.Time{})
	}
	param := ""
	if !dirspec.IsASCII(from) {
		param = " SMTPUTF8"
	}
	for _, r := range rcpts {
		if !dirspec.IsASCII(r) {
			param = " SMTPUTF8"
		}
		if strings.ContainsAny(r, "\r\n<>") {
			return nil, fmt.Errorf("RCPT TO: an invalid address %q", r)
		}
	}
	if strings.ContainsAny(from, "\r\n<>") {
		return nil, fmt.Errorf("MAIL FROM: an invalid address %q", from)
	}
	s.w.WriteString("MAIL FROM:<" + from + ">" + param + "\r\n")
	for _, r := range rcpts {
		s.w.WriteString("RCPT TO:<" + r + ">\r\n")
	}
	s.w.WriteString("DATA\r\n")
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("sending the commands: %w", err)
	}
	out, accepted, err := s.envelopeReplies(rcpts)
	if err != nil || len(accepted) == 0 {
		return out, err
	}
	writeDotStuffed(s.w, data)
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("sending the message: %w", err)
	}
	for _, i := range accepted {
		r, err := s.reply()
		if err != nil {
			return nil, fmt.Errorf("end of DATA: %w", err)
		}
		if r.code >= 400 {
			out[i].Err = r.err()
		}
	}
	s.conn.SetDeadline(time.Time{})
	return out, nil
}

// envelopeReplies reads the replies to MAIL, each RCPT and DATA. accepted are the indexes of
// the recipients taken; with none, the refused DATA ended the transaction and the session is
// ready for the next (after RSET).
func (s *lmtpSession) envelopeReplies(rcpts []string) (out []Outcome, accepted []int, err error) {
	mail, err := s.reply()
	if err != nil {
		return nil, nil, fmt.Errorf("MAIL FROM: %w", err)
	}
	out = make([]Outcome, len(rcpts))
	for i, r := range rcpts {
		out[i].Rcpt = r
		rr, err := s.reply()
		if err != nil {
			return nil, nil, fmt.Errorf("RCPT TO: %w", err)
		}
		if rr.code >= 400 {
			out[i].Err = rr.err()
		} else {
			accepted = append(accepted, i)
		}
	}
	data, err := s.reply()
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("DATA: %w", err)
	case mail.code >= 400:
		// Every RCPT and the DATA were refused in its wake: the sender failed, not the mailboxes.
		return nil, nil, fmt.Errorf("MAIL FROM: %w", mail.err())
	case len(accepted) == 0 && data.code == 354:
		return nil, nil, errors.New("DATA: accepted without a recipient")
	case len(accepted) == 0:
		return out, nil, s.reset()
	case data.code != 354:
		return nil, nil, fmt.Errorf("DATA: %w", data.err())
	}
	return out, accepted, nil
}

// reset ends a transaction that sent no message.
func (s *lmtpSession) reset() error {
	s.w.WriteString("RSET\r\n")
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("RSET: %w", err)
	}
	if r, err := s.reply(); err != nil || r.code != 250 {
		return replyErr("RSET", r, err)
	}
	return nil
}

// writeDotStuffed writes data as the content of DATA: every line ended by CRLF (a bare LF
// becomes one), a line that starts with a dot given another, then the final dot.
func writeDotStuffed(w *bufio.Writer, data []byte) {
	for len(data) > 0 {
		if data[0] == '.' {
			w.WriteByte('.')
		}
		line, rest, found := bytes.Cut(data, []byte("\n"))
		if found {
			line = bytes.TrimSuffix(line, []byte("\r"))
		}
		w.Write(line)
		w.WriteString("\r\n")
		data = rest
	}
	w.WriteString(".\r\n")
}
