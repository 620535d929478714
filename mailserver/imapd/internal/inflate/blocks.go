package inflate

import "fmt"

// Base values and extra bits of length symbols 257..285 and distance symbols 0..29
// (RFC 1951 3.2.5).
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codeLengthOrder is the order in which a dynamic header lists the code-length code's lengths.
var codeLengthOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (r *Reader) dynamicHeader() (bool, error) {
	if r.nin < 14 {
		return true, nil
	}
	r.nlen = int(r.take(5)) + 257
	r.ndist = int(r.take(5)) + 1
	r.ncl = int(r.take(4)) + 4
	if r.nlen > maxLit || r.ndist > maxDist {
		return false, fmt.Errorf("%w: dynamic block defines %d literal/length and %d distance codes, at most %d and %d",
			ErrCorrupt, r.nlen, r.ndist, maxLit, maxDist)
	}
	clear(r.lens[:len(codeLengthOrder)])
	r.done = 0
	r.state = stateCodeLengthCodes
	return false, nil
}

func (r *Reader) codeLengthCodes() (bool, error) {
	for ; r.done < r.ncl; r.done++ {
		if r.nin < 3 {
			return true, nil
		}
		r.lens[codeLengthOrder[r.done]] = uint8(r.take(3))
	}
	if err := r.dynDist.build(r.lens[:len(codeLengthOrder)]); err != nil {
		return false, fmt.Errorf("code-length code: %w", err)
	}
	r.done = 0
	r.state = stateCodeLengths
	return false, nil
}

// codeLengths reads the literal/length and distance code lengths, coded with the code-length
// code (RFC 1951 3.2.7), and builds the block's codes.
func (r *Reader) codeLengths() (bool, error) {
	total := r.nlen + r.ndist
	for r.done < total {
		sym, n, err := r.dynDist.decode(r.in, r.nin)
		if err != nil {
			return false, fmt.Errorf("code lengths: %w", err)
		}
		if n == 0 {
			return true, nil
		}
		if sym < 16 {
			r.take(n)
			r.lens[r.done] = uint8(sym)
			r.done++
			continue
		}
		var extra, base uint = 3, 3 // symbol 17: 3-10 zeros
		var length uint8
		switch sym {
		case 16: // 3-6 copies of the previous length
			if r.done == 0 {
				return false, fmt.Errorf("%w: code lengths start with a repeat of the previous one", ErrCorrupt)
			}
			extra, length = 2, r.lens[r.done-1]
		case 18: // 11-138 zeros
			extra, base = 7, 11
		}
		if r.nin < n+extra {
			return true, nil
		}
		r.take(n)
		repeat := int(base + r.take(extra))
		if r.done+repeat > total {
			return false, fmt.Errorf("%w: code lengths repeat past the %d the header announced", ErrCorrupt, total)
		}
		for range repeat {
			r.lens[r.done] = length
			r.done++
		}
	}
	return false, r.buildCodes()
}

func (r *Reader) buildCodes() error {
	if r.lens[256] == 0 {
		return fmt.Errorf("%w: dynamic block has no end-of-block code", ErrCorrupt)
	}
	if err := r.dynLit.build(r.lens[:r.nlen]); err != nil {
		return fmt.Errorf("literal/length code: %w", err)
	}
	if err := r.dynDist.build(r.lens[r.nlen : r.nlen+r.ndist]); err != nil {
		return fmt.Errorf("distance code: %w", err)
	}
	r.lit, r.dist = &r.dynLit, &r.dynDist
	r.state = stateData
	return nil
}

// data decodes literals and matches until want bytes of output wait, the block ends, or the
// input bits run out.
func (r *Reader) data(want uint64) (bool, error) {
	for r.written-r.returned < want {
		sym, n, err := r.lit.decode(r.in, r.nin)
		switch {
		case err != nil:
			return false, err
		case n == 0:
			return true, nil
		case sym < 256:
			r.take(n)
			r.window[r.written&windowMask] = byte(sym)
			r.written++
		case sym == 256:
			r.take(n)
			r.endBlock()
			return false, nil
		default:
			more, err := r.match(sym, n)
			if more || err != nil {
				return more, err
			}
		}
	}
	return false, nil
}

// match decodes a length symbol's extra bits, the distance after it, and copies. It consumes
// nothing unless it has the bits for all of it: at most 15+5+15+13 = 48.
func (r *Reader) match(sym uint16, n uint) (bool, error) {
	if sym-257 >= uint16(len(lengthBase)) {
		return false, fmt.Errorf("%w: length symbol %d is reserved", ErrCorrupt, sym)
	}
	extra := uint(lengthExtra[sym-257])
	if r.nin < n+extra {
		return true, nil
	}
	length := uint(lengthBase[sym-257]) + uint(r.in>>n)&(1<<extra-1)
	used := n + extra
	dsym, dn, err := r.dist.decode(r.in>>used, r.nin-used)
	if err != nil {
		return false, fmt.Errorf("distance: %w", err)
	}
	if dn == 0 {
		return true, nil
	}
	if int(dsym) >= len(distBase) {
		return false, fmt.Errorf("%w: distance symbol %d is reserved", ErrCorrupt, dsym)
	}
	used += dn
	extra = uint(distExtra[dsym])
	if r.nin < used+extra {
		return true, nil
	}
	dist := uint64(distBase[dsym]) + (r.in>>used)&(1<<extra-1)
	if dist > r.written {
		return false, fmt.Errorf("%w: a match refers %d bytes back, %d have been decoded",
			ErrCorrupt, dist, r.written)
	}
	r.take(used + extra)
	w := r.window
	for range length {
		w[r.written&windowMask] = w[(r.written-dist)&windowMask]
		r.written++
	}
	return false, nil
}
