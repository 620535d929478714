package inflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// bitWriter writes a DEFLATE stream by hand, for streams no compressor writes.
type bitWriter struct {
	out []byte
	n   uint // bits used in the last byte
}

// bits writes the n low bits of v, lowest first, as DEFLATE writes numbers.
func (w *bitWriter) bits(v uint, n uint) *bitWriter {
	for i := range n {
		if w.n%8 == 0 {
			w.out = append(w.out, 0)
		}
		w.out[len(w.out)-1] |= byte(v>>i&1) << (w.n % 8)
		w.n++
	}
	return w
}

// code writes an n-bit Huffman code, highest bit first, as DEFLATE writes codes.
func (w *bitWriter) code(c uint, n uint) *bitWriter {
	return w.bits(uint(bits.Reverse16(uint16(c))>>(16-n)), n)
}

// align pads to a byte boundary, as before a stored block's LEN.
func (w *bitWriter) align() *bitWriter {
	w.n = uint(len(w.out)) * 8
	return w
}

func fixedBlock() *bitWriter { return new(bitWriter).bits(1, 1).bits(1, 2) }

// dynamicHeader starts a final dynamic block with 257 literal/length and 1 distance codes
// and a code-length code of lengths 1, 2, 2 for symbols 16, 17, 18: 16 is code 0, 17 is 10,
// 18 is 11.
func dynamicHeader() *bitWriter {
	return new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4).
		bits(1, 3).bits(2, 3).bits(2, 3).bits(0, 3)
}

// Streams that are not DEFLATE fail with ErrCorrupt and say what is wrong.
func TestCorrupt(t *testing.T) {
	literalA := uint(0x30 + 'a') // fixed code of literals 0-143: 8 bits from 00110000
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"reserved block type", "block type 3", new(bitWriter).bits(1, 1).bits(3, 2).out},
		{"stored length", "does not match its complement",
			new(bitWriter).bits(1, 1).bits(0, 2).align().bits(5, 16).bits(0, 16).out},
		{"match before the start", "refers 1 bytes back, 0 have been decoded",
			fixedBlock().code(1, 7).code(0, 5).out}, // length 3, distance 1
		{"match beyond the output", "refers 2 bytes back, 1 have been decoded",
			fixedBlock().code(literalA, 8).code(1, 7).code(1, 5).out},
		{"reserved length symbol", "length symbol 286",
			fixedBlock().code(0xc0+6, 8).out}, // fixed codes 280-287: 8 bits from 11000000
		{"reserved distance symbol", "distance symbol 30",
			fixedBlock().code(literalA, 8).code(1, 7).code(30, 5).out},
		{"too many literal/length codes", "288 literal/length",
			new(bitWriter).bits(1, 1).bits(2, 2).bits(31, 5).bits(0, 5).bits(0, 4).out},
		{"over-subscribed code-length code", "over-subscribed",
			new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(15, 4).
				bits(0b_001_001_001_001_001_001_001_001_001_001, 30).bits(0b_001_001_001_001_001_001_001_001_001, 27).out},
		{"incomplete code-length code", "incomplete",
			new(bitWriter).bits(1, 1).bits(2, 2).bits(0, 5).bits(0, 5).bits(0, 4).
				bits(1, 3).bits(2, 3).bits(0, 3).bits(0, 3).out},
		{"repeat with nothing before", "start with a repeat", dynamicHeader().code(0, 1).bits(0, 2).out},
		{"repeat past the end", "repeat past the 258",
			dynamicHeader().code(3, 2).bits(127, 7).code(3, 2).bits(127, 7).out},
		{"no end-of-block code", "no end-of-block code",
			dynamicHeader().code(3, 2).bits(127, 7).code(3, 2).bits(109, 7).out},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(NewReader(bytes.NewReader(c.in)), 64)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrCorrupt saying %q", err, c.want)
			}
			// The standard library agrees that these are not DEFLATE.
			if _, err := io.ReadAll(flate.NewReader(bytes.NewReader(c.in))); err == nil || err == io.ErrUnexpectedEOF {
				t.Errorf("compress/flate reads the stream: %v", err)
			}
		})
	}
}

// The output before the corruption comes out first; the error stays.
func TestCorruptAfterOutput(t *testing.T) {
	in := fixedBlock().code(0x30+'h', 8).code(0x30+'i', 8).code(1, 7).code(30, 5).out
	r := NewReader(bytes.NewReader(in))
	got, err := readAll(r, 10)
	if string(got) != "hi" || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %q, %v; want \"hi\" and ErrCorrupt", got, err)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read after the error: %d, %v; want ErrCorrupt again", n, err)
	}
}

// FuzzInflate reads arbitrary input: no panic, no Read beyond its buffer, only the errors
// Read documents, and where compress/flate reads a whole stream the decoder reads the same.
func FuzzInflate(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
		flushes, finish := goStream(f, split(rng, texts(rng, 2000), 500), level)
		f.Add(append(bytes.Join(flushes, nil), finish...), uint16(100))
	}
	f.Add(fixedBlock().code(0x30+'h', 8).code(1, 7).code(0, 5).code(0, 7).out, uint16(1))
	f.Add(dynamicHeader().code(3, 2).bits(127, 7).out, uint16(7))
	f.Fuzz(func(t *testing.T, in []byte, readSize uint16) {
		size := int(readSize%4096) + 1
		got, err := readAll(NewReader(bytes.NewReader(in)), size)
		if err != nil && !errors.Is(err, ErrCorrupt) && err != io.ErrUnexpectedEOF {
			t.Fatalf("error %v is none of ErrCorrupt, io.ErrUnexpectedEOF, io.EOF", err)
		}
		// Each input bit yields at most one match of 258 bytes.
		if len(got) > 258*8*len(in) {
			t.Fatalf("%d bytes out of %d in", len(got), len(in))
		}
		want, stdErr := io.ReadAll(flate.NewReader(bytes.NewReader(in)))
		if stdErr == nil && (err != nil || !bytes.Equal(got, want)) {
			t.Fatalf("compress/flate reads %d bytes, the decoder %d (differing at %d), %v",
				len(want), len(got), firstDiff(got, want), err)
		}
		if err == nil && (stdErr != nil || !bytes.Equal(got, want)) {
			t.Fatalf("the decoder reads %d bytes, compress/flate %d (differing at %d), %v",
				len(got), len(want), firstDiff(got, want), stdErr)
		}
		if n := min(len(got), len(want)); !bytes.Equal(got[:n], want[:n]) {
			t.Fatalf("the decoder and compress/flate differ at byte %d", firstDiff(got, want))
		}
	})
}
