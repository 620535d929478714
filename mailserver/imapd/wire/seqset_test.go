package wire

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseSeqSet(t *testing.T) {
	for in, want := range map[string]SeqSet{
		"1":               {{1, 1}},
		"1:*,3,5:7":       {{1, 0}, {3, 3}, {5, 7}},
		"*":               {{0, 0}},
		"*:4":             {{0, 4}},
		"9:2":             {{9, 2}},
		"4294967295":      {{4294967295, 4294967295}},
		"1,1,1":           {{1, 1}, {1, 1}, {1, 1}},
		"2:4,10:*,100:50": {{2, 4}, {10, 0}, {100, 50}},
	} {
		got, err := ParseSeqSet(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSeqSet(%q) = %v, %v; want %v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("ParseSeqSet(%q).String() = %q", in, got.String())
		}
	}
}

func TestParseSeqSetErrors(t *testing.T) {
	for _, in := range []string{"", "0", "1:0", "01", "4294967296", "1,", ",1", "1::2", "1:2:3",
		"a", "-1", "1 2", "$", "1:**", " 1"} {
		if got, err := ParseSeqSet(in); !errors.Is(err, ErrBadSet) {
			t.Errorf("ParseSeqSet(%q) = %v, %v; want ErrBadSet", in, got, err)
		}
	}
}

func TestParseUIDSet(t *testing.T) {
	got, err := ParseUIDSet("3:5,9")
	if err != nil || !reflect.DeepEqual(got, SeqSet{{3, 5}, {9, 9}}) {
		t.Errorf("ParseUIDSet(3:5,9) = %v, %v", got, err)
	}
	for _, in := range []string{"*", "1:*", "0"} {
		if _, err := ParseUIDSet(in); !errors.Is(err, ErrBadSet) {
			t.Errorf("ParseUIDSet(%q) = %v, want ErrBadSet", in, err)
		}
	}
}

func TestSeqSetContainsAndResolve(t *testing.T) {
	set, _ := ParseSeqSet("1:3,*,9:7")
	for n, want := range map[uint32]bool{1: true, 3: true, 4: false, 6: false, 7: true, 8: true, 9: true, 20: true, 19: false} {
		if set.Contains(n, 20) != want {
			t.Errorf("%v.Contains(%d, max 20) = %v", set, n, !want)
		}
	}
	// "*" when the mailbox is smaller than a range's other end: 30:* on 20 messages is 20:30.
	got := SeqSet{{30, 0}}.Resolve(20)
	if !reflect.DeepEqual(got, SeqSet{{20, 30}}) {
		t.Errorf("30:* resolved on 20 messages = %v, want 20:30", got)
	}
}
