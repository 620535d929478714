// Package passwordhash is the password hash format of the directory: what the operator writes
// (argon2id, full strength for passwords people choose, cheap for the random ones it generates)
// and what the mail server verifies (argon2id and bcrypt). Only hashes ever reach the servers.
package passwordhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Parameters of the argon2id hashes Hash produces. Every IMAP, SMTP and POP3 login verifies one,
// so they follow the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane) rather than
// something that would make a burst of logins exhaust the pod's memory: 100 concurrent logins
// cost about 2 GiB. Verify reads the parameters from each hash, so raising these later only
// affects new hashes.
const (
	Argon2Memory  uint32 = 19456 // KiB
	Argon2Time    uint32 = 2
	Argon2Threads uint8  = 1
	Argon2SaltLen        = 16 // bytes
	Argon2KeyLen         = 32 // bytes
)

// Parameters of the argon2id hashes HashGenerated produces: the cheapest the operator could
// reasonably choose, t=1 pass over 64 KiB (a fraction of a millisecond instead of tens of
// milliseconds). They are only for passwords drawn from a CSPRNG with at least 128 bits of
// entropy: guessing such a password offline takes about 2^127 attempts whatever each one costs,
// so a slow hash adds nothing to it, while hashing 10,000 generated passwords at full strength
// would keep the operator busy for minutes. Logins with such a password are cheap for the server
// too.
const (
	GeneratedArgon2Memory uint32 = 64 // KiB
	GeneratedArgon2Time   uint32 = 1
)

// Limits on the cost of a hash Verify will compute. The directory is input: a hash with
// m=4194304 or bcrypt cost 31 would let whoever can write it pin the server's memory or CPU on
// every login attempt for that account, so such hashes are rejected instead of computed.
const (
	MaxArgon2Memory  uint32 = 256 * 1024 // KiB, 256 MiB
	MaxArgon2Time    uint32 = 10
	MaxArgon2Threads uint32 = 16
	MaxBcryptCost           = 14 // about a second per verification on current hardware
)

// Salt and output bounds for argon2id hashes. The reference implementation requires at least
// 8 bytes of salt; outputs shorter than 16 bytes make a random password match more likely than
// we accept. The upper bounds only keep parsing and comparison cheap.
const (
	minArgon2SaltLen = 8
	maxArgon2SaltLen = 64
	minArgon2KeyLen  = 16
	maxArgon2KeyLen  = 128

	// maxHashLen bounds the input before any parsing; a well-formed hash with maximal salt and
	// output is well under this.
	maxHashLen = 512
)

// Errors Verify and ValidateHash wrap, so a caller can tell a directory problem (fix the hash)
// from a wrong password (false, nil).
var (
	// ErrUnknownScheme: the value is not an argon2id or bcrypt hash, for example a plain-text
	// password or an MD5-crypt hash.
	ErrUnknownScheme = errors.New("password hash scheme not supported")
	// ErrMalformedHash: the scheme is known but the hash does not parse.
	ErrMalformedHash = errors.New("malformed password hash")
	// ErrExcessiveCost: the hash parses but verifying it would cost more than the limits above.
	ErrExcessiveCost = errors.New("password hash too expensive to verify")
)

const argon2idPrefix = "$argon2id$"

// argon2Params is a parsed PHC argon2id string.
type argon2Params struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// Hash returns a PHC-format argon2id hash of password with a fresh random salt, in the same
// encoding as the reference implementation:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
func Hash(password string) (string, error) {
	return hashArgon2id(password, Argon2Memory, Argon2Time)
}

// HashGenerated is Hash with the much cheaper GeneratedArgon2Memory and GeneratedArgon2Time,
// for a password that was generated at random with at least 128 bits of entropy and that no
// person chose. Never use it for a password a person typed or picked: for those the cost of
// each guess is what protects them. Verify checks both kinds alike.
//
//	$argon2id$v=19$m=64,t=1,p=1$<salt>$<hash>
func HashGenerated(password string) (string, error) {
	return hashArgon2id(password, GeneratedArgon2Memory, GeneratedArgon2Time)
}

