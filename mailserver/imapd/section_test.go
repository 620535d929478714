package imapd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

func extractTestSection(t *testing.T, msg string, bs *imap.FetchItemBodySection) []byte {
	t.Helper()
	b, err := extractBodySection(strings.NewReader(msg), int64(len(msg)), bs)
	if err != nil {
		t.Fatalf("section %s: %v", encodeSectionName(bs), err)
	}
	return b
}

func TestSectionExtract(t *testing.T) {
	folded := "Received: from a\r\n\tby b\r\nFROM: x@y\r\nSubject: hi\r\nto: z@w\r\n  (folded)\r\n\r\nbody\r\n"
	tests := []struct {
		name string
		msg  string
		bs   imap.FetchItemBodySection
		want string
	}{
		{"whole message", folded, imap.FetchItemBodySection{}, folded},
		{"header", folded, imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader},
			"Received: from a\r\n\tby b\r\nFROM: x@y\r\nSubject: hi\r\nto: z@w\r\n  (folded)\r\n\r\n"},
		{"header fields keep message order, case and folding", folded,
			imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"To", "from", "X-Absent"}},
			"FROM: x@y\r\nto: z@w\r\n  (folded)\r\n\r\n"},
		{"header fields not", folded,
			imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"received", "TO"}},
			"FROM: x@y\r\nSubject: hi\r\n\r\n"},
		{"header fields none present is a blank line", folded,
			imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Cc"}}, "\r\n"},
		{"text", folded, imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}, "body\r\n"},
		{"part 1 of a single part message is its body", folded, imap.FetchItemBodySection{Part: []int{1}}, "body\r\n"},
		{"part 2 of a single part message does not exist", folded, imap.FetchItemBodySection{Part: []int{2}}, "<nil>"},
		{"multipart part", extractTestMixed, imap.FetchItemBodySection{Part: []int{1, 2}}, "<p>Hello</p>"},
		{"part MIME header", extractTestMixed, imap.FetchItemBodySection{Part: []int{1, 1}, Specifier: imap.PartSpecifierMIME},
			"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"},
		{"multipart part is its whole body", extractTestMixed, imap.FetchItemBodySection{Part: []int{1}},
			extractTestCRLF("--inner\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Hello =E2=82=AC\n--inner\nContent-Type: text/html; charset=\"utf-8\"\nContent-Language: en, de\n\n<p>Hello</p>\n--inner--")},
		{"part beyond the last", extractTestMixed, imap.FetchItemBodySection{Part: []int{3}}, "<nil>"},
		{"subpart of a leaf", extractTestMixed, imap.FetchItemBodySection{Part: []int{2, 1}}, "<nil>"},
		{"part zero", extractTestMixed, imap.FetchItemBodySection{Part: []int{0}}, "<nil>"},
		{"message/rfc822 part is the whole encapsulated message", extractTestNested, imap.FetchItemBodySection{Part: []int{2}},
			extractTestCRLF("From: dave@example.net\nSubject: hello\nDate: Mon, 7 Feb 1994 21:52:25 -0800\n" +
				"Message-ID: <inner@example.net>\nContent-Type: text/plain; charset=ISO-8859-1; format=flowed\n\nline one\nline two")},
		{"HEADER.FIELDS of an encapsulated message", extractTestNested,
			imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"SUBJECT"}},
			"Subject: hello\r\n\r\n"},
		{"TEXT of an encapsulated message", extractTestNested,
			imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierText}, "line one\r\nline two"},
		{"MIME of a message/rfc822 part is the part's header", extractTestNested,
			imap.FetchItemBodySection{Part: []int{2}, Specifier: imap.PartSpecifierMIME},
			"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"},
		{"part 1 inside a single part encapsulated message", extractTestNested,
			imap.FetchItemBodySection{Part: []int{2, 1}}, "line one\r\nline two"},
		{"bare LF and NUL kept", "Subject: x\n\nline\nwith\x00nul\n", imap.FetchItemBodySection{Specifier: imap.PartSpecifierText},
			"line\nwith\x00nul\n"},
		{"header without blank line or body", "Subject: x\r\nFrom: y", imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}, ""},
		{"header fields of a header without blank line", "Subject: x\r\nFrom: y",
			imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From"}}, "From: y\r\n"},
		{"header stops at a line that is no field", "Subject: x\r\nnot a header\r\n\r\nbody",
			imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}, "Subject: x\r\n"},
		{"truncated multipart keeps its last part", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart one\r\n--x\r\n\r\ntrunc",
			imap.FetchItemBodySection{Part: []int{2}}, "trunc"},
		{"broken multipart: part 1 is the body", "Content-Type: multipart/mixed; boundary=x\r\n\r\nno parts here\r\n",
			imap.FetchItemBodySection{Part: []int{1}}, "no parts here\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := extractTestSection(t, tt.msg, &tt.bs)
			got := string(b)
			if b == nil {
				got = "<nil>"
			}
			if got != tt.want {
				t.Errorf("%s\n got %q\nwant %q", encodeSectionName(&tt.bs), got, tt.want)
			}
		})
	}
}

