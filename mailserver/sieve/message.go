package sieve

import (
	"bytes"
	"mime"
	"net/textproto"
	"strings"
)

// rawMessage is a Message over the bytes of an RFC 5322 message.
type rawMessage struct {
	fields []field
	body   []byte
	size   int64
}

type field struct {
	name  string // canonical
	value string
}

// ParseMessage reads the header of a raw message. It never fails: a malformed header line
// ends the header, as a lenient reader of real mail must.
func ParseMessage(raw []byte) Message {
	m := &rawMessage{size: int64(len(raw))}
	rest := raw
	for len(rest) > 0 {
		line, next := nextLine(rest)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			rest = next
			break
		}
		// Unfold continuation lines; the copy keeps raw untouched.
		if len(next) > 0 && (next[0] == ' ' || next[0] == '\t') {
			line = append([]byte(nil), line...)
		}
		for len(next) > 0 && (next[0] == ' ' || next[0] == '\t') {
			var cont []byte
			cont, next = nextLine(next)
			line = append(line, cont...)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break
		}
		name := strings.TrimSpace(string(line[:colon]))
		value := strings.TrimSpace(unfold.Replace(string(line[colon+1:])))
		m.fields = append(m.fields, field{textproto.CanonicalMIMEHeaderKey(name), value})
		rest = next
	}
	m.body = rest
	return m
}

var unfold = strings.NewReplacer("\r\n", "", "\n", "")

func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	return b[:i+1], b[i+1:]
}

func (m *rawMessage) Header(name string) []string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	var out []string
	for _, f := range m.fields {
		if f.name == name {
			out = append(out, f.value)
		}
	}
	return out
}

func (m *rawMessage) Size() int64  { return m.size }
func (m *rawMessage) Body() []byte { return m.body }

var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// decodeHeader decodes RFC 2047 encoded words; text that fails to decode is kept as is.
func decodeHeader(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// headerValues returns the decoded values of the named fields, narrowed by :index.
func (r *run) headerValues(t *testNode) []string {
	var out []string
	for _, name := range r.expandList(t.pos[0].Strs) {
		for _, v := range r.indexed(t, r.msg.Header(name)) {
			out = append(out, decodeHeader(v))
		}
	}
	return out
}

// indexed applies :index n [:last] (RFC 5260): only the nth field counts.
func (r *run) indexed(t *testNode, vals []string) []string {
	idx, ok := t.tags["index"]
	if !ok {
		return vals
	}
	n := int(idx.Num)
	if n < 1 || n > len(vals) {
		return nil
	}
	if _, last := t.tags["last"]; last {
		return vals[len(vals)-n : len(vals)-n+1]
	}
	return vals[n-1 : n]
}