func hashArgon2id(password string, memory, passes uint32) (string, error) {
	salt := make([]byte, Argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, passes, memory, Argon2Threads, Argon2KeyLen)
	return formatArgon2id(argon2Params{
		memory:  memory,
		time:    passes,
		threads: Argon2Threads,
		salt:    salt,
		key:     key,
	}), nil
}

func formatArgon2id(p argon2Params) string {
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s", argon2idPrefix, argon2.Version,
		p.memory, p.time, p.threads,
		base64.RawStdEncoding.EncodeToString(p.salt),
		base64.RawStdEncoding.EncodeToString(p.key))
}

// Verify reports whether password matches hash, an argon2id (PHC) or bcrypt ($2a$, $2b$, $2y$)
// hash. A wrong password is (false, nil). An error means the hash itself is unusable — plain
// text, an unknown scheme, malformed, or too expensive — and wraps ErrUnknownScheme,
// ErrMalformedHash or ErrExcessiveCost; the error never contains the hash or the password.
// The final comparison takes constant time.
func Verify(hash, password string) (bool, error) {
	switch scheme, err := parseScheme(hash); {
	case err != nil:
		return false, err
	case scheme == schemeArgon2id:
		p, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return subtle.ConstantTimeCompare(key, p.key) == 1, nil
	default:
		if err := checkBcrypt(hash); err != nil {
			return false, err
		}
		// bcrypt compares in constant time itself. Like other bcrypt implementations it only
		// looks at the first 72 bytes of the password.
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, fmt.Errorf("%w: bcrypt: %v", ErrMalformedHash, err)
		}
	}
}

// ValidateHash checks that Verify can use hash, without computing it. Use it when loading a
// directory so a bad entry is reported once, with the account it belongs to, instead of as a
// failed login.
func ValidateHash(hash string) error {
	scheme, err := parseScheme(hash)
	if err != nil {
		return err
	}
	if scheme == schemeArgon2id {
		_, err = parseArgon2id(hash)
		return err
	}
	return checkBcrypt(hash)
}

type scheme int

const (
	schemeArgon2id scheme = iota
	schemeBcrypt
)

func parseScheme(hash string) (scheme, error) {
	if len(hash) > maxHashLen {
		return 0, fmt.Errorf("%w: %d bytes long, longer than any supported hash", ErrMalformedHash, len(hash))
	}
	switch {
	case strings.HasPrefix(hash, argon2idPrefix):
		return schemeArgon2id, nil
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return schemeBcrypt, nil
	}
	const want = "want argon2id ($argon2id$...) or bcrypt ($2a$, $2b$, $2y$)"
	if !strings.HasPrefix(hash, "$") {
		// Likely a plain-text password: say so without echoing any of it.
		return 0, fmt.Errorf("%w: not a crypt-style hash (plain text?); %s", ErrUnknownScheme, want)
	}
	if id, _, ok := strings.Cut(hash[1:], "$"); ok && isSchemeID(id) {
		return 0, fmt.Errorf("%w: scheme %q; %s", ErrUnknownScheme, id, want)
	}
	return 0, fmt.Errorf("%w: unrecognised scheme; %s", ErrUnknownScheme, want)
}

