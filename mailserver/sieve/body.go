package sieve

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxBodyParts bounds the MIME walk so that a message of many tiny parts costs little.
const maxBodyParts = 100

// charsetReader converts the charsets that need no tables; others fail, and the text is
// then used as it is.
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "us-ascii", "ascii", "":
		return in, nil
	case "iso-8859-1", "latin1", "windows-1252":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		return strings.NewReader(latin1(b)), nil
	}
	return nil, fmt.Errorf("charset %q is not supported", charset)
}

func latin1(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteRune(rune(c))
	}
	return s.String()
}

type bodyPart struct {
	mediaType string
	text      string
}

// bodyValues returns the body texts a body test compares, cached per transform.
func (r *run) bodyValues(t *testNode) []string {
	switch {
	case has(t, "raw"):
		return []string{string(r.msg.Body())}
	case has(t, "content"):
		types := r.expandList(t.tags["content"].Strs)
		var out []string
		for _, p := range r.parts() {
			if typeMatches(p.mediaType, types) {
				out = append(out, p.text)
			}
		}
		return out
	}
	var out []string
	for _, p := range r.parts() {
		switch {
		case p.mediaType == "text/html":
			out = append(out, stripTags(p.text))
		case strings.HasPrefix(p.mediaType, "text/"):
			out = append(out, p.text)
		}
	}
	return out
}

func typeMatches(mt string, types []string) bool {
	for _, want := range types {
		want = strings.ToLower(want)
		if want == "" || want == mt || (!strings.Contains(want, "/") && strings.HasPrefix(mt, want+"/")) {
			return true
		}
	}
	return false
}

var tagRE = regexp.MustCompile(`(?s)<[^>]*>`)

func stripTags(s string) string { return tagRE.ReplaceAllString(s, " ") }

func (r *run) parts() []bodyPart {
	if p, ok := r.cache["parts"].([]bodyPart); ok {
		return p
	}
	ct := ""
	if v := r.msg.Header("Content-Type"); len(v) > 0 {
		ct = v[0]
	}
	cte := ""
	if v := r.msg.Header("Content-Transfer-Encoding"); len(v) > 0 {
		cte = v[0]
	}
	var out []bodyPart
	walkPart(ct, cte, r.msg.Body(), 0, &out)
	r.cache["parts"] = out
	return out
}

// walkPart decodes a leaf part into text, or descends into a multipart.
func walkPart(ct, cte string, body []byte, depth int, out *[]bodyPart) {
	if len(*out) >= maxBodyParts || depth > 10 {
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || ct == "" {
		mt, params = "text/plain", map[string]string{"charset": "us-ascii"}
	}
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		walkMultipart(mt, params["boundary"], body, depth, out)
		return
	}
	*out = append(*out, bodyPart{mediaType: mt, text: decodeText(body, cte, params["charset"])})
	if mt == "message/rfc822" {
		// RFC 5173 section 5: the body of an enclosed message is tested as well.
		inner := ParseMessage(body)
		walkPart(first(inner.Header("Content-Type")), first(inner.Header("Content-Transfer-Encoding")), inner.Body(), depth+1, out)
	}
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// walkMultipart adds the multipart's own text, its preamble and epilogue, which is what
// :content "multipart" tests (RFC 5173 section 5), then each of its parts.
func walkMultipart(mt, boundary string, body []byte, depth int, out *[]bodyPart) {
	delim := []byte("--" + boundary)
	var outside []byte
	if i := bytes.Index(body, delim); i >= 0 {
		outside = append(outside, body[:i]...)
	}
	if i := bytes.LastIndex(body, append(delim, '-', '-')); i >= 0 {
		_, epilogue := nextLine(body[i:])
		outside = append(outside, epilogue...)
	}
	*out = append(*out, bodyPart{mediaType: mt, text: string(outside)})
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(io.LimitReader(p, 10<<20))
		walkPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), b, depth+1, out)
	}
}

func decodeText(body []byte, cte, charset string) string {
	enc := strings.ToLower(strings.TrimSpace(cte))
	plain := enc == "" || enc == "7bit" || enc == "8bit" || enc == "binary"
	if cs := strings.ToLower(charset); plain && (cs == "utf-8" || cs == "us-ascii" || cs == "") && utf8.Valid(body) {
		return string(body) // the common case needs no decoder
	}
	var rd io.Reader = bytes.NewReader(body)
	switch enc {
	case "base64":
		rd = base64.NewDecoder(base64.StdEncoding, newlineStripper{rd})
	case "quoted-printable":
		rd = quotedprintable.NewReader(rd)
	}
	if cr, err := charsetReader(charset, rd); err == nil {
		rd = cr
	}
	b, _ := io.ReadAll(rd)
	if !utf8.Valid(b) {
		return latin1(b)
	}
	return string(b)
}

// newlineStripper drops line breaks, which the base64 decoder does not expect.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	j := 0
	for _, c := range p[:k] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}
