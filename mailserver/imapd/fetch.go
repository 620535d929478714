package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/imapd/wire"
	"github.com/kubemail/kubemail/mailserver/store"
)

func (s *session) cmdFetch(_ string, args []wire.Value, uid bool) (reply, error) {
	if len(args) < 2 {
		return reply{}, badArg("FETCH takes a message set and the items to fetch")
	}
	set, err := parseNumSet(args[0], uid)
	if err != nil {
		return reply{}, err
	}
	fa, err := parseFetchArgs(args[1:], uid)
	if err != nil {
		return reply{}, err
	}
	return reply{}, s.fetch(set, fa)
}

func (s *session) fetch(numSet imap.NumSet, fa *fetchArgs) error {
	sel := s.sel
	s.useCondStore(fa.Options.ModSeq)
	if fa.Vanished {
		if !s.qresync {
			return badArg("FETCH: VANISHED needs ENABLE QRESYNC first")
		}
		s.vanishedEarlier(sel.uidSet(numSet))
	}
	targets, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	if fa.ChangedSince > 0 {
		targets = slices.DeleteFunc(targets, func(t target) bool { return t.msg.ModSeq <= fa.ChangedSince })
	}

	// A body fetch without PEEK marks the message \Seen, and the response then carries the new
	// flags (RFC 3501 6.4.5). EXAMINE never changes anything.
	newFlags := map[uint32]store.Message{}
	if !sel.readOnly && marksSeen(fa) {
		var unseen []uint32
		for _, t := range targets {
			if !hasFlag(t.msg.Flags, imap.FlagSeen) {
				unseen = append(unseen, t.msg.UID)
			}
		}
		if len(unseen) > 0 {
			changed, _, err := sel.setFlags(unseen, store.FlagsAdd, []string{string(imap.FlagSeen)}, false, 0)
			if err != nil {
				s.log.Error("setting \\Seen", "folder", sel.folder.Name(), "err", err)
			}
			for _, m := range changed {
				newFlags[m.UID] = m
			}
		}
	}
	for _, t := range targets {
		m, seen := newFlags[t.msg.UID]
		if seen {
			t.msg.Flags, t.msg.ModSeq = m.Flags, m.ModSeq
		}
		if err := s.fetchOne(t, fa, seen); err != nil {
			return err
		}
	}
	return nil
}

