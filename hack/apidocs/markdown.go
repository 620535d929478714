package main

import (
	"strings"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// escape makes plain text safe for Markdown while keeping `code spans` that descriptions and
// rule messages already use. In a table cell a pipe ends the cell even inside a code span, so
// it is escaped there too.
func escape(s string, inTable bool) string {
	balanced := strings.Count(s, "`")%2 == 0
	var b strings.Builder
	inCode := false
	for _, r := range s {
		switch {
		case r == '`' && balanced:
			inCode = !inCode
			b.WriteRune(r)
		case r == '|' && (inTable || !inCode):
			b.WriteString(`\|`)
		case !inCode && strings.ContainsRune("\\`*_<>[]", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cells joins table-cell entries with line breaks.
func cells(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = escape(s, true)
	}
	return strings.Join(out, "<br>")
}

// code formats a literal as a code span for a table cell.
func code(s string) string {
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

func codes(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

// fence returns a code fence longer than any run of backticks in content.
func fence(content string) string {
	n, run := 3, 0
	for _, r := range content {
		if r == '`' {
			run++
			n = max(n, run+1)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", n)
}

// shown says when kubectl get prints a column.
func shown(c apiextv1.CustomResourceColumnDefinition) string {
	if c.Priority == 0 {
		return "always"
	}
	return "with `-o wide`"
}
