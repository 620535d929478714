package inflate

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// errWouldBlock is what chunkSource answers when the decoder asks for a byte the client has
// not sent yet: a server asking for it would wait for ever.
var errWouldBlock = errors.New("decoder asked for a byte the client has not sent")

// chunkSource is a client's side of the connection: the test adds the bytes of one flush at a
// time, and the decoder must do with those.
type chunkSource struct{ buf []byte }

func (s *chunkSource) ReadByte() (byte, error) {
	if len(s.buf) == 0 {
		return 0, errWouldBlock
	}
	b := s.buf[0]
	s.buf = s.buf[1:]
	return b, nil
}

// checkInteractive feeds compressed[k] (the bytes up to and including the k-th flush) and
// expects plain[k] out of the reader before compressed[k+1] is sent, then finish and io.EOF.
// readSize bounds each Read; 0 reads into a buffer a little larger than what is expected.
func checkInteractive(t *testing.T, plain, compressed [][]byte, finish []byte, readSize int) {
	t.Helper()
	src := &chunkSource{}
	r := NewReader(src)
	for k := range plain {
		src.buf = append(src.buf, compressed[k]...)
		if len(plain[k]) == 0 {
			continue // a Read would rightly ask for more
		}
		var got []byte
		for len(got) < len(plain[k]) {
			size := readSize
			if size == 0 {
				size = len(plain[k]) - len(got) + 16
			}
			buf := make([]byte, size)
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("chunk %d: after %d of its %d bytes: %v", k, len(got), len(plain[k]), err)
			}
		}
		if !bytes.Equal(got, plain[k]) {
			t.Fatalf("chunk %d: got %q, want %q", k, clip(got), clip(plain[k]))
		}
	}
	src.buf = append(src.buf, finish...)
	if n, err := r.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		t.Fatalf("after the final block: Read = %d, %v; want 0, EOF", n, err)
	}
	if len(src.buf) != 0 {
		t.Errorf("%d bytes after the final block were read", len(src.buf))
	}
}

func clip(b []byte) []byte {
	if len(b) > 60 {
		return append(b[:60:60], "..."...)
	}
	return b
}

type flushVectors struct {
	Plain   map[string][][]byte
	Streams []struct {
		Set, Mode       string
		Level, Strategy int
		Compressed      [][]byte
		Finish          []byte
	}
}

// Streams from Python's zlib (testdata/flushes.py), with sync, partial and full flushes: each
// chunk comes out once its flush has arrived. mbsync's partial flush ends a chunk with an
// empty fixed block that is not byte-aligned.
func TestZlibFlushesInteractive(t *testing.T) {
	data, err := os.ReadFile("testdata/flushes.json")
	if err != nil {
		t.Fatal(err)
	}
	var v flushVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Streams) != 30 {
		t.Fatalf("testdata/flushes.json has %d streams, want 30", len(v.Streams))
	}
	for _, s := range v.Streams {
		name := fmt.Sprintf("%s/%s/level%d/strategy%d", s.Set, s.Mode, s.Level, s.Strategy)
		t.Run(name, func(t *testing.T) {
			plain := v.Plain[s.Set]
			// The vectors are DEFLATE: the standard library reads the whole stream alike.
			whole := append(bytes.Join(s.Compressed, nil), s.Finish...)
			std, err := io.ReadAll(flate.NewReader(bytes.NewReader(whole)))
			if err != nil || !bytes.Equal(std, bytes.Join(plain, nil)) {
				t.Fatalf("compress/flate reads the vector as %d bytes, %v", len(std), err)
			}
			for _, size := range []int{0, 1, 7} {
				checkInteractive(t, plain, s.Compressed, s.Finish, size)
			}
		})
	}
}

// texts returns n bytes of words, which compress to matches of all lengths and distances.
func texts(rng *rand.Rand, n int) []byte {
	words := strings.Fields("IMAP FETCH UID flags Seen Answered INBOX message header body the a of mailbox")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(" \r\n"[rng.IntN(3)])
	}
	return b.Bytes()[:n]
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// goStream compresses chunks with compress/flate at level, with a sync flush after each: it
// returns the bytes of each flush and the final block.
func goStream(t testing.TB, chunks [][]byte, level int) (flushes [][]byte, finish []byte) {
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		flushes = append(flushes, bytes.Clone(out.Bytes()))
		out.Reset()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return flushes, out.Bytes()
}

