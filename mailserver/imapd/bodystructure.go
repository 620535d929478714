package imapd

import (
	"bytes"
	"io"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// BODYSTRUCTURE follows Dovecot 2.3 (lib-imap/imap-bodystructure.c) where RFC 3501 leaves a
// choice:
//
//   - Type, subtype, parameter values, disposition and the other fields are sent as written in
//     the message, encoded words and case included; parameter names are lower-cased.
//   - A part without Content-Type is text/plain with ("charset" "us-ascii"), a text part
//     without charset gets that charset, and a part of a multipart/digest is message/rfc822.
//   - RFC 2231 continuations are merged; a charset-encoded value stays encoded under "name*"
//     for the client to decode (see extractMerge2231).
//   - Size is in octets as stored, and lines count LF, so that they describe what BODY[n]
//     returns.
//   - A multipart whose boundary never occurs (wrong boundary, truncated message) is described
//     as text/plain, as fetch.go's repairBodyStructure did, and BODY[1] returns its body: the
//     client can show something rather than an empty part.
//
// Two deviations: the transfer encoding is lower-cased, as go-imap's server does because
// Outlook for iOS chokes on upper case, and Content-MD5 is always NIL (imap.BodyStructure
// has no field for it; nobody checks it). Dovecot also ignores the Content-* fields of a
// message without MIME-Version; we do not: such mail is rare, and its Content-Type is
// usually right.

// extractBodyStructure describes the message r holds. It never returns nil and never fails:
// a message that cannot be read at all is an empty text/plain part.
func extractBodyStructure(r io.Reader) imap.BodyStructure {
	buf, _ := io.ReadAll(r) // a read error leaves what was read, described as it is
	return extractStructureOf(buf, extractParseMessage(buf))
}

// extractStructureOf converts a parsed entity into go-imap's types.
func extractStructureOf(buf []byte, e *extractEntity) imap.BodyStructure {
	if len(e.children) > 0 {
		mp := &imap.BodyStructureMultiPart{Subtype: e.subtype}
		for _, c := range e.children {
			mp.Children = append(mp.Children, extractStructureOf(buf, c))
		}
		disp, lang, loc := extractExtension(e)
		mp.Extended = &imap.BodyStructureMultiPartExt{
			Params: extractParamMap(e.params), Disposition: disp, Language: lang, Location: loc,
		}
		return mp
	}
	body := buf[e.bodyStart:e.end]
	sp := &imap.BodyStructureSinglePart{
		Type:        e.typ,
		Subtype:     e.subtype,
		Params:      extractParamMap(e.params),
		ID:          extractHumanText(e.header.Get("Content-Id")),
		Description: extractHumanText(e.header.Get("Content-Description")),
		Encoding:    strings.ToLower(extractMIMEToken(e.header.Get("Content-Transfer-Encoding"))),
		Size:        uint32(min(len(body), 1<<32-1)),
	}
	lines := int64(bytes.Count(body, []byte("\n")))
	switch {
	case e.message != nil:
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      extractEnvelope(e.message.header),
			BodyStructure: extractStructureOf(buf, e.message),
			NumLines:      lines,
		}
	case strings.EqualFold(e.typ, "text"):
		sp.Text = &imap.BodyStructureText{NumLines: lines}
		if _, ok := sp.Params["charset"]; !ok {
			if sp.Params == nil {
				sp.Params = map[string]string{}
			}
			sp.Params["charset"] = "us-ascii"
		}
	}
	disp, lang, loc := extractExtension(e)
	sp.Extended = &imap.BodyStructureSinglePartExt{Disposition: disp, Language: lang, Location: loc}
	return sp
}

// extractExtension reads the extension data single parts and multiparts share.
func extractExtension(e *extractEntity) (*imap.BodyStructureDisposition, []string, string) {
	var disp *imap.BodyStructureDisposition
	if v, params := extractDisposition(e.header.Get("Content-Disposition")); v != "" {
		disp = &imap.BodyStructureDisposition{Value: v, Params: extractParamMap(params)}
	}
	var lang []string
	for _, l := range strings.Split(e.header.Get("Content-Language"), ",") {
		if l = extractMIMEToken(l); l != "" {
			lang = append(lang, l)
		}
	}
	return disp, lang, extractHumanText(e.header.Get("Content-Location"))
}

