package wire

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzLimits are small so that the fuzzer reaches every limit with short inputs.
var fuzzLimits = Limits{MaxLine: 256, MaxLiteralPreAuth: 64, MaxLiteral: 512, MaxDepth: 4, MaxArgs: 32}

// FuzzReadCommand reads whatever comes as a stream of commands: no panic, no endless loop,
// every command within the limits and no larger than the input, every rejection answerable,
// and every command re-encoded by the Writer reads back the same.
func FuzzReadCommand(f *testing.F) {
	for _, tc := range readCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range errorCases {
		f.Add([]byte(tc.in + next))
	}
	for _, s := range []string{
		"a1 LOGIN {4294967296}\r\n" + next, "a1 LOGIN {4294967296+}\r\n", "a1 X {100+}\r\n" + next,
		"a1 X ((((((((((a))))))))))\r\n" + next, "a1 X ~{3}\r\n\x00\x00\x00\r\n", "a1 X ( {5+}\r\n)))))\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		r := NewReader(bytes.NewReader(data), NewWriter(&out), fuzzLimits)
		r.SetAuthenticated(len(data)%2 == 0)
		// Each read consumes at least one byte, so there are at most len(data)+1 of them.
		for range len(data) + 1 {
			cmd, err := r.ReadCommand()
			if err != nil {
				if !checkFuzzError(t, err) {
					return
				}
				continue
			}
			checkFuzzCommand(t, cmd, len(data))
		}
		t.Fatalf("more commands than bytes in %q", data)
	})
}

// checkFuzzError reports whether reading may go on after err.
func checkFuzzError(t *testing.T, err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false // the input ended
	}
	if (e.Status != BAD && e.Status != NO) || e.Err == nil {
		t.Fatalf("unanswerable error %#v", e)
	}
	return !e.Fatal
}

func checkFuzzCommand(t *testing.T, cmd *Command, inputLen int) {
	values, depth, size, literal := measure(cmd.Args, 0)
	if values > fuzzLimits.MaxArgs || depth > fuzzLimits.MaxDepth || size > inputLen ||
		int64(literal) > fuzzLimits.MaxLiteral {
		t.Fatalf("%d values, %d deep, %d bytes (largest literal %d) from %d bytes of input",
			values, depth, size, literal, inputLen)
	}
	if cmd.Tag == "" || cmd.Name == "" {
		t.Fatalf("command without a tag or a name: %+v", cmd)
	}
	checkRoundTrip(t, cmd.Args, false)
}

func measure(vs []Value, level int) (values, depth, size, literal int) {
	depth = level
	for _, v := range vs {
		values++
		size += len(v.Str) + len(v.Lit)
		literal = max(literal, len(v.Lit))
		if v.Kind == KindList {
			n, d, s, l := measure(v.List, level+1)
			values, size, depth, literal = values+n, size+s, max(depth, d), max(literal, l)
		}
	}
	return values, depth, size, literal
}
