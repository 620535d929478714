package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/mailserver/store"
)

func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	defer s.track("FETCH", &err)
	sel := s.sel
	targets := sel.resolve(numSet)

	// A body fetch without PEEK marks the message \Seen, and the response then carries the new
	// flags (RFC 3501 6.4.5). EXAMINE never changes anything.
	newFlags := map[uint32][]string{}
	if !sel.readOnly && marksSeen(options) {
		var unseen []uint32
		for _, t := range targets {
			if !hasFlag(t.msg.Flags, imap.FlagSeen) {
				unseen = append(unseen, t.msg.UID)
			}
		}
		if len(unseen) > 0 {
			changed, err := sel.setFlags(unseen, store.FlagsAdd, []string{string(imap.FlagSeen)})
			if err != nil {
				s.log.Error("setting \\Seen", "folder", sel.folder.Name(), "err", err)
			}
			for _, m := range changed {
				newFlags[m.UID] = m.Flags
			}
		}
	}
	for _, t := range targets {
		if flags, ok := newFlags[t.msg.UID]; ok {
			t.msg.Flags = flags
		}
		if err := s.fetchOne(w, t, options, newFlags[t.msg.UID] != nil); err != nil {
			return err
		}
	}
	return nil
}

func marksSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// needsContent reports whether options need the message file, not just the index.
func needsContent(options *imap.FetchOptions) bool {
	return options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
}

// headerOnly reports whether every part of the message that options ask for lies in its
// header: ENVELOPE and BODY[HEADER], BODY[HEADER.FIELDS (...)], the message list's usual
// request.
func headerOnly(options *imap.FetchOptions) bool {
	if options.BodyStructure != nil || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 {
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

// fetchOne writes one FETCH response. The file is opened before the response starts, so a
// message expunged meanwhile is skipped (its EXPUNGE follows) rather than half-written.
func (s *session) fetchOne(w *imapserver.FetchWriter, t target, options *imap.FetchOptions, flagsChanged bool) error {
	var file content
	switch {
	case needsContent(options) && headerOnly(options):
		// The envelope and the header sections come from the store's header cache: the
		// message list, fetched again and again, opens no file once its headers were read.
		h, err := s.sel.folder.Header(t.msg.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			return nil
		}
		if err != nil {
			return s.storageError("reading a message's header", err)
		}
		file = bytes.NewReader(h.Raw)
	case needsContent(options):
		f, err := s.sel.folder.Open(t.msg.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			return nil
		}
		if err != nil {
			return s.storageError("opening a message", err)
		}
		defer f.Close()
		file = f
	}

	rw := w.CreateMessage(t.seq)
	rw.WriteUID(imap.UID(t.msg.UID))
	if options.Flags || flagsChanged {
		rw.WriteFlags(imapFlags(t.msg.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(t.msg.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(t.msg.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(envelope(file))
	}
	if options.BodyStructure != nil {
		file.Seek(0, io.SeekStart)
		rw.WriteBodyStructure(bodyStructure(file))
	}
	for _, bs := range options.BodySection {
		if err := s.writeBodySection(rw, file, t.msg, bs); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		file.Seek(0, io.SeekStart)
		b := imapserver.ExtractBinarySection(file, bs)
		if err := s.writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		file.Seek(0, io.SeekStart)
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(file, bss))
	}
	return rw.Close()
}

func envelope(file content) *imap.Envelope {
	file.Seek(0, io.SeekStart)
	r := headerReaders.Get().(*bufio.Reader)
	r.Reset(file)
	h, err := textproto.ReadHeader(r)
	r.Reset(nil)
	headerReaders.Put(r)
	if err != nil {
		return nil // written as an envelope of NILs
	}
	return imapserver.ExtractEnvelope(h)
}

// writeBodySection sends one BODY[...] item. The whole message, the commonest request, is
// streamed from the file; other sections are cut out by the library.
func (s *session) writeBodySection(rw *imapserver.FetchResponseWriter, file content, m store.Message, bs *imap.FetchItemBodySection) error {
	whole := len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone &&
		len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0
	if !whole {
		file.Seek(0, io.SeekStart)
		b := imapserver.ExtractBodySection(file, bs)
		return s.writeLiteral(rw.WriteBodySection(bs, int64(len(b))), b)
	}
	offset, size := int64(0), m.Size
	if p := bs.Partial; p != nil {
		offset = min(p.Offset, m.Size)
		size = min(p.Size, m.Size-offset)
	}
	wc := rw.WriteBodySection(bs, size)
	n, err := io.Copy(wc, io.NewSectionReader(file, offset, size))
	if err == nil && n != size {
		err = fmt.Errorf("message file of UID %d is %d bytes short", m.UID, size-n)
	}
	if err != nil {
		// The literal's length is already on the wire: the only way out is to drop the
		// connection.
		s.conn.NetConn().Close()
		wc.Close()
		return s.storageError("reading a message", err)
	}
	s.srv.cfg.Metrics.BytesSent.WithLabelValues(Protocol).Add(float64(size))
	return wc.Close()
}

func (s *session) writeLiteral(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		s.srv.cfg.Metrics.BytesSent.WithLabelValues(Protocol).Add(float64(len(b)))
	}
	return err
}

// bodyStructure is the library's BODYSTRUCTURE with the holes of malformed mail filled: the
// library's writer panics on a multipart without parts (wrong boundary, truncated message).
func bodyStructure(r io.Reader) imap.BodyStructure {
	return repairBodyStructure(imapserver.ExtractBodyStructure(r))
}

func repairBodyStructure(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) == 0 {
			return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
				Params: map[string]string{"charset": "us-ascii"}, Text: &imap.BodyStructureText{},
				Extended: &imap.BodyStructureSinglePartExt{}}
		}
		for i, c := range bs.Children {
			bs.Children[i] = repairBodyStructure(c)
		}
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureMultiPartExt{}
		}
	case *imap.BodyStructureSinglePart:
		if bs.Type == "" || bs.Subtype == "" {
			bs.Type, bs.Subtype = "text", "plain"
		}
		if bs.MessageRFC822 != nil {
			bs.MessageRFC822.BodyStructure = repairBodyStructure(bs.MessageRFC822.BodyStructure)
		}
		if bs.Extended == nil {
			bs.Extended = &imap.BodyStructureSinglePartExt{}
		}
	}
	return bs
}
