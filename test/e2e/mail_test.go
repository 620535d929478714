//go:build e2e

package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// swaks sends one message with swaks and returns its transcript.
func (s *suite) swaks(args ...string) (string, error) {
	return s.run("", "swaks", append([]string{"--timeout", "30", "--hide-informational"}, args...)...)
}

// curlMail runs curl against an IMAP or POP3 URL as user.
func (s *suite) curlMail(url, user, password string, extra ...string) (string, error) {
	args := append([]string{"--silent", "--show-error", "--insecure", "--max-time", "30", "--user", user + ":" + password, url}, extra...)
	return s.run("", "curl", args...)
}

var searchRE = regexp.MustCompile(`(?m)^\* SEARCH((?: \d+)*)\s*$`)

// imapUIDs searches a mailbox's INBOX over IMAPS for messages whose subject holds token and
// returns their UIDs.
func (s *suite) imapUIDs(ip, user, password, token string) ([]string, error) {
	out, err := s.curlMail(fmt.Sprintf("imaps://%s:993/INBOX", ip), user, password, "--request", "UID SEARCH SUBJECT "+token)
	if err != nil {
		return nil, err
	}
	m := searchRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no SEARCH response in %q", out)
	}
	return strings.Fields(m[1]), nil
}

// imapFind searches a mailbox's INBOX over IMAPS for a message whose subject holds token and
// returns the message as curl fetched it, or "" when there is none.
func (s *suite) imapFind(ip, user, password, token string) (string, error) {
	uids, err := s.imapUIDs(ip, user, password, token)
	if err != nil || len(uids) == 0 {
		return "", err
	}
	return s.curlMail(fmt.Sprintf("imaps://%s:993/INBOX;UID=%s", ip, uids[len(uids)-1]), user, password)
}

var popListRE = regexp.MustCompile(`(?m)^(\d+) \d+\r?$`)

// pop3Find downloads a mailbox's messages over POP3S (without deleting them) until one holds
// token, and returns it, or "" when none does.
func (s *suite) pop3Find(ip, user, password, token string) (string, error) {
	list, err := s.curlMail(fmt.Sprintf("pop3s://%s:995/", ip), user, password)
	if err != nil {
		return "", err
	}
	for _, m := range popListRE.FindAllStringSubmatch(list, -1) {
		msg, err := s.curlMail(fmt.Sprintf("pop3s://%s:995/%s", ip, m[1]), user, password)
		if err != nil {
			return "", err
		}
		if strings.Contains(msg, token) {
			return msg, nil
		}
	}
	return "", nil
}

// imapCanLogin reports whether user can log in over IMAPS with password.
func (s *suite) imapCanLogin(ip, user, password string) bool {
	_, err := s.curlMail(fmt.Sprintf("imaps://%s:993/", ip), user, password, "--request", "NOOP")
	return err == nil
}

// subjects lists the subjects of every message in a mailbox's INBOX, with go-imap's client.
func subjects(addr, user, password string) ([]string, error) {
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, password).Wait(); err != nil {
		return nil, err
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(seq, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		if m.Envelope != nil {
			out = append(out, m.Envelope.Subject)
		}
	}
	return out, nil
}

// sender is an SMTP client that sends one message after another to a server, as a sending
// MTA would: a refused connection, a failure before the transaction starts, or a 4xx reply is
// retried (that is how SMTP defers); a 5xx reply or a connection lost during a transaction
// (from MAIL FROM to the reply to the final dot) is a failed transaction.
type sender struct {
	addr, from, to string

	mu       sync.Mutex
	acked    []string // tokens of messages the server accepted with 250
	failures []error
	retries  int // connection failures and 4xx replies, each retried
}

// errDeferred marks an attempt the SMTP rules let the client retry.
var errDeferred = errors.New("deferred")