func marksSeen(fa *fetchArgs) bool {
	for _, bs := range fa.Options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range fa.Options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// needsContent reports whether a FETCH needs the message file, not just the index.
func needsContent(fa *fetchArgs) bool {
	o := fa.Options
	return o.Envelope || o.BodyStructure != nil || fa.Body || len(o.BodySection) > 0 ||
		len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
}

// headerOnly reports whether every part of the message that options ask for lies in its
// header: ENVELOPE and BODY[HEADER], BODY[HEADER.FIELDS (...)], the message list's usual
// request.
func headerOnly(fa *fetchArgs) bool {
	options := fa.Options
	if options.BodyStructure != nil || fa.Body || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 {
		return false
	}
	for _, bs := range options.BodySection {
		if len(bs.Part) > 0 || bs.Specifier != imap.PartSpecifierHeader {
			return false
		}
	}
	return true
}

// content is a message's stored bytes, or only its header block when that is all a FETCH
// needs.
type content interface {
	io.ReadSeeker
	io.ReaderAt
}

// cachedHeader is a message's header block from the store's header cache, as FETCH content:
// what is derived from it can be kept with it.
type cachedHeader struct {
	*bytes.Reader
	h *store.Header
}

// openContent opens what a FETCH of m needs; nil content and no error for a message that was
// expunged meanwhile (its EXPUNGE follows), which is then skipped rather than half-written.
func (s *session) openContent(m store.Message, fa *fetchArgs) (content, int64, func(), error) {
	switch {
	case needsContent(fa) && headerOnly(fa):
		// The envelope and the header sections come from the store's header cache: the
		// message list, fetched again and again, opens no file once its headers were read.
		h, err := s.sel.folder.Header(m.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			return nil, 0, nil, nil
		}
		if err != nil {
			return nil, 0, nil, s.storageError("reading a message's header", err)
		}
		return cachedHeader{bytes.NewReader(h.Raw), h}, int64(len(h.Raw)), func() {}, nil
	case needsContent(fa):
		f, err := s.sel.folder.Open(m.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			return nil, 0, nil, nil
		}
		if err != nil {
			return nil, 0, nil, s.storageError("opening a message", err)
		}
		return f, m.Size, func() { f.Close() }, nil
	}
	return nil, 0, func() {}, nil
}

// fetchOne writes one FETCH response. The file is opened before the response starts.
func (s *session) fetchOne(t target, fa *fetchArgs, flagsChanged bool) error {
	options := fa.Options
	file, size, done, err := s.openContent(t.msg, fa)
	if err != nil || done == nil {
		return err
	}
	defer done()
	w := s.w
	w.Begin()
	w.Raw(strconv.FormatUint(uint64(t.seq), 10) + " FETCH (UID " + strconv.FormatUint(uint64(t.msg.UID), 10))
	if options.Flags || flagsChanged {
		w.Raw(" FLAGS ")
		w.Value(flagValues(t.msg.Flags))
	}
	if options.InternalDate {
		w.Raw(" INTERNALDATE ")
		w.Value(wire.String(t.msg.InternalDate.Format(internalDateLayout)))
	}
	if options.RFC822Size {
		w.Raw(" RFC822.SIZE " + strconv.FormatInt(t.msg.Size, 10))
	}
	if options.ModSeq || (flagsChanged && s.condstore) {
		w.Raw(" MODSEQ (" + strconv.FormatUint(t.msg.ModSeq, 10) + ")")
	}
	if options.Envelope {
		w.Raw(" ENVELOPE ")
		if err := s.writeEnvelope(file); err != nil {
			return s.brokenResponse(t.msg, err)
		}
	}
	if fa.Body || options.BodyStructure != nil {
		file.Seek(0, io.SeekStart)
		bs := extractBodyStructure(file)
		if fa.Body {
			w.Raw(" BODY ")
			if err := w.Value(encodeBodyStructure(bs, false)); err != nil {
				return s.brokenResponse(t.msg, err)
			}
		}
		if options.BodyStructure != nil && options.BodyStructure.Extended { // BODY alone sets a non-extended one
			w.Raw(" BODYSTRUCTURE ")
			if err := w.Value(encodeBodyStructure(bs, true)); err != nil {
				return s.brokenResponse(t.msg, err)
			}
		}
	}
	s.writeObjectItems(fa, t.msg)
	if err := s.writeSections(file, size, t.msg, fa); err != nil {
		return err
	}
	w.Raw(")")
	return w.End()
}

const internalDateLayout = "02-Jan-2006 15:04:05 -0700"

// writeSections writes the BODY[...], BINARY[...] and BINARY.SIZE[...] items.
func (s *session) writeSections(file content, size int64, m store.Message, fa *fetchArgs) error {
	for _, bs := range fa.Options.BodySection {
		if err := s.writeBodySection(file, size, m, fa, bs); err != nil {
			return err
		}
	}
	for _, bs := range fa.Options.BinarySection {
		b, ok, err := extractBinarySection(file, size, bs.Part)
		if err != nil {
			return s.brokenResponse(m, err)
		}
		if !ok {
			// RFC 3516 4.3 wants NO [UNKNOWN-CTE]; within a FETCH of several messages, NIL says
			// the same for this message without failing the others.
			s.w.Raw(" " + encodeBinarySectionName(bs) + " NIL")
			continue
		}
		b = partial(b, bs.Partial)
		s.w.Raw(" " + encodeBinarySectionName(bs) + " ")
		s.w.Value(encodeBinaryLiteral(b))
		s.countSent(len(b))
	}
	for _, bss := range fa.Options.BinarySectionSize {
		b, ok, err := extractBinarySection(file, size, bss.Part)
		if err != nil {
			return s.brokenResponse(m, err)
		}
		s.w.Raw(" " + encodeBinarySizeName(bss) + " ")
		if !ok {
			s.w.Raw("NIL")
			continue
		}
		s.w.Raw(strconv.Itoa(len(b)))
	}
	return nil
}

// partial cuts <offset.size> out of a section.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	off := min(p.Offset, int64(len(b)))
	return b[off:min(off+p.Size, int64(len(b)))]
}