func TestExtractBinarySection(t *testing.T) {
	qpBroken := "Content-Transfer-Encoding: quoted-printable\r\n\r\ncontrol \x01 byte\r\n"
	tests := []struct {
		name   string
		msg    string
		part   []int
		want   string
		wantOK bool
	}{
		{"quoted-printable part", extractTestMixed, []int{1, 1}, "Hello €", true},
		{"base64 part", extractTestMixed, []int{2}, "%PDF-1.4\n", true},
		{"7bit part unchanged", extractTestMixed, []int{1, 2}, "<p>Hello</p>", true},
		{"missing part", extractTestMixed, []int{9}, "<nil>", true},
		{"whole message unchanged", extractTestMixed, nil, extractTestMixed, true},
		{"base64 message: header then decoded body", "Subject: b\r\nContent-Transfer-Encoding: BASE64\r\n\r\nAAFi\r\nYw==\r\n",
			nil, "Subject: b\r\nContent-Transfer-Encoding: BASE64\r\n\r\n\x00\x01bc", true},
		{"base64 without padding", "Content-Transfer-Encoding: base64\r\n\r\nYWI", []int{1}, "ab", true},
		{"binary with NUL kept", "Content-Transfer-Encoding: binary\r\n\r\na\x00b\n", []int{1}, "a\x00b\n", true},
		{"invalid base64", "Content-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", []int{1}, "", false},
		{"invalid quoted-printable", qpBroken, []int{1}, "", false},
		{"quoted-printable '=' without hex taken as is", "Content-Transfer-Encoding: Quoted-Printable\r\n\r\na=ZZb=3D=\r\nc\n",
			[]int{1}, "a=ZZb=c\n", true},
		{"unknown encoding", "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n", []int{1}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok, err := extractBinarySection(strings.NewReader(tt.msg), int64(len(tt.msg)), tt.part)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			got := string(b)
			if b == nil {
				got = "<nil>"
			}
			if ok && got != tt.want {
				t.Errorf("BINARY[%v]\n got %q\nwant %q", tt.part, got, tt.want)
			}
		})
	}
}

func TestExtractSectionReadError(t *testing.T) {
	msg := "Subject: x\r\n\r\nbody"
	// The index says the message is longer than the file: the caller must not send a literal
	// whose length it cannot honour.
	_, err := extractBodySection(strings.NewReader(msg), int64(len(msg)+10), &imap.FetchItemBodySection{Part: []int{1}})
	if err == nil {
		t.Error("short message file gave no error")
	}
	if _, _, err := extractBinarySection(strings.NewReader(msg), int64(len(msg)+10), []int{1}); err == nil {
		t.Error("short message file gave no error for BINARY")
	}
}

func TestEncodeSectionNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{encodeSectionName(&imap.FetchItemBodySection{}), "BODY[]"},
		{encodeSectionName(&imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 100}}), "BODY[]<0>"},
		{encodeSectionName(&imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader,
			HeaderFields: []string{"FROM", "TO"}, Partial: &imap.SectionPartial{Offset: 10, Size: 5}}),
			"BODY[HEADER.FIELDS (FROM TO)]<10>"},
		{encodeSectionName(&imap.FetchItemBodySection{Part: []int{1, 2}, Specifier: imap.PartSpecifierHeader,
			HeaderFieldsNot: []string{"X-Odd(name)"}}), `BODY[1.2.HEADER.FIELDS.NOT ("X-Odd(name)")]`},
		{encodeSectionName(&imap.FetchItemBodySection{Part: []int{3}, Specifier: imap.PartSpecifierMIME}), "BODY[3.MIME]"},
		{encodeSectionName(&imap.FetchItemBodySection{Part: []int{4, 2}, Specifier: imap.PartSpecifierText}), "BODY[4.2.TEXT]"},
		{encodeSectionName(&imap.FetchItemBodySection{Part: []int{1}}), "BODY[1]"},
		{encodeBinarySectionName(&imap.FetchItemBinarySection{Part: []int{1, 2}, Partial: &imap.SectionPartial{Size: 3}}), "BINARY[1.2]<0>"},
		{encodeBinarySectionName(&imap.FetchItemBinarySection{}), "BINARY[]"},
		{encodeBinarySizeName(&imap.FetchItemBinarySectionSize{Part: []int{1}}), "BINARY.SIZE[1]"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

func TestEncodeBodyLiteral(t *testing.T) {
	tests := []struct {
		name string
		v    wire.Value
		want string
	}{
		{"text", encodeBodyLiteral([]byte("a\r\nb")), "{4}\r\na\r\nb"},
		{"empty section", encodeBodyLiteral([]byte{}), "{0}\r\n"},
		{"missing section", encodeBodyLiteral(nil), `""`},
		{"NUL sent as 0x80, length kept", encodeBodyLiteral([]byte("a\x00b")), "{3}\r\na\x80b"},
		{"binary keeps NUL", encodeBinaryLiteral([]byte("a\x00b")), "~{3}\r\na\x00b"},
		{"binary missing part", encodeBinaryLiteral(nil), "NIL"},
	}
	for _, tt := range tests {
		if got := encodeTestText(t, tt.v); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	in := []byte("a\x00b")
	encodeBodyLiteral(in)
	if !bytes.Equal(in, []byte("a\x00b")) {
		t.Error("encodeBodyLiteral changed the caller's data")
	}
}

// TestSectionsReadByGoIMAPClient sends sections under the names we give them and checks that
// go-imap's client files them under the items it asked for.
func TestSectionsReadByGoIMAPClient(t *testing.T) {
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Subject"}, Peek: true}
	part := &imap.FetchItemBodySection{Part: []int{1, 2}, Partial: &imap.SectionPartial{Offset: 3, Size: 4}}
	bin := &imap.FetchItemBinarySection{Part: []int{2}}
	binSize := &imap.FetchItemBinarySectionSize{Part: []int{2}}
	opts := &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{fields, part},
		BinarySection: []*imap.FetchItemBinarySection{bin}, BinarySectionSize: []*imap.FetchItemBinarySectionSize{binSize}}

	msg := extractTestMixed
	hdr := extractTestSection(t, msg, fields)
	whole := extractTestSection(t, msg, part)
	data, ok, err := extractBinarySection(strings.NewReader(msg), int64(len(msg)), bin.Part)
	if err != nil || !ok {
		t.Fatalf("BINARY: ok %v, err %v", ok, err)
	}
	got := encodeTestClientFetch(t, opts,
		wire.Atom(encodeSectionName(fields)), encodeBodyLiteral(hdr),
		wire.Atom(encodeSectionName(part)), encodeBodyLiteral(whole[3:7]),
		wire.Atom(encodeBinarySectionName(&imap.FetchItemBinarySection{Part: bin.Part})), encodeBinaryLiteral(data),
		wire.Atom(encodeBinarySizeName(binSize)), wire.Number(uint64(len(data))))
	if b := got.FindBodySection(fields); string(b) != "From: Alice <alice@example.com>\r\nSubject: report\r\n\r\n" {
		t.Errorf("client read HEADER.FIELDS %q", b)
	}
	if b := got.FindBodySection(part); string(b) != "Hell" {
		t.Errorf("client read BODY[1.2]<3> %q", b)
	}
	if b := got.FindBinarySection(bin); string(b) != "%PDF-1.4\n" {
		t.Errorf("client read BINARY[2] %q", b)
	}
	if n, _ := got.FindBinarySectionSize(binSize.Part); n != 9 {
		t.Errorf("client read BINARY.SIZE[2] %d", n)
	}
}

// FuzzExtractMessage feeds the parsers broken and hostile mail: they must never panic, and
// the sizes they report must stay within the message.
func FuzzExtractMessage(f *testing.F) {
	deep := strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", extractMaxDepth+10)
	deepMsg := strings.Repeat("Content-Type: message/rfc822\r\n\r\n", extractMaxDepth+10)
	for _, seed := range []string{extractTestMixed, extractTestNested, deep, deepMsg, "", "\r\n", " leading space\r\n\r\nx",
		"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n", "From: ((((\r\nTo: \"unterminated\r\n\r\n",
		"Content-Type: text/plain; a*0*=x; a*1*=%; a*=y; b*x=1\r\n\r\n", "Content-Type: message/rfc822\r\n\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		// The header block as read from a file and as cut from the header cache's bytes.
		fromFile, err := extractReadHeader(strings.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		if fromCache := extractHeaderBlock([]byte(msg)); !bytes.Equal(fromFile, fromCache) {
			t.Errorf("header block %q read from a file, %q cut from memory", fromFile, fromCache)
		}
		bs := extractBodyStructure(strings.NewReader(msg))
		if bs == nil {
			t.Fatal("nil body structure")
		}
		encodeTestText(t, encodeBodyStructure(bs, true))
		encodeTestText(t, encodeBodyStructure(bs, false))
		bs.Walk(func(path []int, p imap.BodyStructure) bool {
			if sp, ok := p.(*imap.BodyStructureSinglePart); ok && int(sp.Size) > len(msg) {
				t.Errorf("part %v size %d beyond the message's %d bytes", path, sp.Size, len(msg))
			}
			for _, spec := range []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierMIME,
				imap.PartSpecifierHeader, imap.PartSpecifierText} {
				if len(path) == 0 && spec == imap.PartSpecifierMIME {
					continue
				}
				if _, err := extractBodySection(strings.NewReader(msg), int64(len(msg)),
					&imap.FetchItemBodySection{Part: path, Specifier: spec}); err != nil {
					t.Error(err)
				}
			}
			if _, _, err := extractBinarySection(strings.NewReader(msg), int64(len(msg)), path); err != nil {
				t.Error(err)
			}
			return true
		})
	})
}
