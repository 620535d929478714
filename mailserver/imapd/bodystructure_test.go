package imapd

import (
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/imapd/wire"
)

// extractTestCRLF writes a message in the test source with \n and stores it, as the store
// does, with CRLF.
func extractTestCRLF(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// extractTestMixed is a typical mail with an alternative body and an attachment whose name
// uses RFC 2231 continuations.
var extractTestMixed = extractTestCRLF(`From: Alice <alice@example.com>
To: bob@example.com
Subject: report
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is a multi-part message in MIME format.
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Hello =E2=82=AC
--inner
Content-Type: text/html; charset="utf-8"
Content-Language: en, de

<p>Hello</p>
--inner--
--outer
Content-Type: application/pdf;
 name*0="quarterly ";
 name*1="report.pdf"
Content-Disposition: attachment;
 filename*0*=UTF-8''%E2%82%AC%20;
 filename*1="report.pdf"
Content-Transfer-Encoding: base64
Content-ID: <part3@example.com>
Content-Description: The =?UTF-8?Q?report?=

JVBERi0xLjQK
--outer--
epilogue
`)

// extractTestNested forwards a message as message/rfc822.
var extractTestNested = extractTestCRLF(`From: carol@example.org
Subject: Fwd: hello
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

see below
--b1
Content-Type: message/rfc822
Content-Disposition: inline

From: dave@example.net
Subject: hello
Date: Mon, 7 Feb 1994 21:52:25 -0800
Message-ID: <inner@example.net>
Content-Type: text/plain; charset=ISO-8859-1; format=flowed

line one
line two
--b1--
`)

func TestBodyStructureGolden(t *testing.T) {
	tests := []struct {
		name, msg, want, wantBody string
	}{{
		name: "multipart alternative with an attachment",
		msg:  extractTestMixed,
		want: `((("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 15 0 NIL NIL NIL NIL)` +
			`("text" "html" ("charset" "utf-8") NIL NIL "7bit" 12 0 NIL NIL ("en" "de") NIL) "alternative" ("boundary" "inner") NIL NIL NIL)` +
			`("application" "pdf" ("name" "quarterly report.pdf") "<part3@example.com>" "The =?UTF-8?Q?report?=" "base64" 12 NIL ` +
			`("attachment" ("filename*" "UTF-8''%E2%82%AC%20report.pdf")) NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL)`,
		wantBody: `((("text" "plain" ("charset" "UTF-8") NIL NIL "quoted-printable" 15 0)` +
			`("text" "html" ("charset" "utf-8") NIL NIL "7bit" 12 0) "alternative")` +
			`("application" "pdf" ("name" "quarterly report.pdf") "<part3@example.com>" "The =?UTF-8?Q?report?=" "base64" 12) "mixed")`,
	}, {
		name: "nested message/rfc822",
		msg:  extractTestNested,
		want: `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)` +
			`("message" "rfc822" NIL NIL NIL "7bit" 192 ` +
			`("Mon, 07 Feb 1994 21:52:25 -0800" "hello" ((NIL NIL "dave" "example.net")) ((NIL NIL "dave" "example.net")) ` +
			`((NIL NIL "dave" "example.net")) NIL NIL NIL NIL "<inner@example.net>") ` +
			`("text" "plain" ("charset" "ISO-8859-1" "format" "flowed") NIL NIL "7bit" 18 1 NIL NIL NIL NIL) 7 ` +
			`NIL ("inline" NIL) NIL NIL) "mixed" ("boundary" "b1") NIL NIL NIL)`,
	}, {
		name: "no Content-Type",
		msg:  "Subject: plain\r\n\r\nhello\r\nworld\r\n",
		want: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)`,
	}, {
		name: "wrong boundary is shown as text",
		msg:  "Content-Type: multipart/mixed; boundary=nothere\r\n\r\n--other\r\n\r\ntext\r\n--other--\r\n",
		want: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 28 4 NIL NIL NIL NIL)`,
	}, {
		name: "multipart without boundary parameter",
		msg:  "Content-Type: multipart/mixed\r\n\r\nbody\r\n",
		want: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 NIL NIL NIL NIL)`,
	}, {
		name: "truncated before the closing boundary",
		msg:  "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: image/png\r\n\r\niVBOR",
		want: `(("image" "png" NIL NIL NIL "7bit" 5 NIL NIL NIL NIL) "mixed" ("boundary" "x") NIL NIL NIL)`,
	}, {
		name: "digest parts default to message/rfc822, type case kept",
		msg:  "Content-Type: Multipart/Digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nbody\r\n--d--\r\n",
		want: `(("message" "rfc822" NIL NIL NIL "7bit" 20 (NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL) ` +
			`("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0 NIL NIL NIL NIL) 2 NIL NIL NIL NIL) ` +
			`"Digest" ("boundary" "d") NIL NIL NIL)`,
	}, {
		name: "RFC 2231 plain continuations and a gap",
		msg: "Content-Type: text/plain; charset=us-ascii; title*0=\"a \"; title*1=b;\r\n" +
			" x*0=one; x*2=three\r\nContent-Transfer-Encoding: 8BIT\r\n\r\nbody",
		want: `("text" "plain" ("charset" "us-ascii" "title" "a b" "x*0" "one" "x*2" "three") NIL NIL "8bit" 4 0 NIL NIL NIL NIL)`,
	}, {
		name: "empty message",
		msg:  "",
		want: `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := extractBodyStructure(strings.NewReader(tt.msg))
			if got, want := encodeTestText(t, encodeBodyStructure(bs, true)), tt.want; got != want {
				t.Errorf("BODYSTRUCTURE\n got %s\nwant %s", got, want)
			}
			if tt.wantBody == "" {
				return
			}
			if got, want := encodeTestText(t, encodeBodyStructure(bs, false)), tt.wantBody; got != want {
				t.Errorf("BODY\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestBodyStructureSizesMatchSections checks what clients rely on: the size BODYSTRUCTURE gives
// for a part is the length of BODY[part].
func TestBodyStructureSizesMatchSections(t *testing.T) {
	for _, msg := range []string{extractTestMixed, extractTestNested} {
		bs := extractBodyStructure(strings.NewReader(msg))
		bs.Walk(func(path []int, part imap.BodyStructure) bool {
			sp, ok := part.(*imap.BodyStructureSinglePart)
			if !ok {
				return true
			}
			b, err := extractBodySection(strings.NewReader(msg), int64(len(msg)), &imap.FetchItemBodySection{Part: path})
			if err != nil || int(sp.Size) != len(b) {
				t.Errorf("part %v: size %d, BODY[%v] is %d bytes (err %v)", path, sp.Size, path, len(b), err)
			}
			return true
		})
	}
}

func TestEncodeBodyStructureFillsGaps(t *testing.T) {
	for _, bs := range []imap.BodyStructure{nil, &imap.BodyStructureMultiPart{Subtype: "mixed"}, (*imap.BodyStructureSinglePart)(nil)} {
		want := `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`
		if got := encodeTestText(t, encodeBodyStructure(bs, true)); got != want {
			t.Errorf("%#v: %s, want %s", bs, got, want)
		}
	}
	got := encodeTestText(t, encodeBodyStructure(&imap.BodyStructureSinglePart{Type: "image", Subtype: "gif", Size: 3}, true))
	if want := `("image" "gif" NIL NIL NIL "7bit" 3 NIL NIL NIL NIL)`; got != want {
		t.Errorf("single part without extension data: %s, want %s", got, want)
	}
}

// TestBodyStructureReadByGoIMAPClient checks that go-imap's client parses our BODYSTRUCTURE
// back into the same structure.
func TestBodyStructureReadByGoIMAPClient(t *testing.T) {
	for _, msg := range []string{extractTestMixed, extractTestNested} {
		bs := extractBodyStructure(strings.NewReader(msg))
		got := encodeTestClientFetch(t, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}},
			wire.Atom("BODYSTRUCTURE"), encodeBodyStructure(bs, true)).BodyStructure
		if got == nil {
			t.Fatal("client read no body structure")
		}
		var want, have []string
		bs.Walk(func(path []int, p imap.BodyStructure) bool {
			want = append(want, p.MediaType())
			return true
		})
		got.Walk(func(path []int, p imap.BodyStructure) bool {
			have = append(have, p.MediaType())
			return true
		})
		if strings.Join(have, ",") != strings.Join(want, ",") {
			t.Errorf("client read parts %v, want %v", have, want)
		}
	}
	bs := extractBodyStructure(strings.NewReader(extractTestMixed)).(*imap.BodyStructureMultiPart)
	got := encodeTestClientFetch(t, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}},
		wire.Atom("BODYSTRUCTURE"), encodeBodyStructure(bs, true)).BodyStructure.(*imap.BodyStructureMultiPart)
	pdf := got.Children[1].(*imap.BodyStructureSinglePart)
	if pdf.Params["name"] != "quarterly report.pdf" || pdf.Size != 12 || pdf.Encoding != "base64" ||
		pdf.Disposition().Value != "attachment" {
		t.Errorf("client read attachment %+v", pdf)
	}
}
