package sieve

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary scripts to the compiler and runs those it accepts: neither may
// panic, every refusal is placed, and a run either succeeds or falls back to the keep.
func FuzzParse(f *testing.F) {
	for _, c := range allCases() {
		f.Add(c.script)
	}
	for _, c := range compileErrorCases {
		f.Add(c.script)
	}
	m := ParseMessage([]byte(msgMIME))
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile(src)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if se.Pos.Line < 0 || se.Pos.Col < 0 {
				t.Fatalf("bad position in %v", err)
			}
			return
		}
		res := s.Evaluate(m, defaultEnv, testNow)
		if len(res.Actions) == 0 {
			t.Fatalf("no actions at all: %v", res.Err)
		}
		if res.Err != nil && (len(res.Actions) != 1 || !res.Actions[0].Implicit) {
			t.Fatalf("runtime error %v but actions %q", res.Err, describeAll(res.Actions))
		}
	})
}
