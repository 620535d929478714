package pop3

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/kubemail/kubemail/mailserver/store"
)

// maildrop is a session's view of its INBOX: the message list is frozen at login (RFC 1939
// numbers the messages 1..n for the whole session) and the mailbox is locked against other POP3
// sessions until the session ends.
type maildrop struct {
	folder      *store.Folder
	uidValidity uint32
	msgs        []store.Message
	deleted     []bool
	release     func()
}

var errInUseLock = errors.New("maildrop locked by another session")

func openMaildrop(st *store.Store, address string) (*maildrop, error) {
	box, err := st.Mailbox(address)
	if err != nil {
		return nil, err
	}
	folder := box.Inbox()
	if folder == nil {
		return nil, fmt.Errorf("mailbox %s has no INBOX", address)
	}
	release, ok := maildropLocks.acquire(box)
	if !ok {
		return nil, errInUseLock
	}
	// Listed under the lock, so the previous session's deletions are already gone.
	msgs, status := folder.Messages()
	return &maildrop{folder: folder, uidValidity: status.UIDValidity, msgs: msgs,
		deleted: make([]bool, len(msgs)), release: release}, nil
}

// stat counts the messages not marked deleted and their octets.
func (d *maildrop) stat() (count int, size int64) {
	for i, m := range d.msgs {
		if !d.deleted[i] {
			count++
			size += m.Size
		}
	}
	return count, size
}

// uidl is a message's unique-id (RFC 1939 section 7): the same in every session for as long as
// the folder keeps its UIDVALIDITY, and never reused for another message.
func (d *maildrop) uidl(i int) string {
	return strconv.FormatUint(uint64(d.uidValidity), 10) + "." + strconv.FormatUint(uint64(d.msgs[i].UID), 10)
}

// message resolves a message-number argument to an index into msgs.
func (d *maildrop) message(arg string) (int, error) {
	n, ok := parseNumber(arg)
	if !ok {
		return 0, syntaxError("Invalid message number")
	}
	if n < 1 || n > len(d.msgs) {
		return 0, fail("", "No such message")
	}
	if d.deleted[n-1] {
		return 0, fail("", "Message "+strconv.Itoa(n)+" is deleted")
	}
	return n - 1, nil
}

func (s *session) cmdStat([]string) error {
	count, size := s.drop.stat()
	return s.ok(fmt.Sprintf("%d %d", count, size))
}

func (s *session) cmdList(args []string) error {
	d := s.drop
	if len(args) == 1 {
		i, err := d.message(args[0])
		if err != nil {
			return err
		}
		return s.ok(fmt.Sprintf("%d %d", i+1, d.msgs[i].Size))
	}
	var lines []string
	for i, m := range d.msgs {
		if !d.deleted[i] {
			lines = append(lines, fmt.Sprintf("%d %d", i+1, m.Size))
		}
	}
	count, size := d.stat()
	return s.multiLine(fmt.Sprintf("%d messages (%d octets)", count, size), lines)
}

func (s *session) cmdUidl(args []string) error {
	d := s.drop
	if len(args) == 1 {
		i, err := d.message(args[0])
		if err != nil {
			return err
		}
		return s.ok(fmt.Sprintf("%d %s", i+1, d.uidl(i)))
	}
	var lines []string
	for i := range d.msgs {
		if !d.deleted[i] {
			lines = append(lines, fmt.Sprintf("%d %s", i+1, d.uidl(i)))
		}
	}
	return s.multiLine("Unique-ID listing follows", lines)
}

func (s *session) cmdRetr(args []string) error {
	i, err := s.drop.message(args[0])
	if err != nil {
		return err
	}
	if err := s.sendMessage(i, -1); err != nil {
		return err
	}
	// Like other servers, count a download as reading, so IMAP clients of the same mailbox agree.
	if _, err := s.drop.folder.SetFlags([]uint32{s.drop.msgs[i].UID}, store.FlagsAdd, []string{`\Seen`}); err != nil {
		s.log.Warn("marking a retrieved message seen failed", "uid", s.drop.msgs[i].UID, "err", err)
	}
	return nil
}

func (s *session) cmdTop(args []string) error {
	i, err := s.drop.message(args[0])
	if err != nil {
		return err
	}
	lines, ok := parseNumber(args[1])
	if !ok {
		return syntaxError("Invalid number of lines")
	}
	return s.sendMessage(i, lines)
}

