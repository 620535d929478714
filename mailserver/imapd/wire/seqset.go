package wire

import (
	"errors"
	"strconv"
	"strings"
)

// ErrBadSet reports a malformed sequence set or UID set.
var ErrBadSet = errors.New("invalid sequence set")

// Range is a range of message numbers or UIDs; 0 stands for "*", the largest in use.
type Range struct{ Start, Stop uint32 }

// SeqSet is a sequence set such as 1:*,3,5:7, in the client's order.
type SeqSet []Range

// ParseSeqSet parses a sequence set (RFC 9051 sequence-set), where "*" may appear. The
// SEARCHRES marker "$" is the caller's to recognise before calling.
func ParseSeqSet(s string) (SeqSet, error) { return parseSet(s, true) }

// ParseUIDSet parses a uid-set (RFC 4315, RFC 7162 known-uids), where "*" may not appear.
func ParseUIDSet(s string) (SeqSet, error) { return parseSet(s, false) }

func parseSet(s string, star bool) (SeqSet, error) {
	if s == "" {
		return nil, ErrBadSet
	}
	set := make(SeqSet, 0, strings.Count(s, ",")+1)
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := parseSeqNumber(lo, star)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseSeqNumber(hi, star); err != nil {
				return nil, err
			}
		}
		set = append(set, Range{a, b})
	}
	return set, nil
}

func parseSeqNumber(s string, star bool) (uint32, error) {
	if s == "*" && star {
		return 0, nil
	}
	if s == "" || s[0] == '0' || !isDigits(s) {
		return 0, errors.Join(ErrBadSet, errors.New(strconv.Quote(s)+" is not a number from 1 to 4294967295"))
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.Join(ErrBadSet, errors.New(strconv.Quote(s)+" is not a number from 1 to 4294967295"))
	}
	return uint32(n), nil
}

// Resolve replaces "*" by max, the largest number or UID in use, and orders each range, as
// RFC 9051 says 4:2 means 2:4.
func (s SeqSet) Resolve(max uint32) SeqSet {
	out := make(SeqSet, len(s))
	for i, r := range s {
		r.Start, r.Stop = orStar(r.Start, max), orStar(r.Stop, max)
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out[i] = r
	}
	return out
}

// Contains reports whether n is in the set, with "*" standing for max.
func (s SeqSet) Contains(n, max uint32) bool {
	for _, r := range s {
		lo, hi := orStar(r.Start, max), orStar(r.Stop, max)
		if lo > hi {
			lo, hi = hi, lo
		}
		if n >= lo && n <= hi {
			return true
		}
	}
	return false
}

// String writes the set back in IMAP syntax.
func (s SeqSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(seqNumber(r.Start))
		if r.Stop != r.Start {
			b.WriteByte(':')
			b.WriteString(seqNumber(r.Stop))
		}
	}
	return b.String()
}

func seqNumber(n uint32) string {
	if n == 0 {
		return "*"
	}
	return strconv.FormatUint(uint64(n), 10)
}

func orStar(n, max uint32) uint32 {
	if n == 0 {
		return max
	}
	return n
}