// extractMIMEToken is the first token of a header value, comments and white space skipped.
func extractMIMEToken(v string) string {
	s := extractMIMEScanner{s: v}
	return s.token()
}

func extractParamMap(params []extractParam) map[string]string {
	if len(params) == 0 {
		return nil
	}
	m := make(map[string]string, len(params))
	for _, p := range params {
		if _, dup := m[p.name]; !dup { // the first of duplicates counts, as in Dovecot
			m[p.name] = extractHumanText(p.value)
		}
	}
	return m
}

// encodeBodyStructure writes BODYSTRUCTURE (extended) or BODY (not extended) data, RFC 3501
// body. Missing pieces of a structure built elsewhere are filled with defaults rather than
// refused: a FETCH response must be sent whole.
func encodeBodyStructure(bs imap.BodyStructure, extended bool) wire.Value {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(bs.Children) > 0 {
			return encodeMultiPart(bs, extended)
		}
	case *imap.BodyStructureSinglePart:
		if bs != nil {
			return encodeSinglePart(bs, extended)
		}
	}
	// nil, or a multipart without parts, which IMAP cannot express.
	return encodeSinglePart(&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain",
		Params: map[string]string{"charset": "us-ascii"}, Text: &imap.BodyStructureText{}}, extended)
}

func encodeMultiPart(bs *imap.BodyStructureMultiPart, extended bool) wire.Value {
	children := make([]wire.Value, len(bs.Children))
	for i, c := range bs.Children {
		children[i] = encodeBodyStructure(c, extended)
	}
	subtype := bs.Subtype
	if subtype == "" {
		subtype = "x-unknown" // Dovecot's choice; the grammar wants a string
	}
	rest := []wire.Value{wire.String(subtype)}
	if extended {
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureMultiPartExt{}
		}
		rest = append(rest, encodeParams(ext.Params), encodeDisposition(ext.Disposition),
			encodeLanguage(ext.Language), encodeNString(ext.Location))
	}
	return encodeUnspacedList(children, rest...)
}

func encodeSinglePart(bs *imap.BodyStructureSinglePart, extended bool) wire.Value {
	typ, subtype := bs.Type, bs.Subtype
	if typ == "" || subtype == "" {
		typ, subtype = "text", "plain"
	}
	enc := strings.ToLower(bs.Encoding)
	if enc == "" {
		enc = "7bit"
	}
	vs := []wire.Value{wire.String(typ), wire.String(subtype), encodeParams(bs.Params),
		encodeNString(bs.ID), encodeNString(bs.Description), wire.String(enc), wire.Number(uint64(bs.Size))}
	switch {
	case bs.MessageRFC822 != nil:
		m := bs.MessageRFC822
		vs = append(vs, encodeEnvelope(m.Envelope), encodeBodyStructure(m.BodyStructure, extended),
			wire.Number(uint64(max(m.NumLines, 0))))
	case bs.Text != nil:
		vs = append(vs, wire.Number(uint64(max(bs.Text.NumLines, 0))))
	case strings.EqualFold(typ, "text"):
		vs = append(vs, wire.Number(0)) // body-type-text requires the line count
	}
	if extended {
		ext := bs.Extended
		if ext == nil {
			ext = &imap.BodyStructureSinglePartExt{}
		}
		vs = append(vs, wire.NIL(), encodeDisposition(ext.Disposition), encodeLanguage(ext.Language),
			encodeNString(ext.Location))
	}
	return wire.List(vs...)
}

// encodeParams writes body-fld-param, names sorted: imap.BodyStructure keeps them in a map.
func encodeParams(params map[string]string) wire.Value {
	if len(params) == 0 {
		return wire.NIL()
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	vs := make([]wire.Value, 0, 2*len(names))
	for _, k := range names {
		vs = append(vs, wire.String(k), wire.String(params[k]))
	}
	return wire.List(vs...)
}

func encodeDisposition(d *imap.BodyStructureDisposition) wire.Value {
	if d == nil || d.Value == "" {
		return wire.NIL()
	}
	return wire.List(wire.String(d.Value), encodeParams(d.Params))
}

func encodeLanguage(langs []string) wire.Value {
	if len(langs) == 0 {
		return wire.NIL()
	}
	vs := make([]wire.Value, len(langs))
	for i, l := range langs {
		vs[i] = wire.String(l)
	}
	return wire.List(vs...)
}
