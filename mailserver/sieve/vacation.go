package sieve

import (
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReplyLog remembers vacation replies, so that a sender gets at most one per period.
// The mail server keeps it on the mailbox's volume; MemoryReplyLog serves tests.
type ReplyLog interface {
	// LastReply returns when sender was last answered for handle, if ever.
	LastReply(sender, handle string) (time.Time, bool)
}

// listHeaders mark mail from lists (RFC 2369, RFC 2919); a reply would reach everyone.
var listHeaders = []string{"List-Id", "List-Post", "List-Unsubscribe", "List-Help", "List-Subscribe", "List-Owner", "List-Archive"}

// VacationPolicy decides whether the vacation action of a run may send its reply, following
// RFC 5230 sections 4.5 to 4.7. own are the recipient's addresses (the envelope recipient
// and the mailbox's aliases); the action's :addresses are added to them. The reply is due
// when reason is empty.
func VacationPolicy(v *Vacation, msg Message, env Envelope, own []string, log ReplyLog, now time.Time) (reason string) {
	sender := strings.ToLower(env.From)
	if sender == "" {
		return "the sender is the null sender (a bounce)"
	}
	if r := automated(msg, sender); r != "" {
		return r
	}
	mine := append(append([]string{env.To}, own...), v.Addresses...)
	for _, a := range mine {
		if strings.EqualFold(a, sender) {
			return "the sender is the recipient"
		}
	}
	if !addressedTo(msg, mine) {
		return "none of the recipient's addresses is in To, Cc or Bcc"
	}
	if last, ok := log.LastReply(sender, v.Handle); ok && now.Sub(last) < time.Duration(v.Days)*24*time.Hour {
		return "the sender was answered less than " + plural(v.Days, "day") + " ago"
	}
	return ""
}

// automated reports why a message looks sent by a machine or a list, or "".
func automated(msg Message, sender string) string {
	for _, v := range msg.Header("Auto-Submitted") {
		if !strings.EqualFold(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]), "no") {
			return "the message is Auto-Submitted: " + v
		}
	}
	for _, v := range msg.Header("Precedence") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "the message has Precedence: " + v
		}
	}
	for _, h := range listHeaders {
		if len(msg.Header(h)) > 0 {
			return "the message comes from a mailing list (" + h + ")"
		}
	}
	for _, v := range msg.Header("X-Auto-Response-Suppress") {
		if l := strings.ToLower(v); strings.Contains(l, "all") || strings.Contains(l, "oof") {
			return "the message asks for no automatic replies"
		}
	}
	local := splitAddr(sender).local
	switch {
	case local == "mailer-daemon", local == "listserv", local == "majordomo",
		strings.HasPrefix(local, "owner-"), strings.HasSuffix(local, "-request"),
		strings.HasSuffix(local, "-owner"), strings.HasSuffix(local, "-bounces"):
		return "the sender " + sender + " is a list or mail system address"
	}
	return ""
}

func addressedTo(msg Message, mine []string) bool {
	for _, h := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, v := range msg.Header(h) {
			for _, a := range parseAddresses(v) {
				for _, m := range mine {
					if !a.invalid && strings.EqualFold(a.all, m) {
						return true
					}
				}
			}
		}
	}
	return false
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// ReplySubject is the subject of the reply: :subject, or "Auto: " and the original's.
func (v *Vacation) ReplySubject(msg Message) string {
	if v.Subject != "" {
		return v.Subject
	}
	orig := ""
	if s := msg.Header("Subject"); len(s) > 0 {
		orig = decodeHeader(s[0])
	}
	return "Auto: " + orig
}

// MemoryReplyLog is a ReplyLog in memory.
type MemoryReplyLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// LastReply implements ReplyLog.
func (m *MemoryReplyLog) LastReply(sender, handle string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.seen[strings.ToLower(sender)+"\x00"+handle]
	return t, ok
}

// Record notes that sender was answered for handle at t.
func (m *MemoryReplyLog) Record(sender, handle string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]time.Time{}
	}
	m.seen[strings.ToLower(sender)+"\x00"+handle] = t
}

// BuildReply composes the vacation reply of RFC 5230 section 5, ready for the outbound
// queue with the null sender as its return path. recipient is the address the original
// message was delivered to; messageID is the new message's Message-ID, with its brackets.
func BuildReply(v *Vacation, msg Message, env Envelope, recipient, messageID string, now time.Time) []byte {
	var b strings.Builder
	from := v.From
	if from == "" {
		from = recipient
	}
	// A script writes :subject and :from, so line breaks in them must not start new fields.
	header := func(name, value string) {
		b.WriteString(name + ": " + strings.NewReplacer("\r", " ", "\n", " ").Replace(value) + "\r\n")
	}
	header("From", from)
	header("To", "<"+env.From+">")
	header("Subject", mime.QEncoding.Encode("utf-8", v.ReplySubject(msg)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID)
	if orig := first(msg.Header("Message-ID")); orig != "" {
		header("In-Reply-To", orig)
		refs := strings.TrimSpace(first(msg.Header("References")) + " " + orig)
		header("References", refs)
	}
	// RFC 3834: marks the reply so that other responders do not answer it in turn.
	header("Auto-Submitted", "auto-replied (vacation)")
	header("Precedence", "bulk")
	header("MIME-Version", "1.0")
	if v.MIME {
		// With :mime the reason is a whole MIME entity: its own header, then its body.
		b.WriteString(crlf(v.Reason))
		return []byte(b.String())
	}
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(crlf(v.Reason)))
	w.Close()
	return []byte(b.String())
}

// crlf gives every line a CRLF ending, as SMTP requires.
func crlf(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}
