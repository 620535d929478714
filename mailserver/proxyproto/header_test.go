package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// v2Header builds a binary header with the given command, family/transport
// byte and payload (address block followed by any TLVs).
func v2Header(cmd, fam byte, payload []byte) []byte {
	b := []byte(v2Signature)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// v2Addrs encodes src and dst as a v2 address block, IPv4 if both are IPv4.
func v2Addrs(src, dst netip.AddrPort) (fam byte, block []byte) {
	if src.Addr().Is4() && dst.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		block = append(append(block, s[:]...), d[:]...)
		fam = v2TCP4
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		block = append(append(block, s[:]...), d[:]...)
		fam = v2TCP6
	}
	block = binary.BigEndian.AppendUint16(block, src.Port())
	block = binary.BigEndian.AppendUint16(block, dst.Port())
	return fam, block
}

func v2Proxy(src, dst string, tlvs ...byte) []byte {
	fam, block := v2Addrs(netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst))
	return v2Header(v2CmdProxy, fam, append(block, tlvs...))
}

// A TLV as load balancers send them: PP2_TYPE_AUTHORITY then a NOOP.
var sampleTLVs = []byte{0x02, 0x00, 0x10, 'm', 'x', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', '.', '.', 0x04, 0x00, 0x02, 0, 0}

type parseCase struct {
	name    string
	in      string
	want    header // compared when wantErr is empty
	wantErr string // substring of the error
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

var parseCases = []parseCase{
	{name: "v1 TCP4", in: "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n",
		want: header{proxied: true, src: ap("192.0.2.10:56324"), dst: ap("198.51.100.1:25")}},
	{name: "v1 TCP6", in: "PROXY TCP6 2001:db8::10 2001:db8::1 65535 0\r\n",
		want: header{proxied: true, src: ap("[2001:db8::10]:65535"), dst: ap("[2001:db8::1]:0")}},
	{name: "v1 TCP6 longest line", in: "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		want: header{proxied: true, src: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), dst: ap("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")}},
	{name: "v1 UNKNOWN", in: "PROXY UNKNOWN\r\n"},
	{name: "v1 UNKNOWN with ignored rest", in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"},
	{name: "v1 line of 107 bytes", in: "PROXY UNKNOWN " + strings.Repeat("x", 91) + "\r\n"},
	{name: "v1 line of 108 bytes", in: "PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n", wantErr: "no CRLF within 107 bytes"},
	{name: "v1 endless line", in: "PROXY TCP4 " + strings.Repeat("1", 4000), wantErr: "no CRLF within 107 bytes"},
	{name: "v1 bad IPv4", in: "PROXY TCP4 192.0.2.256 198.51.100.1 56324 25\r\n", wantErr: `source address: "192.0.2.256" is not an IP address`},
	{name: "v1 IPv4 with leading zero", in: "PROXY TCP4 192.0.2.010 198.51.100.1 56324 25\r\n", wantErr: "is not an IP address"},
	{name: "v1 IPv6 in TCP4", in: "PROXY TCP4 2001:db8::1 198.51.100.1 56324 25\r\n", wantErr: "not an IPv4 address"},
	{name: "v1 IPv4 in TCP6", in: "PROXY TCP6 2001:db8::1 198.51.100.1 56324 25\r\n", wantErr: "destination address: \"198.51.100.1\" is not an IPv6"},
	{name: "v1 zone", in: "PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 25\r\n", wantErr: "has a zone"},
	{name: "v1 port too big", in: "PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n", wantErr: `source port: "65536"`},
	{name: "v1 port leading zero", in: "PROXY TCP4 192.0.2.10 198.51.100.1 56324 025\r\n", wantErr: `destination port: "025"`},
	{name: "v1 port with sign", in: "PROXY TCP4 192.0.2.10 198.51.100.1 +5 25\r\n", wantErr: "not a port number"},
	{name: "v1 double space", in: "PROXY TCP4 192.0.2.10  198.51.100.1 56324 25\r\n", wantErr: "single spaces"},
	{name: "v1 trailing space", in: "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25 \r\n", wantErr: "single spaces"},
	{name: "v1 missing port", in: "PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n", wantErr: "single spaces"},
	{name: "v1 bare LF", in: "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\n", wantErr: "bare LF"},
	{name: "v1 lower case", in: "PROXY tcp4 192.0.2.10 198.51.100.1 56324 25\r\n", wantErr: `protocol "tcp4"`},
	{name: "v1 UDP", in: "PROXY UDP4 192.0.2.10 198.51.100.1 56324 25\r\n", wantErr: "is not TCP4"},
	{name: "v1 truncated", in: "PROXY TCP4 192.0.2.10 198.5", wantErr: "unexpected EOF"},
	{name: "not PROXY", in: "EHLO client.example.com\r\n", wantErr: "does not start with a PROXY protocol header"},
	{name: "PROXY without space", in: "PROXYTCP4 192.0.2.10\r\n", wantErr: "does not start with a PROXY protocol header"},
	{name: "empty", in: "", wantErr: "closed before"},

	{name: "v2 IPv4", in: string(v2Proxy("192.0.2.10:56324", "198.51.100.1:25")),
		want: header{proxied: true, src: ap("192.0.2.10:56324"), dst: ap("198.51.100.1:25")}},
	{name: "v2 IPv6 with TLVs", in: string(v2Proxy("[2001:db8::10]:40000", "[2001:db8::1]:993", sampleTLVs...)),
		want: header{proxied: true, src: ap("[2001:db8::10]:40000"), dst: ap("[2001:db8::1]:993")}},
	{name: "v2 LOCAL", in: string(v2Header(v2CmdLocal, v2Unspec, nil))},
	{name: "v2 LOCAL ignores family and addresses", in: string(v2Header(v2CmdLocal, v2TCP4, []byte{1, 2, 3}))},
	{name: "v2 PROXY UNSPEC", in: string(v2Header(v2CmdProxy, v2Unspec, sampleTLVs))},
	{name: "v2 PROXY unix falls back", in: string(v2Header(v2CmdProxy, v2UnixStream, make([]byte, 216)))},
	{name: "v2 version 1", in: string(append([]byte(v2Signature), 0x11, v2TCP4, 0, 0)), wantErr: "version 1"},
	{name: "v2 unknown command", in: string(append([]byte(v2Signature), 0x22, v2TCP4, 0, 0)), wantErr: "command 0x2"},
	{name: "v2 undefined family", in: string(v2Header(v2CmdProxy, 0x41, make([]byte, 12))), wantErr: "0x41 is not defined"},
	{name: "v2 length short of IPv4 block", in: string(v2Header(v2CmdProxy, v2TCP4, make([]byte, 11))), wantErr: "shorter than the 12-byte"},
	{name: "v2 length short of IPv6 block", in: string(v2Header(v2CmdProxy, v2TCP6, make([]byte, 12))), wantErr: "shorter than the 36-byte"},
	{name: "v2 bad signature", in: "\r\n\r\n\x00\r\nQUIT\r" + "\x21\x11\x00\x0c" + strings.Repeat("\x00", 12), wantErr: "does not start with a PROXY protocol header"},
	{name: "v2 truncated fixed part", in: v2Signature + "\x21\x11", wantErr: "unexpected EOF"},
	{name: "v2 truncated addresses", in: string(v2Proxy("192.0.2.10:56324", "198.51.100.1:25")[:20]), wantErr: "unexpected EOF"},
	{name: "v2 truncated TLVs", in: string(v2Proxy("192.0.2.10:56324", "198.51.100.1:25", sampleTLVs...)[:30]), wantErr: "unexpected EOF"},
}

func TestReadHeader(t *testing.T) {
	const after = "EHLO client.example.com\r\n"
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in + after))
			if tc.wantErr != "" {
				// Without trailing data, so truncation is seen as such.
				r = bufio.NewReader(strings.NewReader(tc.in))
			}
			got, err := readHeader(r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readHeader(%q) = %+v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readHeader(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("readHeader(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != after {
				t.Errorf("after the header the reader holds %q, want %q", rest, after)
			}
		})
	}
}

// FuzzParseHeader checks that the parser never panics, never consumes more
// than the header, and that what it accepts means the same when re-encoded.
func FuzzParseHeader(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.in))
		f.Add([]byte(tc.in + "QUIT\r\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		h, err := readHeader(r)
		rest, _ := io.ReadAll(r)
		if err != nil {
			return
		}
		consumed := len(data) - len(rest)
		if !bytes.Equal(rest, data[consumed:]) {
			t.Fatalf("bytes after the header changed: %q, want %q", rest, data[consumed:])
		}
		if data[0] == 'P' && consumed > v1MaxLen {
			t.Fatalf("v1 header of %d bytes accepted", consumed)
		}
		if !h.proxied {
			if h != (header{}) {
				t.Fatalf("non-proxied header carries addresses: %+v", h)
			}
			return
		}
		if !h.src.IsValid() || !h.dst.IsValid() || h.src.Addr().Zone() != "" || h.src.Addr().Is4() != h.dst.Addr().Is4() {
			t.Fatalf("accepted unusable addresses: %+v", h)
		}
		proto := "TCP6"
		if h.src.Addr().Is4() {
			proto = "TCP4"
		}
		v1 := fmt.Sprintf("PROXY %s %s %s %d %d\r\n", proto, h.src.Addr(), h.dst.Addr(), h.src.Port(), h.dst.Port())
		for _, enc := range [][]byte{[]byte(v1), v2Proxy(h.src.String(), h.dst.String())} {
			again, err := readHeader(bufio.NewReader(bytes.NewReader(enc)))
			if err != nil || again != h {
				t.Fatalf("re-encoded %+v as %q, parsed back as %+v, %v", h, enc, again, err)
			}
		}
	})
}
