package sieve

import (
	"strings"
	"testing"
)

func allCases() []evalCase {
	var all []evalCase
	all = append(all, rfcCases...)
	all = append(all, clientCases...)
	all = append(all, extensionCases...)
	all = append(all, probeCases...)
	all = append(all, moreCases...)
	return all
}

func TestEvaluate(t *testing.T) {
	for _, c := range allCases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

// TestConcurrentRuns runs one compiled script from many goroutines, as deliveries to one
// mailbox will; go test -race checks the shared regex cache.
func TestConcurrentRuns(t *testing.T) {
	s, err := Compile("require [\"fileinto\",\"regex\",\"variables\",\"imap4flags\"];\n" +
		`if header :regex "subject" "^(L[a-z]+)" { fileinto "${1}"; }` + "\n" +
		`set "k" "tomorrow"; if header :regex "subject" "${k}" { addflag "x"; }`)
	if err != nil {
		t.Fatal(err)
	}
	m := ParseMessage([]byte(msgPlain))
	done := make(chan string)
	for range 8 {
		go func() {
			res := s.Evaluate(m, defaultEnv, testNow)
			done <- strings.Join(describeAll(res.Actions), ";")
		}()
	}
	for range 8 {
		if got := <-done; got != "fileinto Lunch" {
			t.Errorf("got %q", got)
		}
	}
}
