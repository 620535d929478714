package store

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
)

// randomToken returns n random bytes in hex, for unique file names.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return hex.EncodeToString(b)
}

// copyCRLF copies r to w, turning bare LF line endings into CRLF so that stored messages are
// in wire format and their sizes are the exact octet counts IMAP and POP3 report.
func copyCRLF(w *bufio.Writer, r io.Reader) (int64, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	var n int64
	var prev byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				body := chunk[:len(chunk)-1]
				crBefore := len(body) > 0 && body[len(body)-1] == '\r' || len(body) == 0 && prev == '\r'
				if _, werr := w.Write(body); werr != nil {
					return n, werr
				}
				n += int64(len(body))
				if !crBefore {
					if werr := w.WriteByte('\r'); werr != nil {
						return n, werr
					}
					n++
				}
				if werr := w.WriteByte('\n'); werr != nil {
					return n, werr
				}
				n++
				prev = '\n'
			} else {
				if _, werr := w.Write(chunk); werr != nil {
					return n, werr
				}
				n += int64(len(chunk))
				prev = chunk[len(chunk)-1]
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
