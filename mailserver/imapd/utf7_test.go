package imapd

import (
	"testing"
	"unicode/utf8"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

// utf7Pairs are names and their one valid modified UTF-7 spelling, from RFC 3501 5.1.3 and
// clients seen in the wild.
var utf7Pairs = []struct{ utf8, utf7 string }{
	{"", ""},
	{"INBOX", "INBOX"},
	{"Sent Items", "Sent Items"},
	{"R&D", "R&-D"},
	{"&&", "&-&-"},
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Gelöschte Elemente", "Gel&APY-schte Elemente"},
	{"Корзина", "&BBoEPgRABDcEOAQ9BDA-"},
	{"€", "&IKw-"},
	{"😀", "&2D3eAA-"},
	{"a😀b€", "a&2D3eAA-b&IKw-"},
	{"tab\there", "tab&AAk-here"},
	{"\ufffd", "&,,0-"},
}

func TestUTF7EncodeDecode(t *testing.T) {
	for _, p := range utf7Pairs {
		if got := utf7Encode(p.utf8); got != p.utf7 {
			t.Errorf("utf7Encode(%q) = %q, want %q", p.utf8, got, p.utf7)
		}
		got, err := utf7Decode(p.utf7)
		if err != nil || got != p.utf8 {
			t.Errorf("utf7Decode(%q) = %q, %v; want %q", p.utf7, got, err, p.utf8)
		}
	}
}

// TestUTF7DecodeRefuses checks that every spelling but the canonical one is refused, so that a
// client cannot reach one folder under two names.
func TestUTF7DecodeRefuses(t *testing.T) {
	for _, s := range []string{
		"&",                  // unterminated
		"a&U,BTFw",           // unterminated run
		"&U,BTFw-&ZeVnLIqe-", // two runs in a row: should be one
		"&AGE-",              // "a" encoded
		"&ACY-",              // "&" encoded instead of "&-"
		"&AGEAYgBj-",         // printable ASCII encoded
		"&U,BTF-",            // odd number of UTF-16 bytes
		"&U,BTFw=-",          // padding
		"&U/BTFw-",           // "/" is standard base64, not modified
		"&U,BTFx-",           // non-zero padding bits
		"&U,BTFwA-",          // a sextet too many
		"&2D0-",              // lone high surrogate
		"&3gA-",              // lone low surrogate
		"&2D3YPQ-",           // high surrogate followed by high surrogate
		"&AAA",               // unterminated
		"a\x01b",             // control character
		"a\x7fb",             // DEL
		"\xff",               // not UTF-8
		"&*-",                // not base64
	} {
		if got, err := utf7Decode(s); err == nil {
			t.Errorf("utf7Decode(%q) = %q, want an error", s, got)
		}
	}
}

// TestUTF7DecodeTakesRawUTF8 keeps what the library this replaced did: IMAP4rev1 clients that
// send UTF-8 names get them.
func TestUTF7DecodeTakesRawUTF8(t *testing.T) {
	if got, err := utf7Decode("Entwürfe"); err != nil || got != "Entwürfe" {
		t.Errorf("utf7Decode(raw UTF-8) = %q, %v", got, err)
	}
}

func FuzzUTF7(f *testing.F) {
	for _, p := range utf7Pairs {
		f.Add(p.utf8)
		f.Add(p.utf7)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := utf7Encode(s)
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] > 0x7e {
				t.Fatalf("utf7Encode(%q) = %q: not printable ASCII", s, enc)
			}
		}
		if utf8.ValidString(s) {
			if dec, err := utf7Decode(enc); err != nil || dec != s {
				t.Fatalf("utf7Decode(utf7Encode(%q)) = %q, %v", s, dec, err)
			}
		}
		// A name that decodes has one spelling: encoding it again gives the input back,
		// unless the input was raw UTF-8, which is let through.
		dec, err := utf7Decode(s)
		if err == nil && dirspec.IsASCII(s) && utf7Encode(dec) != s {
			t.Fatalf("utf7Decode(%q) = %q, which encodes as %q", s, dec, utf7Encode(dec))
		}
	})
}