// writeBodySection sends one BODY[...] item. The whole message, the commonest request, is
// streamed from the file; other sections are cut out first.
func (s *session) writeBodySection(file content, size int64, m store.Message, fa *fetchArgs, bs *imap.FetchItemBodySection) error {
	name := " " + sectionResponseName(fa, bs) + " "
	whole := len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone &&
		len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0
	if !whole {
		b, err := extractBodySection(file, size, bs)
		if err != nil {
			return s.brokenResponse(m, err)
		}
		b = partial(b, bs.Partial)
		s.w.Raw(name)
		if err := s.w.Value(encodeBodyLiteral(b)); err != nil {
			return s.brokenResponse(m, err)
		}
		s.countSent(len(b))
		return nil
	}
	offset, n := int64(0), size
	if p := bs.Partial; p != nil {
		offset = min(p.Offset, size)
		n = min(p.Size, size-offset)
	}
	s.w.Raw(name)
	if err := s.w.LiteralFrom(nulFree{io.NewSectionReader(file, offset, n)}, n, false); err != nil {
		// The literal's length is already on the wire: the only way out is to drop the
		// connection.
		s.nc.Close()
		s.state = stateLogout
		return s.storageError("reading a message", fmt.Errorf("UID %d: %w", m.UID, err))
	}
	s.countSent(int(n))
	return nil
}

// nulFree passes a message through with each NUL as 0x80, as encodeBodyLiteral sends it:
// only a binary APPEND can store NUL, and no ordinary literal may carry one. The length stays,
// so the literal's announced size holds.
type nulFree struct{ r io.Reader }

func (n nulFree) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	for i, c := range p[:k] {
		if c == 0 {
			p[i] = 0x80
		}
	}
	return k, err
}

// brokenResponse ends a FETCH whose response could not be completed: the client cannot
// resynchronise inside a response, so the connection closes.
func (s *session) brokenResponse(m store.Message, err error) error {
	s.nc.Close()
	s.state = stateLogout
	return s.storageError("writing a FETCH response", fmt.Errorf("UID %d: %w", m.UID, err))
}

func (s *session) countSent(n int) {
	s.srv.cfg.Metrics.BytesSent.WithLabelValues(Protocol).Add(float64(n))
}

// writeEnvelope writes a message's ENVELOPE. From the header cache it is parsed and encoded
// once and kept with the header as text: a message list sends the same envelopes again and
// again, and text holds no pointers for the garbage collector to follow.
func (s *session) writeEnvelope(file content) error {
	ch, ok := file.(cachedHeader)
	if !ok {
		file.Seek(0, io.SeekStart)
		return s.w.Value(encodeEnvelope(readEnvelope(file)))
	}
	m := ch.h.Memo(func(raw []byte) (any, int) {
		m := newEnvelopeMemo(readEnvelope(bytes.NewReader(raw)))
		return m, len(m.plain) + len(m.utf8) + 32
	}).(*envelopeMemo)
	if m.err != nil {
		return m.err
	}
	if s.w.UTF8 {
		s.w.Raw(m.utf8)
	} else {
		s.w.Raw(m.plain)
	}
	return nil
}

// envelopeMemo is an ENVELOPE as written on the wire. 8-bit text goes quoted to a UTF8=ACCEPT
// session and as a literal to others, so the two forms differ for such an envelope; for a
// 7-bit one they are the same string.
type envelopeMemo struct {
	plain, utf8 string
	err         error // an envelope no IMAP syntax can carry
}

func newEnvelopeMemo(env *imap.Envelope) *envelopeMemo {
	v := encodeEnvelope(env)
	plain, err := encodeValue(v, false)
	if err != nil {
		return &envelopeMemo{err: err}
	}
	m := &envelopeMemo{plain: plain, utf8: plain}
	if !dirspec.IsASCII(plain) {
		m.utf8, _ = encodeValue(v, true)
	}
	return m
}

// encodeValue is v as a response writer with or without UTF8 writes it.
func encodeValue(v wire.Value, utf8 bool) (string, error) {
	var b strings.Builder
	w := wire.NewWriter(&b)
	w.UTF8 = utf8
	if err := w.Value(v); err != nil {
		return "", err
	}
	err := w.Flush()
	return b.String(), err
}

// readEnvelope parses the header block at the start of r for ENVELOPE.
func readEnvelope(file io.Reader) *imap.Envelope {
	r := headerReaders.Get().(*bufio.Reader)
	r.Reset(file)
	h, err := textproto.ReadHeader(r)
	r.Reset(nil)
	headerReaders.Put(r)
	if err != nil {
		return &imap.Envelope{} // written as an envelope of NILs
	}
	return extractEnvelope(h)
}

// sectionResponseName names a body section in the response: as the client asked for it when
// that was RFC822, RFC822.HEADER or RFC822.TEXT, else BODY[section] with the partial's origin.
func sectionResponseName(fa *fetchArgs, bs *imap.FetchItemBodySection) string {
	if name, ok := fa.Legacy[bs]; ok {
		return name
	}
	return encodeSectionName(bs)
}
