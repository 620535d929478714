package imapd

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/internal/inflate"
	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978): both directions of a logged-in session switch to raw DEFLATE
// (RFC 1951), under TLS. Mobile clients on slow links use it for FETCH of many headers.

func init() {
	// Logged in only, as RFC 4978's grammar (command-auth) and Dovecot have it.
	commands["COMPRESS"] = handler{states: loggedIn, run: (*session).cmdCompress}
	extensionCaps = append(extensionCaps, "COMPRESS=DEFLATE")
}

// responseCodeCompressionActive is RFC 4978's answer to a second COMPRESS.
const responseCodeCompressionActive imap.ResponseCode = "COMPRESSIONACTIVE"

// cmdCompress answers OK uncompressed, then reads and writes through DEFLATE. Like STARTTLS,
// it refuses a client that sent more after the command: those bytes would be read as
// uncompressed commands although the client compressed them (RFC 4978 3: the client waits).
func (s *session) cmdCompress(tag string, args []wire.Value, _ bool) (reply, error) {
	if len(args) != 1 || args[0].Kind != wire.KindAtom {
		return reply{}, badArg("COMPRESS takes a mechanism: COMPRESS DEFLATE")
	}
	if !strings.EqualFold(args[0].Str, "DEFLATE") {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo,
			Text: fmt.Sprintf("Unknown compression mechanism %q; DEFLATE is offered", clip(args[0].Str, 20))}
	}
	if _, ok := s.nc.(*deflateConn); ok {
		return reply{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: responseCodeCompressionActive,
			Text: "DEFLATE is already active"}
	}
	if s.r.Buffered() > 0 {
		s.w.Tagged(tag, wire.BAD, "", nil, "Commands sent after COMPRESS before its answer are refused")
		s.bye("Protocol violation")
		return reply{answered: true}, nil
	}
	s.w.Tagged(tag, wire.OK, "", nil, "DEFLATE active")
	if err := s.w.Flush(); err != nil {
		s.state = stateLogout
		return reply{answered: true}, nil
	}
	s.setConn(newDeflateConn(s.nc))
	return reply{answered: true}, nil
}

// deflaters are compressors between two flushes of some session. A compressor at BestSpeed
// holds about 1.2 MB, an idle session should hold none: each burst of responses borrows one
// and gives it back at the flush, which ends the burst at a byte boundary (a sync flush).
// The next burst's compressor refers to nothing before it, which DEFLATE allows; the cost is
// the dictionary of earlier bursts, a few percent on a burst of FETCH responses.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // the level is valid: no error
	return w
}}

// deflateConn is a connection whose reads inflate and whose writes deflate. Deadlines and
// Close reach the connection below.
type deflateConn struct {
	net.Conn
	in  *inflate.Reader
	out *flate.Writer // nil between bursts
}

func newDeflateConn(nc net.Conn) *deflateConn {
	// The inflater keeps the client's 32 KiB window for as long as the session lasts: the
	// client's compressor may refer back to any command it sent.
	// Clients flush differently: Thunderbird with a sync flush, mbsync with a partial one
	// (an empty fixed-code block, not byte-aligned). The standard library's inflater holds a
	// command back until more input comes, klauspost/compress's waits for bits beyond the
	// partial flush; ours reads no bit it does not need and returns each command at once.
	return &deflateConn{Conn: nc, in: inflate.NewReader(bufio.NewReaderSize(nc, 1024))}
}

// Read inflates. A client that hangs up ends the stream between two of its flushes, not with
// a final block: that is the end of the session, not a broken stream.
func (c *deflateConn) Read(p []byte) (int, error) {
	n, err := c.in.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (c *deflateConn) Write(p []byte) (int, error) {
	if c.out == nil {
		c.out = deflaters.Get().(*flate.Writer)
		c.out.Reset(c.Conn)
	}
	return c.out.Write(p)
}

// Flush sends everything written so far; wire.Writer.Flush calls it after each burst of
// responses, so the client sees them at once.
func (c *deflateConn) Flush() error {
	if c.out == nil {
		return nil
	}
	err := c.out.Flush()
	if err == nil {
		// A compressor that failed is dropped: its connection is gone, and it is not worth
		// trusting its state to Reset.
		deflaters.Put(c.out)
	}
	c.out = nil
	return err
}
