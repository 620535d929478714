package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// CATENATE (RFC 4469) builds a message from text and parts of messages already stored, named
// by IMAP URLs (RFC 5092): a client forwards an attachment without downloading it.

func init() {
	extensionCaps = append(extensionCaps, "MULTIAPPEND", "CATENATE", "URL-PARTIAL")
}

// catenate assembles a message; a URL this server cannot resolve for this user answers
// NO [BADURL url].
func (s *session) catenate(parts []catenatePart) ([]byte, error) {
	var b bytes.Buffer
	for _, p := range parts {
		if p.URL == "" {
			b.Write(p.Text)
		} else {
			data, err := s.resolveURL(p.URL)
			if err != nil {
				return nil, &urlError{url: p.URL, err: err}
			}
			b.Write(data)
		}
		if int64(b.Len()) > s.srv.cfg.MaxMessageBytes {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
				Text: fmt.Sprintf("The message would exceed %d bytes", s.srv.cfg.MaxMessageBytes)}
		}
	}
	return b.Bytes(), nil
}

// urlError is a URL CATENATE cannot use; the tagged NO names it in BADURL.
type urlError struct {
	url string
	err error
}

func (e *urlError) Error() string { return fmt.Sprintf("URL %q: %v", clip(e.url, 80), e.err) }

// imapURL is what CATENATE can reference: a message of one of the user's folders, or a part of
// it, or a range of that.
type imapURL struct {
	mailbox     string
	uidValidity uint32
	uid         uint32
	section     string
	partial     *imap.SectionPartial
}

// parseIMAPURL reads an absolute (imap://user@host/...) or absolute-path (/INBOX;...) URL.
// The user, when named, must be the one logged in: CATENATE never reads another's mail.
func (s *session) parseIMAPURL(raw string) (*imapURL, error) {
	path := raw
	if rest, ok := strings.CutPrefix(strings.ToLower(raw), "imap://"); ok {
		rest = raw[len(raw)-len(rest):]
		authority, p, found := strings.Cut(rest, "/")
		if !found {
			return nil, errors.New("no mailbox")
		}
		if user, _, hasUser := strings.Cut(authority, "@"); hasUser {
			user, _, _ = strings.Cut(user, ";")
			if u, err := url.PathUnescape(user); err != nil || !strings.EqualFold(u, s.user.Address) {
				return nil, errors.New("names another user")
			}
		}
		path = "/" + p
	}
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("not an absolute IMAP URL")
	}
	u := &imapURL{}
	segs := strings.Split(path[1:], "/;")
	box, params, _ := strings.Cut(segs[0], ";")
	var err error
	if u.mailbox, err = urlMailbox(box); err != nil {
		return nil, err
	}
	if v, ok := strings.CutPrefix(strings.ToUpper(params), "UIDVALIDITY="); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, errors.New("bad UIDVALIDITY")
		}
		u.uidValidity = uint32(n)
	}
	for _, seg := range segs[1:] {
		if err := u.param(seg); err != nil {
			return nil, err
		}
	}
	if u.uid == 0 {
		return nil, errors.New("no UID")
	}
	return u, nil
}

// param reads one ";NAME=value" segment of the URL's path.
func (u *imapURL) param(seg string) error {
	name, value, _ := strings.Cut(seg, "=")
	value, err := url.PathUnescape(value)
	if err != nil {
		return fmt.Errorf("bad escape in %s", name)
	}
	switch strings.ToUpper(name) {
	case "UID":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || n == 0 {
			return errors.New("bad UID")
		}
		u.uid = uint32(n)
	case "SECTION":
		u.section = value
	case "PARTIAL":
		off, size, hasSize := strings.Cut(value, ".")
		o, err1 := strconv.ParseInt(off, 10, 64)
		n, err2 := int64(-1), error(nil)
		if hasSize {
			n, err2 = strconv.ParseInt(size, 10, 64)
		}
		if err1 != nil || err2 != nil || o < 0 || (hasSize && n <= 0) {
			return errors.New("bad PARTIAL")
		}
		u.partial = &imap.SectionPartial{Offset: o, Size: n}
	default:
		return fmt.Errorf("unknown %s", name)
	}
	return nil
}

// urlMailbox decodes a URL's mailbox: %-escapes, then modified UTF-7 if it reads as such.
func urlMailbox(s string) (string, error) {
	name, err := url.PathUnescape(s)
	if err != nil || name == "" {
		return "", errors.New("bad mailbox name")
	}
	if decoded, err := utf7Decode(name); err == nil {
		name = decoded
	}
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	return name, nil
}

// resolveURL returns the bytes a URL names.
func (s *session) resolveURL(raw string) ([]byte, error) {
	u, err := s.parseIMAPURL(raw)
	if err != nil {
		return nil, err
	}
	f, err := s.box.Folder(u.mailbox)
	if err != nil {
		return nil, errors.New("no such folder")
	}
	if u.uidValidity != 0 && u.uidValidity != f.UIDValidity() {
		return nil, errors.New("UIDVALIDITY changed")
	}
	file, err := f.Open(u.uid)
	if errors.Is(err, store.ErrNoSuchMessage) {
		return nil, errors.New("no such message")
	}
	if err != nil {
		return nil, s.storageError("opening a message for CATENATE", err)
	}
	defer file.Close()
	size, err := file.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, s.storageError("opening a message for CATENATE", err)
	}
	bs := &imap.FetchItemBodySection{}
	if u.section != "" {
		if err := parseBodySection(bs, strings.ToUpper(u.section)); err != nil {
			return nil, errors.New("bad SECTION")
		}
	}
	data, err := extractBodySection(file, size, bs)
	if err != nil {
		return nil, s.storageError("reading a message for CATENATE", err)
	}
	if data == nil {
		return nil, errors.New("no such section")
	}
	if u.partial != nil {
		p := *u.partial
		if p.Size < 0 {
			p.Size = int64(len(data))
		}
		data = partial(data, &p)
	}
	return data, nil
}

// badURL is the NO a URL error is answered with: BADURL names the URL as it was sent, unquoted
// (RFC 4469's url-resp-text is text up to the "]", and a client compares it with its URL), when
// the response code can carry it.
func badURL(e *urlError) error {
	code := "BADURL"
	if len(e.url) < 200 && !strings.ContainsFunc(e.url, func(r rune) bool { return r < ' ' || r > '~' || r == ']' }) {
		code += " " + e.url
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCode(code), Text: e.Error()}
}
