package proxyproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// header is what a PROXY protocol header says about the connection.
type header struct {
	// proxied is false when the header tells us to keep the connection's own
	// addresses: v1 UNKNOWN, v2 LOCAL, and v2 families we do not translate.
	proxied  bool
	src, dst netip.AddrPort
}

const (
	v1Prefix = "PROXY "
	// v1MaxLen is the longest v1 line the specification allows, CRLF included.
	v1MaxLen = 107

	v2Signature = "\r\n\r\n\x00\r\nQUIT\n"
	v2FixedLen  = 16 // signature, version/command, family/transport, length

	v2CmdLocal = 0x0
	v2CmdProxy = 0x1

	// Family (high nibble) and transport (low nibble) byte values.
	v2Unspec      = 0x00
	v2TCP4        = 0x11
	v2UDP4        = 0x12
	v2TCP6        = 0x21
	v2UDP6        = 0x22
	v2UnixStream  = 0x31
	v2UnixDgram   = 0x32
	v2AddrLenIPv4 = 12
	v2AddrLenIPv6 = 36
)

// errNoHeader means the peer's first bytes are not a PROXY protocol header.
var errNoHeader = errors.New("connection does not start with a PROXY protocol header")

// readHeader reads one v1 or v2 header from r and nothing after it, so that
// whatever the client sent next stays buffered in r.
func readHeader(r *bufio.Reader) (header, error) {
	b, err := r.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return header{}, errors.New("connection closed before a PROXY protocol header was sent")
		}
		return header{}, err
	}
	switch b[0] {
	case v1Prefix[0]:
		return readV1(r)
	case v2Signature[0]:
		return readV2(r)
	}
	return header{}, errNoHeader
}

// readV1 reads a text header byte by byte, checking as it goes so that a
// non-header fails without waiting for more input, and never reading past the
// line's LF.
func readV1(r *bufio.Reader) (header, error) {
	line := make([]byte, 0, v1MaxLen)
	for {
		c, err := r.ReadByte()
		if err != nil {
			return header{}, fmt.Errorf("v1 header: %w", unexpectedEOF(err))
		}
		line = append(line, c)
		if len(line) <= len(v1Prefix) && c != v1Prefix[len(line)-1] {
			return header{}, errNoHeader
		}
		if c == '\n' {
			break
		}
		if len(line) == v1MaxLen {
			return header{}, fmt.Errorf("v1 header: no CRLF within %d bytes", v1MaxLen)
		}
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return header{}, errors.New("v1 header: line ends in a bare LF, not CRLF")
	}
	return parseV1(string(line[len(v1Prefix) : len(line)-2]))
}

// parseV1 parses the fields after "PROXY ", without the CRLF.
func parseV1(s string) (header, error) {
	proto, rest, _ := strings.Cut(s, " ")
	var want4 bool
	switch proto {
	case "UNKNOWN":
		// The specification tells receivers to ignore anything after UNKNOWN.
		return header{}, nil
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return header{}, fmt.Errorf("v1 header: protocol %q is not TCP4, TCP6 or UNKNOWN", proto)
	}
	f := strings.Split(rest, " ")
	if len(f) != 4 {
		return header{}, fmt.Errorf("v1 header: want %s followed by source and destination address and port separated by single spaces, got %q", proto, s)
	}
	src, err := parseV1Addr(f[0], want4)
	if err != nil {
		return header{}, fmt.Errorf("v1 header: source address: %w", err)
	}
	dst, err := parseV1Addr(f[1], want4)
	if err != nil {
		return header{}, fmt.Errorf("v1 header: destination address: %w", err)
	}
	sport, err := parseV1Port(f[2])
	if err != nil {
		return header{}, fmt.Errorf("v1 header: source port: %w", err)
	}
	dport, err := parseV1Port(f[3])
	if err != nil {
		return header{}, fmt.Errorf("v1 header: destination port: %w", err)
	}
	return header{
		proxied: true,
		src:     netip.AddrPortFrom(src, sport),
		dst:     netip.AddrPortFrom(dst, dport),
	}, nil
}

func parseV1Addr(s string, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%q has a zone", s)
	case want4 && !a.Is4():
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address but the protocol is TCP4", s)
	case !want4 && !a.Is6():
		return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address but the protocol is TCP6", s)
	}
	return a, nil
}

// parseV1Port accepts only canonical decimal: digits, no sign, no leading zero.
func parseV1Port(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
		n = n*10 + int(s[i]-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (0-65535)", s)
	}
	return uint16(n), nil
}

// readV2 reads a binary header: the fixed part, the addresses it needs, and
// skips the rest of the announced length (TLVs).
func readV2(r *bufio.Reader) (header, error) {
	var fixed [v2FixedLen]byte
	for i := range fixed {
		c, err := r.ReadByte()
		if err != nil {
			return header{}, fmt.Errorf("v2 header: %w", unexpectedEOF(err))
		}
		if i < len(v2Signature) && c != v2Signature[i] {
			return header{}, errNoHeader
		}
		fixed[i] = c
	}
	if v := fixed[12] >> 4; v != 2 {
		return header{}, fmt.Errorf("v2 header: version %d, want 2", v)
	}
	cmd, fam := fixed[12]&0x0f, fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:16]))

	addrLen := 0
	switch {
	case cmd == v2CmdLocal:
		// Health checks and the like from the proxy itself: the family and
		// address block are to be ignored.
	case cmd != v2CmdProxy:
		return header{}, fmt.Errorf("v2 header: command %#x is neither LOCAL nor PROXY", cmd)
	case fam == v2TCP4:
		addrLen = v2AddrLenIPv4
	case fam == v2TCP6:
		addrLen = v2AddrLenIPv6
	case fam == v2Unspec, fam == v2UDP4, fam == v2UDP6, fam == v2UnixStream, fam == v2UnixDgram:
		// Valid but not translatable to TCP addresses; the specification
		// says to fall back to the real connection endpoints.
	default:
		return header{}, fmt.Errorf("v2 header: address family and transport byte %#02x is not defined", fam)
	}
	if n < addrLen {
		return header{}, fmt.Errorf("v2 header: length %d is shorter than the %d-byte address block", n, addrLen)
	}

	var addr [v2AddrLenIPv6]byte
	if _, err := io.ReadFull(r, addr[:addrLen]); err != nil {
		return header{}, fmt.Errorf("v2 header: %w", unexpectedEOF(err))
	}
	if _, err := r.Discard(n - addrLen); err != nil {
		return header{}, fmt.Errorf("v2 header: %w", unexpectedEOF(err))
	}

	switch addrLen {
	case v2AddrLenIPv4:
		return header{
			proxied: true,
			src:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[0:4])), binary.BigEndian.Uint16(addr[8:10])),
			dst:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[4:8])), binary.BigEndian.Uint16(addr[10:12])),
		}, nil
	case v2AddrLenIPv6:
		return header{
			proxied: true,
			src:     netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[0:16])), binary.BigEndian.Uint16(addr[32:34])),
			dst:     netip.AddrPortFrom(netip.AddrFrom16([16]byte(addr[16:32])), binary.BigEndian.Uint16(addr[34:36])),
		}, nil
	}
	return header{}, nil
}

// unexpectedEOF turns io.EOF into io.ErrUnexpectedEOF: once the header has
// started, running out of input means it was truncated.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
