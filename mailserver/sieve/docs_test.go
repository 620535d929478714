package sieve

import (
	"os"
	"strings"
	"testing"
)

// TestDocsExamples compiles every sieve example in docs/sieve.md, so that the examples
// people copy keep working.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sieve.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```sieve\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("docs/sieve.md has no sieve examples")
	}
	for _, b := range blocks {
		src, _, _ := strings.Cut(b, "```")
		if _, err := Compile(src); err != nil {
			t.Errorf("example does not compile: %v\n%s", err, src)
		}
	}
	runCase(t, evalCase{script: strings.Split(blocks[0], "```")[0], msg: msgList,
		want: []string{"fileinto Lists/dev"}})
}
