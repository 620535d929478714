package inflate

import (
	"fmt"
	"math/bits"
)

const (
	maxCodeLen = 15  // RFC 1951 3.2.7
	maxSymbols = 288 // the fixed literal/length code has the most symbols
	tableBits  = 9   // codes up to this long decode with one lookup
	tableMask  = 1<<tableBits - 1
)

// huffman is a canonical Huffman code (RFC 1951 3.2.2). Codes up to tableBits long decode
// through table; longer ones, and any code when fewer bits have arrived than the table needs,
// decode bit by bit from count and symbol, as zlib's puff does. The slow path is what lets
// the decoder finish a symbol with exactly the bits the client has sent.
type huffman struct {
	count  [maxCodeLen + 1]uint16 // number of codes of each length
	symbol [maxSymbols]uint16     // symbols ordered by code
	// table is indexed by the next tableBits input bits (first bit lowest) and holds
	// symbol<<4 | code length, or 0 when the code is longer than tableBits.
	table  [1 << tableBits]uint16
	maxLen uint8 // 0: the code is empty, and any use of it is an error
}

// build makes the canonical code for lengths (one per symbol, 0 for unused symbols). A code
// must be complete, with two exceptions RFC 1951 allows and zlib and Go accept: a single code
// of length 1 (an encoder with one distance to tell), and no code at all (a block of literals
// only, so no distance code is ever read).
func (h *huffman) build(lengths []uint8) error {
	*h = huffman{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1 // codes of the current length not yet used
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return fmt.Errorf("%w: code lengths are over-subscribed at length %d", ErrCorrupt, l)
		}
		if h.count[l] > 0 {
			h.maxLen = uint8(l)
		}
	}
	if left > 0 && h.maxLen != 0 && !(h.maxLen == 1 && h.count[1] == 1) {
		return fmt.Errorf("%w: code lengths leave the code incomplete", ErrCorrupt)
	}

	var offset, next [maxCodeLen + 2]uint16 // per length: first index in symbol, next code
	for l := 1; l <= maxCodeLen; l++ {
		offset[l+1] = offset[l] + h.count[l]
		next[l+1] = (next[l] + h.count[l]) << 1
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		h.symbol[offset[l]] = uint16(sym)
		offset[l]++
		code := next[l]
		next[l]++
		if l <= tableBits {
			// Input bits arrive first bit lowest; codes are defined first bit highest.
			rev := bits.Reverse16(code) >> (16 - l)
			for i := rev; i < 1<<tableBits; i += 1 << l {
				h.table[i] = uint16(sym)<<4 | uint16(l)
			}
		}
	}
	return nil
}

// decode returns the symbol whose code starts the n valid bits of in, and the code's length.
// A length of 0 with no error means the n bits are a prefix of a code: more input is needed.
func (h *huffman) decode(in uint64, n uint) (sym uint16, length uint, err error) {
	if e := h.table[in&tableMask]; e != 0 && uint(e&15) <= n {
		return e >> 4, uint(e & 15), nil
	}
	code, first, index := 0, 0, 0 // as in puff: code read so far, first code of its length
	for l := uint(1); l <= uint(h.maxLen); l++ {
		if l > n {
			return 0, 0, nil
		}
		code |= int(in>>(l-1)) & 1
		count := int(h.count[l])
		if code-first < count {
			return h.symbol[index+code-first], l, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, 0, fmt.Errorf("%w: the input bits match no Huffman code", ErrCorrupt)
}

// The fixed codes of RFC 1951 3.2.6. The distance code has 32 symbols so that it is complete;
// symbols 30 and 31 are rejected when they occur.
var fixedLit, fixedDist huffman

func init() {
	var lengths [maxSymbols]uint8
	for i := range lengths {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		default:
			lengths[i] = 8
		}
	}
	if err := fixedLit.build(lengths[:]); err != nil {
		panic(err) // the fixed code is complete
	}
	for i := range 32 {
		lengths[i] = 5
	}
	if err := fixedDist.build(lengths[:32]); err != nil {
		panic(err)
	}
}
