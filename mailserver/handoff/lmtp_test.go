package handoff

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// lmtpBackend is a go-smtp LMTP server's backend that refuses what the test asks and keeps
// what it receives.
type lmtpBackend struct {
	mu         sync.Mutex
	refuseMail bool
	atRcpt     map[string]*smtp.SMTPError // refused at RCPT
	atData     map[string]*smtp.SMTPError // refused after the message
	got        []received
	utf8       []bool
}

type received struct {
	from  string
	rcpts []string
	data  string
}

func (b *lmtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &lmtpTestSession{b: b}, nil
}

type lmtpTestSession struct {
	b     *lmtpBackend
	from  string
	rcpts []string
}

func (s *lmtpTestSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.b.refuseMail {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "not from you"}
	}
	s.b.mu.Lock()
	s.b.utf8 = append(s.b.utf8, opts != nil && opts.UTF8)
	s.b.mu.Unlock()
	s.from = from
	return nil
}

func (s *lmtpTestSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.b.atRcpt[to]; err != nil {
		return err
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *lmtpTestSession) Data(io.Reader) error { return errors.New("LMTP only") }

func (s *lmtpTestSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.got = append(s.b.got, received{s.from, s.rcpts, string(data)})
	s.b.mu.Unlock()
	for _, rc := range s.rcpts {
		if err := s.b.atData[rc]; err != nil {
			status.SetStatus(rc, err)
		} else {
			status.SetStatus(rc, nil)
		}
	}
	return nil
}

func (s *lmtpTestSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *lmtpTestSession) Logout() error { return nil }

// startLMTP serves b with go-smtp's LMTP server on loopback and returns a session to it.
func startLMTP(t *testing.T, b *lmtpBackend) *lmtpSession {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(b)
	srv.LMTP, srv.Domain, srv.EnableSMTPUTF8 = true, "owner.test", true
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newLMTPSession(conn, "front.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// One transaction answers for each recipient: refused at RCPT, refused after the message, stored.
func TestLMTPTransactionAnswersForEachRecipient(t *testing.T) {
	full := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"}
	later := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again"}
	b := &lmtpBackend{atRcpt: map[string]*smtp.SMTPError{"full@example.com": full},
		atData: map[string]*smtp.SMTPError{"later@example.com": later}}
	s := startLMTP(t, b)
	rcpts := []string{"full@example.com", "ok@example.com", "later@example.com"}
	out, err := s.transaction(deadline(t), "sender@example.org", rcpts, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].Err == nil || out[0].Err.Code != 552 || out[0].Err.EnhancedCode != full.EnhancedCode ||
		out[0].Err.Message != "Mailbox full" || out[1].Err != nil || out[2].Err == nil || out[2].Err.Code != 451 || out[2].Permanent() {
		t.Fatalf("outcomes: %+v", out)
	}
	for i, o := range out {
		if o.Rcpt != rcpts[i] {
			t.Errorf("outcome %d is for %q, want %q", i, o.Rcpt, rcpts[i])
		}
	}
	if len(b.got) != 1 || b.got[0].from != "sender@example.org" || strings.Join(b.got[0].rcpts, ",") != "ok@example.com,later@example.com" {
		t.Fatalf("the server received %+v", b.got)
	}
}

// The message arrives as it was, in CRLF lines: dots at the start of a line survive the
// stuffing, bare LFs become CRLF, a last line without an end gets one.
func TestLMTPMessageIsDotStuffed(t *testing.T) {
	b := &lmtpBackend{}
	s := startLMTP(t, b)
	msgs := map[string]string{
		"Subject: dots\r\n\r\n.\r\n..two\r\n.\r\nend\r\n": "Subject: dots\r\n\r\n.\r\n..two\r\n.\r\nend\r\n",
		"Subject: lf\n\nbare\nline feeds\n.dot\n":         "Subject: lf\r\n\r\nbare\r\nline feeds\r\n.dot\r\n",
		"Subject: unended\r\n\r\nno end":                  "Subject: unended\r\n\r\nno end\r\n",
		".starts with a dot\r\n\r\nbody\r\n":              ".starts with a dot\r\n\r\nbody\r\n",
		"Subject: cr\r\n\r\na bare\rCR stays\r\n":         "Subject: cr\r\n\r\na bare\rCR stays\r\n",
	}
	for in, want := range msgs {
		b.got = nil
		if _, err := s.transaction(deadline(t), "a@example.org", []string{"b@example.com"}, []byte(in)); err != nil {
			t.Fatal(err)
		}
		if len(b.got) != 1 || b.got[0].data != want {
			t.Errorf("sent %q, the server received %+v, want %q", in, b.got, want)
		}
	}
}

// A transaction whose recipients were all refused sends no message and leaves the session
// ready for the next one.
func TestLMTPSessionOutlivesARefusedTransaction(t *testing.T) {
	unknown := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "not here (yet)"}
	b := &lmtpBackend{atRcpt: map[string]*smtp.SMTPError{"new@example.com": unknown}}
	s := startLMTP(t, b)
	out, err := s.transaction(deadline(t), "a@example.org", []string{"new@example.com"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err != nil || len(out) != 1 || out[0].Err == nil || out[0].Err.Code != 451 {
		t.Fatalf("refused transaction: %+v, %v", out, err)
	}
	out, err = s.transaction(deadline(t), "", []string{"b@example.com"}, []byte("Subject: bounce\r\n\r\nx\r\n"))
	if err != nil || len(out) != 1 || out[0].Err != nil {
		t.Fatalf("the next transaction on the session: %+v, %v", out, err)
	}
	if len(b.got) != 1 || b.got[0].from != "" || !strings.Contains(b.got[0].data, "Subject: bounce") {
		t.Fatalf("the server received %+v", b.got)
	}
}

// A refused sender fails the session as a whole; an internationalised address asks for SMTPUTF8.
func TestLMTPSenderRefusedAndUTF8(t *testing.T) {
	s := startLMTP(t, &lmtpBackend{refuseMail: true})
	if _, err := s.transaction(deadline(t), "a@example.org", []string{"b@example.com"}, []byte("x\r\n")); err == nil ||
		!strings.Contains(err.Error(), "MAIL FROM") || !strings.Contains(err.Error(), "not from you") {
		t.Errorf("refused MAIL FROM: %v", err)
	}
	b := &lmtpBackend{}
	s = startLMTP(t, b)
	if out, err := s.transaction(deadline(t), "a@example.org", []string{"jörg@example.com"}, []byte("x\r\n")); err != nil || out[0].Err != nil {
		t.Fatalf("an internationalised recipient: %+v, %v", out, err)
	}
	if len(b.utf8) != 1 || !b.utf8[0] {
		t.Errorf("MAIL FROM did not ask for SMTPUTF8: %v", b.utf8)
	}
	if _, err := s.transaction(deadline(t), "a@example.org", []string{"b@example.com>\r\nRSET"}, []byte("x\r\n")); err == nil {
		t.Error("an address with a line break was sent")
	}
}

func TestLMTPReplyParsing(t *testing.T) {
	tests := []struct {
		in   string
		code int
		enh  smtp.EnhancedCode
		text string
		bad  bool
	}{
		{"250 2.1.5 Ok\r\n", 250, smtp.EnhancedCode{2, 1, 5}, "Ok", false},
		{"250-owner.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n", 250, smtp.EnhancedCode{}, "owner.test PIPELINING 8BITMIME", false},
		{"452 4.2.2 Mailbox full\r\n", 452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full", false},
		{"550 2.1.1 mismatched class\r\n", 550, smtp.EnhancedCode{}, "2.1.1 mismatched class", false},
		{"354 Go ahead\r\n", 354, smtp.EnhancedCode{}, "Go ahead", false},
		{"25\r\n", 0, smtp.EnhancedCode{}, "", true},
		{"abc hello\r\n", 0, smtp.EnhancedCode{}, "", true},
		{"250-first\r\n251 second\r\n", 0, smtp.EnhancedCode{}, "", true},
	}
	for _, tt := range tests {
		s := &lmtpSession{r: bufio.NewReader(strings.NewReader(tt.in))}
		r, err := s.reply()
		if tt.bad {
			if err == nil {
				t.Errorf("%q: no error (%+v)", tt.in, r)
			}
			continue
		}
		if err != nil || r.code != tt.code || r.enh != tt.enh || r.text != tt.text {
			t.Errorf("%q: %+v, %v; want %d %v %q", tt.in, r, err, tt.code, tt.enh, tt.text)
		}
	}
}

func BenchmarkWriteDotStuffed(b *testing.B) {
	msg := bytes.Repeat([]byte("A line of a message of some length, as mail has.\r\n.a dot\r\n"), 180) // ~10 KiB
	w := bufio.NewWriterSize(io.Discard, 64<<10)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		writeDotStuffed(w, msg)
	}
}