// sendMessage answers RETR (bodyLines < 0) or TOP.
func (s *session) sendMessage(i, bodyLines int) error {
	m := s.drop.msgs[i]
	f, err := s.drop.folder.Open(m.UID)
	if errors.Is(err, store.ErrNoSuchMessage) {
		return fail("", "No such message: it was removed by another session")
	}
	if err != nil {
		s.log.Error("opening a message failed", "uid", m.UID, "err", err)
		return fail("SYS/TEMP", "Cannot read the message, try again later")
	}
	defer f.Close()
	first := "Top of message follows"
	if bodyLines < 0 {
		first = fmt.Sprintf("%d octets", m.Size)
	}
	if err := s.ok(first); err != nil {
		return err
	}
	n, err := writeMessage(s.bw, f, bodyLines)
	s.cfg.Metrics.BytesSent.WithLabelValues(protocol).Add(float64(n))
	if err != nil {
		// The +OK is out: ending the answer with a dot now would pass a truncated message off
		// as complete, so the connection is dropped instead.
		return fmt.Errorf("sending UID %d: %w", m.UID, err)
	}
	return nil
}

func (s *session) cmdDele(args []string) error {
	i, err := s.drop.message(args[0])
	if err != nil {
		return err
	}
	s.drop.deleted[i] = true
	return s.ok(fmt.Sprintf("Message %d deleted", i+1))
}

func (s *session) cmdNoop([]string) error { return s.ok("") }

func (s *session) cmdRset([]string) error {
	clear(s.drop.deleted)
	count, size := s.drop.stat()
	return s.ok(fmt.Sprintf("Maildrop has %d messages (%d octets)", count, size))
}

// update is QUIT in the TRANSACTION state (RFC 1939 section 6): only now do deletions happen.
func (s *session) update() error {
	d := s.drop
	var uids []uint32
	for i, m := range d.msgs {
		if d.deleted[i] {
			uids = append(uids, m.UID)
		}
	}
	var err error
	if len(uids) > 0 {
		_, err = d.folder.Expunge(uids)
	}
	left := d.folder.Status().Messages
	// Before answering: a client that reconnects at once must find the maildrop free.
	d.release()
	if err != nil {
		s.log.Error("removing deleted messages failed", "err", err)
		if rerr := s.reply(fail("SYS/TEMP", "Some deleted messages were not removed")); rerr != nil {
			return rerr
		}
		return errQuit
	}
	if len(uids) > 0 {
		s.log.Info("POP3 deleted messages", "count", len(uids))
	}
	if err := s.ok(fmt.Sprintf("%s POP3 server signing off (%d messages left)", s.cfg.Hostname, left)); err != nil {
		return err
	}
	return errQuit
}

// writeMessage copies a stored message (CRLF line endings) to w as the body of a multi-line
// answer: a line starting with "." gets another "." (RFC 1939 section 3), a last line without a
// line ending gets one, and ".\r\n" ends it. bodyLines < 0 copies the whole message; otherwise
// the header, the blank line and the first bodyLines lines of the body (TOP). It returns the
// octets written.
func writeMessage(w *bufio.Writer, r io.Reader, bodyLines int) (int64, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	var written int64
	write := func(p []byte) error {
		n, err := w.Write(p)
		written += int64(n)
		return err
	}
	atLineStart, inHeader, lines := true, true, 0
	for {
		chunk, rerr := br.ReadSlice('\n')
		if len(chunk) > 0 {
			lineStart := atLineStart
			if lineStart && !inHeader && bodyLines >= 0 && lines >= bodyLines {
				break
			}
			if lineStart && chunk[0] == '.' {
				if err := write([]byte{'.'}); err != nil {
					return written, err
				}
			}
			if err := write(chunk); err != nil {
				return written, err
			}
			atLineStart = chunk[len(chunk)-1] == '\n'
			if atLineStart {
				switch {
				case !inHeader:
					lines++
				case lineStart && (string(chunk) == "\r\n" || string(chunk) == "\n"):
					inHeader = false
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && !errors.Is(rerr, bufio.ErrBufferFull) {
			return written, rerr
		}
	}
	end := ".\r\n"
	if !atLineStart {
		end = "\r\n.\r\n"
	}
	return written, write([]byte(end))
}