// isSchemeID reports whether s looks like a PHC/crypt scheme identifier, which is safe to put in
// an error message (unlike arbitrary text that might be a password).
func isSchemeID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseArgon2id parses $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash> strictly, in the field
// order the reference implementation writes, and enforces the cost limits.
func parseArgon2id(hash string) (argon2Params, error) {
	bad := func(format string, args ...any) (argon2Params, error) {
		return argon2Params{}, fmt.Errorf("%w: argon2id: "+format, append([]any{ErrMalformedHash}, args...)...)
	}
	fields := strings.Split(strings.TrimPrefix(hash, argon2idPrefix), "$")
	if len(fields) == 3 && strings.HasPrefix(fields[0], "m=") {
		// The reference implementation reads a missing version as 1.0 (v=16).
		return bad("no version field: only v=%d is supported", argon2.Version)
	}
	if len(fields) != 4 {
		return bad("want $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>")
	}
	version, ok := strings.CutPrefix(fields[0], "v=")
	if !ok {
		return bad("missing version field v=%d", argon2.Version)
	}
	if v, err := parseDecimal(version); err != nil || v != argon2.Version {
		return bad("unsupported version, want v=%d", argon2.Version)
	}

	params := strings.Split(fields[1], ",")
	if len(params) != 3 {
		return bad("want parameters m=<KiB>,t=<passes>,p=<lanes>")
	}
	var m, t, p uint32
	for i, dst := range []*uint32{&m, &t, &p} {
		name := [...]string{"m", "t", "p"}[i]
		value, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return bad("parameter %d is not %s=", i+1, name)
		}
		n, err := parseDecimal(value)
		if err != nil {
			return bad("parameter %s: %v", name, err)
		}
		*dst = n
	}
	switch {
	case t < 1:
		return bad("t=%d, must be at least 1", t)
	case p < 1:
		return bad("p=%d, must be at least 1", p)
	case uint64(m) < 8*uint64(p):
		return bad("m=%d KiB, must be at least 8*p", m)
	}
	excessive := func(format string, args ...any) (argon2Params, error) {
		return argon2Params{}, fmt.Errorf("%w: argon2id "+format+"; rehash the password", append([]any{ErrExcessiveCost}, args...)...)
	}
	switch {
	case m > MaxArgon2Memory:
		return excessive("m=%d KiB exceeds the limit of %d KiB", m, MaxArgon2Memory)
	case t > MaxArgon2Time:
		return excessive("t=%d exceeds the limit of %d", t, MaxArgon2Time)
	case p > MaxArgon2Threads:
		return excessive("p=%d exceeds the limit of %d", p, MaxArgon2Threads)
	}

	salt, err := decodeBase64(fields[2])
	if err != nil {
		return bad("salt: %v", err)
	}
	if len(salt) < minArgon2SaltLen || len(salt) > maxArgon2SaltLen {
		return bad("salt is %d bytes, want %d to %d", len(salt), minArgon2SaltLen, maxArgon2SaltLen)
	}
	key, err := decodeBase64(fields[3])
	if err != nil {
		return bad("hash: %v", err)
	}
	if len(key) < minArgon2KeyLen || len(key) > maxArgon2KeyLen {
		return bad("hash is %d bytes, want %d to %d", len(key), minArgon2KeyLen, maxArgon2KeyLen)
	}
	return argon2Params{memory: m, time: t, threads: uint8(p), salt: salt, key: key}, nil
}

// parseDecimal parses a PHC decimal: digits only, no sign, no leading zeros, fits in 32 bits.
func parseDecimal(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("number out of range")
	}
	return uint32(n), nil
}

// decodeBase64 decodes unpadded standard base64 as the reference implementation writes it. The
// standard decoder skips CR and LF; a hash containing them is not what anyone meant to store.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("contains a line break")
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errors.New("invalid base64")
	}
	return b, nil
}

// checkBcrypt validates the modular crypt form $2?$NN$<22 salt chars><31 hash chars> and the
// cost limit. x/crypto/bcrypt parses leniently (any trailing length, any minor version letter),
// so the shape is checked here.
func checkBcrypt(hash string) error {
	const bcryptLen = 60
	if len(hash) != bcryptLen {
		return fmt.Errorf("%w: bcrypt: %d characters, want %d", ErrMalformedHash, len(hash), bcryptLen)
	}
	if hash[6] != '$' {
		return fmt.Errorf("%w: bcrypt: want $2b$<two-digit cost>$<53 characters>", ErrMalformedHash)
	}
	cost, err := parseDecimal(strings.TrimPrefix(hash[4:6], "0"))
	if err != nil || cost < uint32(bcrypt.MinCost) {
		return fmt.Errorf("%w: bcrypt: cost must be two digits from %02d to %02d", ErrMalformedHash, bcrypt.MinCost, MaxBcryptCost)
	}
	if cost > uint32(MaxBcryptCost) {
		return fmt.Errorf("%w: bcrypt cost %d exceeds the limit of %d; rehash the password", ErrExcessiveCost, cost, MaxBcryptCost)
	}
	for _, c := range hash[7:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '/') {
			return fmt.Errorf("%w: bcrypt: salt and hash must be in the bcrypt base64 alphabet", ErrMalformedHash)
		}
	}
	return nil
}
