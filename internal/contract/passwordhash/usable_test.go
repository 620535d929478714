package passwordhash

import (
	"strings"
	"testing"
)

func TestUnusableNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		pw, says string
	}{
		{"", "is empty"},
		{"secret\n", "control character U+000A"},
		{"se\x00cret", "control character U+0000"},
		{"tab\there", "control character U+0009"},
		{"\xff\xfe", "not valid UTF-8"},
		{"bätterie staple", ""},
		{"with spaces and symbols !\"#$%&'()*+,-./", ""},
	} {
		got := Unusable([]byte(tc.pw))
		if (tc.says == "") != (got == "") || !strings.Contains(got, tc.says) {
			t.Errorf("Unusable(%q) = %q, want %q", tc.pw, got, tc.says)
		}
	}
}