// split cuts b into pieces of random sizes up to max.
func split(rng *rand.Rand, b []byte, max int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(1+rng.IntN(max), len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// Whatever compress/flate writes, at every level, the decoder reads back, whole or flush by
// flush: text (matches across the 32 KiB window), random bytes (stored blocks), long runs.
func TestGoWriterDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]byte{
		"empty":  nil,
		"byte":   {'x'},
		"text":   texts(rng, 200_000),
		"random": randomBytes(rng, 70_000),
		"run":    bytes.Repeat([]byte{'a'}, 100_000),
		"mixed":  append(append(texts(rng, 40_000), randomBytes(rng, 5_000)...), texts(rng, 40_000)...),
	}
	levels := []int{flate.NoCompression, flate.BestSpeed, 5, flate.BestCompression, flate.HuffmanOnly, flate.DefaultCompression}
	for name, in := range inputs {
		for _, level := range levels {
			t.Run(fmt.Sprintf("%s/level%d", name, level), func(t *testing.T) {
				chunks := split(rng, in, 20_000)
				flushes, finish := goStream(t, chunks, level)
				whole := append(bytes.Join(flushes, nil), finish...)
				for _, size := range []int{1, 100, 1 << 16} {
					got, err := readAll(NewReader(bytes.NewReader(whole)), size)
					if err != nil || !bytes.Equal(got, in) {
						t.Fatalf("reads of %d: %d bytes (want %d), first difference at %d, %v",
							size, len(got), len(in), firstDiff(got, in), err)
					}
				}
				checkInteractive(t, chunks, flushes, finish, 0)
			})
		}
	}
}

// readAll reads r to its end in reads of size bytes; a Read must not return nothing.
func readAll(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		if n < 0 || n > len(buf) {
			return out, fmt.Errorf("Read returned %d for a buffer of %d", n, len(buf))
		}
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, errors.New("Read returned 0 bytes and no error")
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A stream cut anywhere gives io.ErrUnexpectedEOF after what the bytes before the cut decode
// to: the server takes it for a client that hung up.
func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	in := texts(rng, 3000)
	for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression} {
		flushes, finish := goStream(t, [][]byte{in}, level)
		whole := append(flushes[0], finish...)
		for cut := range len(whole) {
			got, err := readAll(NewReader(bytes.NewReader(whole[:cut])), 512)
			if err != io.ErrUnexpectedEOF || !bytes.HasPrefix(in, got) {
				t.Fatalf("level %d, cut at %d of %d: %d bytes, %v; want a prefix and ErrUnexpectedEOF",
					level, cut, len(whole), len(got), err)
			}
		}
	}
}

// flakySource fails once with a timeout before its bytes.
type flakySource struct {
	failed bool
	r      *bytes.Reader
}

var errTimeout = errors.New("i/o timeout")

func (s *flakySource) ReadByte() (byte, error) {
	if !s.failed && int64(s.r.Len()) < s.r.Size()/2 {
		s.failed = true
		return 0, errTimeout
	}
	return s.r.ReadByte()
}

// An error of the connection, such as a read deadline, does not break the stream: the next
// Read goes on where the last stopped.
func TestSourceErrorIsNotSticky(t *testing.T) {
	in := texts(rand.New(rand.NewPCG(5, 6)), 5000)
	flushes, finish := goStream(t, [][]byte{in}, flate.BestSpeed)
	src := &flakySource{r: bytes.NewReader(append(flushes[0], finish...))}
	r := NewReader(src)
	var got []byte
	sawTimeout := false
	buf := make([]byte, 300)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == errTimeout {
			sawTimeout = true
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !sawTimeout || !bytes.Equal(got, in) {
		t.Fatalf("saw the timeout: %v; got %d bytes, want %d", sawTimeout, len(got), len(in))
	}
}

// The server keeps one Reader per compressed connection, idle most of the time: its window
// and tables, measured over many after each decoded a command.
func TestIdleReaderMemory(t *testing.T) {
	const n = 200
	flushes, _ := goStream(t, [][]byte{[]byte("a1 NOOP\r\n")}, flate.BestSpeed)
	readers := make([]*Reader, n)
	before := memInUse()
	for i := range readers {
		readers[i] = NewReader(bytes.NewReader(flushes[0]))
		if _, err := io.ReadFull(readers[i], make([]byte, 9)); err != nil {
			t.Fatal(err)
		}
	}
	perReader := (memInUse() - before) / n
	t.Logf("an idle Reader holds %d bytes", perReader)
	if perReader > 40<<10 {
		t.Errorf("an idle Reader holds %d bytes, want at most 40 KiB", perReader)
	}
	for _, r := range readers {
		if r.written != 9 {
			t.Fatal("the readers must stay alive until measured")
		}
	}
}

func memInUse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// BenchmarkText decompresses 1 MiB of text; compress/flate reads the same for comparison.
func BenchmarkText(b *testing.B) {
	in := texts(rand.New(rand.NewPCG(7, 8)), 1<<20)
	flushes, finish := goStream(b, [][]byte{in}, flate.DefaultCompression)
	whole := append(flushes[0], finish...)
	buf := make([]byte, 4096)
	b.Run("inflate", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if _, err := io.CopyBuffer(io.Discard, NewReader(bytes.NewReader(whole)), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compress-flate", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			if _, err := io.CopyBuffer(io.Discard, flate.NewReader(bytes.NewReader(whole)), buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}