// run sends until stop is closed (after at least min more messages), or max messages were sent.
func (sd *sender) run(stop <-chan struct{}, max int) {
	for i := 0; i < max; i++ {
		select {
		case <-stop:
			return
		default:
		}
		token := fmt.Sprintf("roll-%04d-%s", i, randomHex(3))
		deadline := time.Now().Add(3 * time.Minute)
		for {
			err := sd.sendOnce(token)
			if err == nil {
				sd.mu.Lock()
				sd.acked = append(sd.acked, token)
				sd.mu.Unlock()
				break
			}
			sd.mu.Lock()
			if !errors.Is(err, errDeferred) || time.Now().After(deadline) {
				sd.failures = append(sd.failures, fmt.Errorf("message %s: %w", token, err))
				sd.mu.Unlock()
				return
			}
			sd.retries++
			sd.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (sd *sender) sendOnce(token string) error {
	conn, err := net.DialTimeout("tcp", sd.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w: connect: %v", errDeferred, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := smtp.NewClient(conn)
	if err := c.Hello("sender.e2e.test"); err != nil {
		return fmt.Errorf("%w: before the transaction: %v", errDeferred, err)
	}
	inTransaction := func(step string, err error) error {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 400 && se.Code < 500 {
			return fmt.Errorf("%w: %s: %v", errDeferred, step, err)
		}
		return fmt.Errorf("%s: %v", step, err)
	}
	if err := c.Mail(sd.from, nil); err != nil {
		return inTransaction("MAIL FROM", err)
	}
	if err := c.Rcpt(sd.to, nil); err != nil {
		return inTransaction("RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return inTransaction("DATA", err)
	}
	fmt.Fprintf(w, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@sender.e2e.test>\r\n\r\nSent while the mail server rolls.\r\n",
		sd.from, sd.to, token, token)
	if err := w.Close(); err != nil {
		return inTransaction("end of DATA", err)
	}
	c.Quit() // the message is accepted; how the goodbye goes does not matter
	return nil
}

// senders keep one sending client per recipient running through a step of the walk.
type senders struct {
	t    *testing.T
	list []*sender
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// startSenders starts a client sending to each recipient through the client Service at ip, and
// returns once each has had 5 messages accepted.
func (s *suite) startSenders(t *testing.T, ip string, to ...string) *senders {
	t.Helper()
	g := &senders{t: t, stop: make(chan struct{})}
	for _, rcpt := range to {
		sd := &sender{addr: net.JoinHostPort(ip, "25"), from: "roller@sender.e2e.test", to: rcpt}
		g.list = append(g.list, sd)
		g.wg.Add(1)
		go func() { defer g.wg.Done(); sd.run(g.stop, 5000) }()
	}
	t.Cleanup(g.halt)
	g.waitMore(5, "the clients to be sending")
	return g
}

// waitMore waits until every client has had n more messages accepted than now; a failed
// transaction fails the test.
func (g *senders) waitMore(n int, what string) {
	g.t.Helper()
	base := make([]int, len(g.list))
	for i, sd := range g.list {
		acked, _, _ := sd.snapshot()
		base[i] = len(acked)
	}
	poll(g.t, what, 2*time.Minute, func() (bool, error) {
		for i, sd := range g.list {
			acked, failures, _ := sd.snapshot()
			if len(failures) > 0 {
				g.t.Fatalf("the client sending to %s failed: %v", sd.to, failures)
			}
			if len(acked) < base[i]+n {
				return false, fmt.Errorf("%s: %d messages accepted, waiting for %d", sd.to, len(acked), base[i]+n)
			}
		}
		return true, nil
	})
}

// halt stops the clients and waits until they have.
func (g *senders) halt() {
	g.once.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// finish waits until every client has had n more messages accepted, stops them, and returns
// the accepted messages by recipient and the number of deferred attempts the clients retried.
// A failed transaction fails the test.
func (g *senders) finish(n int, what string) (acked map[string][]string, retries int) {
	g.t.Helper()
	g.waitMore(n, what)
	g.halt()
	acked = map[string][]string{}
	for _, sd := range g.list {
		a, failures, r := sd.snapshot()
		if len(failures) > 0 {
			g.t.Fatalf("%d failed SMTP transactions to %s: %v", len(failures), sd.to, failures)
		}
		acked[sd.to] = a
		retries += r
	}
	return acked, retries
}

func (sd *sender) snapshot() (acked []string, failures []error, retries int) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return append([]string(nil), sd.acked...), append([]error(nil), sd.failures...), sd.retries
}

// volumePath returns where the PersistentVolume of mail server pod keeps its files on this
// node: the suite runs on the node of the single-node cluster, whose volumes are local
// directories.
func (s *suite) volumePath(pod string) string {
	s.t.Helper()
	var pvc corev1.PersistentVolumeClaim
	if err := s.c.Get(ctx(), client.ObjectKey{Namespace: s.ns, Name: dataClaimPrefix + pod}, &pvc); err != nil {
		s.t.Fatalf("the mail server's PersistentVolumeClaim: %v", err)
	}
	var pv corev1.PersistentVolume
	if err := s.c.Get(ctx(), client.ObjectKey{Name: pvc.Spec.VolumeName}, &pv); err != nil {
		s.t.Fatalf("PersistentVolume %q: %v", pvc.Spec.VolumeName, err)
	}
	if pv.Spec.Local == nil {
		s.t.Fatalf("PersistentVolume %s is not a local volume; the suite reads the mail server's files on the node", pv.Name)
	}
	return pv.Spec.Local.Path
}

// mailboxFiles lists the files stored for address on the volume (in any folder), and whether
// the mailbox's directory exists at all.
func mailboxFiles(volume, address string) (files []string, exists bool, err error) {
	local, domain, _ := strings.Cut(address, "@")
	suffix := string(filepath.Separator) + filepath.Join("mailboxes", domain, local)
	var dir string
	err = filepath.WalkDir(volume, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasSuffix(p, suffix) {
			dir = p
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil || dir == "" {
		return nil, false, err
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() && (strings.Contains(p, "/cur/") || strings.Contains(p, "/new/")) {
			files = append(files, p)
		}
		return nil
	})
	return files, true, err
}
