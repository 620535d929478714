// Package inflate decodes raw DEFLATE (RFC 1951) as an interactive stream, as IMAP COMPRESS
// (RFC 4978) needs: whatever flush the client ended its command with, the command comes out
// as soon as its last byte has arrived.
package inflate

import (
	"errors"
	"fmt"
	"io"
)

// ErrCorrupt is wrapped by every error about the stream itself: it is not DEFLATE.
var ErrCorrupt = errors.New("inflate: corrupt DEFLATE stream")

const (
	windowSize = 1 << 15 // the farthest a match may refer back
	windowMask = windowSize - 1
	maxMatch   = 258
	maxLit     = 286 // literal/length codes a dynamic block may define
	maxDist    = 30  // distance codes a dynamic block may define
)

// state is where the decoder is in the stream: each state's step consumes input only when
// it has all the bits for what it decodes, so it can stop between any two bytes and resume.
type state uint8

const (
	stateHeader          state = iota // a block's 3-bit header
	stateStoredHeader                 // alignment, then LEN and NLEN of a stored block
	stateStored                       // r.remain bytes of a stored block
	stateDynamicHeader                // HLIT, HDIST, HCLEN
	stateCodeLengthCodes              // the lengths of the code-length code
	stateCodeLengths                  // the literal/length and distance code lengths
	stateData                         // Huffman-coded literals, matches, end of block
	stateDone                         // the final block has ended
)

// Reader inflates a raw DEFLATE stream. It reads from its source only when the bits it holds
// cannot finish the next symbol, and before it does it returns the output it holds: so a Read
// blocks on the source only with nothing to give, and a client's flush, of any kind, makes
// everything before it readable.
type Reader struct {
	src io.ByteReader
	err error // the stream's end or corruption, returned once the output before it is

	in  uint64 // input bits not yet used, first bit lowest
	nin uint   // number of them

	// window holds the last 32 KiB of output, which matches refer to; output not yet
	// returned is its newest part. It is a separate allocation: inline it would make the
	// Reader a large object, which Go rounds up to whole 8 KiB pages.
	window   *[windowSize]byte
	written  uint64 // bytes decoded
	returned uint64 // bytes returned by Read

	state  state
	final  bool // the current block is the last
	remain uint // bytes left in a stored block
	nlen   int  // literal/length code lengths in a dynamic block header
	ndist  int  // distance code lengths
	ncl    int  // code-length code lengths
	done   int  // lengths read so far in stateCodeLengthCodes and stateCodeLengths
	lens   [maxLit + maxDist]uint8
	lit    *huffman // the current block's codes
	dist   *huffman
	dynLit huffman
	// dynDist holds the code-length code while a dynamic header is read, then the
	// distance code: one table less to keep per connection.
	dynDist huffman
}

// NewReader returns a Reader inflating the raw DEFLATE stream r.
func NewReader(r io.ByteReader) *Reader {
	return &Reader{src: r, window: new([windowSize]byte)}
}

// Read returns decoded bytes. It returns io.EOF after the final block, io.ErrUnexpectedEOF if
// the source ends before it, and an error wrapping ErrCorrupt for input that is not DEFLATE;
// these errors stay. An error of the source itself is returned as it is and the next Read
// tries again, so a read deadline does not break the stream.
func (r *Reader) Read(p []byte) (int, error) {
	n := r.copyOut(p)
	for n < len(p) && r.err == nil {
		more, err := r.step(min(uint64(len(p)-n), windowSize-maxMatch))
		n += r.copyOut(p[n:])
		switch {
		case err != nil:
			r.err = err
		case !more:
		case n > 0:
			// What the client sent so far may be all it sends until it has an answer.
			return n, nil
		default:
			if err := r.fill(); err != nil {
				return 0, err
			}
		}
	}
	if n < len(p) { // the loop ended on an error, with all output returned
		return n, r.err
	}
	return n, nil
}

// fill reads one byte from the source into the input bits.
func (r *Reader) fill() error {
	b, err := r.src.ReadByte()
	if err == io.EOF {
		r.err = io.ErrUnexpectedEOF
		return r.err
	}
	if err != nil {
		return err
	}
	// No step needs more than 48 bits, so the 64 are never full here.
	r.in |= uint64(b) << r.nin
	r.nin += 8
	return nil
}

// copyOut copies decoded bytes not yet returned into p.
func (r *Reader) copyOut(p []byte) int {
	n := 0
	for n < len(p) && r.returned < r.written {
		start := r.returned & windowMask
		end := min(start+(r.written-r.returned), windowSize)
		c := copy(p[n:], r.window[start:end])
		n += c
		r.returned += uint64(c)
	}
	return n
}

// take consumes n bits, which the caller has checked are there.
func (r *Reader) take(n uint) uint {
	v := uint(r.in & (1<<n - 1))
	r.in >>= n
	r.nin -= n
	return v
}

// step decodes what the current state reads, stopping early once want bytes of output are
// waiting. It reports more when it needs another input byte to go on.
func (r *Reader) step(want uint64) (more bool, err error) {
	switch r.state {
	case stateHeader:
		return r.blockHeader()
	case stateStoredHeader:
		return r.storedHeader()
	case stateStored:
		return r.stored(want)
	case stateDynamicHeader:
		return r.dynamicHeader()
	case stateCodeLengthCodes:
		return r.codeLengthCodes()
	case stateCodeLengths:
		return r.codeLengths()
	case stateData:
		return r.data(want)
	default:
		return false, io.EOF
	}
}

func (r *Reader) blockHeader() (bool, error) {
	if r.nin < 3 {
		return true, nil
	}
	h := r.take(3)
	r.final = h&1 == 1
	switch h >> 1 {
	case 0:
		r.state = stateStoredHeader
	case 1:
		r.lit, r.dist = &fixedLit, &fixedDist
		r.state = stateData
	case 2:
		r.state = stateDynamicHeader
	default:
		return false, fmt.Errorf("%w: block type 3 is reserved", ErrCorrupt)
	}
	return false, nil
}

func (r *Reader) endBlock() {
	r.state = stateHeader
	if r.final {
		r.state = stateDone
	}
}

// storedHeader skips to the byte boundary (the input bits always hold whole bytes but for
// the current one) and reads LEN and its complement NLEN.
func (r *Reader) storedHeader() (bool, error) {
	skip := r.nin % 8
	if r.nin < skip+32 {
		return true, nil
	}
	r.take(skip)
	length, nlength := r.take(16), r.take(16)
	if length != ^nlength&0xffff {
		return false, fmt.Errorf("%w: stored block length %d does not match its complement %d",
			ErrCorrupt, length, nlength)
	}
	r.remain = length
	r.state = stateStored
	if length == 0 {
		r.endBlock()
	}
	return false, nil
}

// stored copies a stored block's bytes through the input bits, one at a time: slower than a
// bulk copy, but commands are short and it keeps one path to the source.
func (r *Reader) stored(want uint64) (bool, error) {
	for r.written-r.returned < want {
		if r.nin < 8 {
			return true, nil
		}
		r.window[r.written&windowMask] = byte(r.take(8))
		r.written++
		r.remain--
		if r.remain == 0 {
			r.endBlock()
			break
		}
	}
	return false, nil
}
