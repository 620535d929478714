package passwordhash

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// hashWith fills in p.key for password, for hashes with parameters Hash does not produce.
func hashWith(p argon2Params, password string) argon2Params {
	p.key = argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, 32)
	return p
}

func TestHashRoundTrip(t *testing.T) {
	for _, password := range []string{"correct horse battery staple", "", "pässwörd ✉", strings.Repeat("x", 200)} {
		hash, err := Hash(password)
		if err != nil {
			t.Fatalf("Hash: %v", err)
		}
		want := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
		if !want.MatchString(hash) {
			t.Fatalf("Hash(%q) = %q, not a PHC argon2id string with the default parameters", password, hash)
		}
		if err := ValidateHash(hash); err != nil {
			t.Errorf("ValidateHash(Hash(%q)): %v", password, err)
		}
		if ok, err := Verify(hash, password); !ok || err != nil {
			t.Errorf("Verify(Hash(%q), same) = %v, %v; want true, nil", password, ok, err)
		}
		if ok, err := Verify(hash, password+"x"); ok || err != nil {
			t.Errorf("Verify(Hash(%q), other) = %v, %v; want false, nil", password, ok, err)
		}
	}
}

func TestHashGenerated(t *testing.T) {
	password := "q8Zr3nV_k2LxT0pWc9YbHfAe" // as the operator generates them: 18 random bytes
	hash, err := HashGenerated(password)
	if err != nil {
		t.Fatalf("HashGenerated: %v", err)
	}
	want := regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !want.MatchString(hash) {
		t.Fatalf("HashGenerated = %q, not a PHC argon2id string with the cheap parameters", hash)
	}
	if err := ValidateHash(hash); err != nil {
		t.Errorf("ValidateHash(HashGenerated(...)): %v", err)
	}
	if ok, err := Verify(hash, password); !ok || err != nil {
		t.Errorf("Verify(HashGenerated(p), p) = %v, %v; want true, nil", ok, err)
	}
	if ok, err := Verify(hash, password[:len(password)-1]+"x"); ok || err != nil {
		t.Errorf("Verify(HashGenerated(p), other) = %v, %v; want false, nil", ok, err)
	}
	if again, _ := HashGenerated(password); again == hash {
		t.Error("two HashGenerated hashes of the same password are identical: salt is not random")
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	a, _ := Hash("same")
	b, _ := Hash("same")
	if a == b {
		t.Fatalf("two hashes of the same password are identical (%q): salt is not random", a)
	}
}

// Hashes written by other implementations must verify, or a migrated directory locks everyone
// out.
func TestVerifyReferenceVectors(t *testing.T) {
	tests := []struct{ hash, password string }{
		// phc-winner-argon2 reference implementation, argon2id, m=64 MiB.
		{"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "password"},
		// Openwall crypt_blowfish / OpenBSD vectors; $2b$ and $2y$ name the same algorithm.
		{"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"},
		{"$2b$04$VvlCUKbTMjaxaYJ.k5juoecpG/7IzcH1AkmqKi.lIZMVIOLClWAk.", "J8eHUDuxBB520"},
	}
	for _, tt := range tests {
		if ok, err := Verify(tt.hash, tt.password); !ok || err != nil {
			t.Errorf("Verify(%q, %q) = %v, %v; want true, nil", tt.hash, tt.password, ok, err)
		}
		if ok, err := Verify(tt.hash, tt.password+"!"); ok || err != nil {
			t.Errorf("Verify(%q, wrong) = %v, %v; want false, nil", tt.hash, ok, err)
		}
	}
}

func TestVerifyBcrypt(t *testing.T) {
	raw, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := prefix + string(raw[4:])
		if err := ValidateHash(hash); err != nil {
			t.Errorf("ValidateHash(%s...): %v", prefix, err)
		}
		if ok, err := Verify(hash, "s3cret"); !ok || err != nil {
			t.Errorf("Verify(%s..., right) = %v, %v; want true, nil", prefix, ok, err)
		}
		if ok, err := Verify(hash, "S3cret"); ok || err != nil {
			t.Errorf("Verify(%s..., wrong) = %v, %v; want false, nil", prefix, ok, err)
		}
	}
}

func TestVerifyRejectsUnusableHashes(t *testing.T) {
	const (
		salt = "c29tZXNhbHQ"                                 // 8 bytes
		key  = "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc" // 32 bytes
	)
	argon := func(version, params string) string {
		return "$argon2id$" + version + "$" + params + "$" + salt + "$" + key
	}
	bcryptHash := "$2b$04$VvlCUKbTMjaxaYJ.k5juoecpG/7IzcH1AkmqKi.lIZMVIOLClWAk."
	tests := []struct {
		name, hash string
		want       error
		mention    string // the error must say this, so whoever fixes the directory knows what
	}{
		{"plain text", "hunter2", ErrUnknownScheme, "plain text"},
		{"empty", "", ErrUnknownScheme, "plain text"},
		{"ldap ssha", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", ErrUnknownScheme, "plain text"},
		{"md5-crypt", "$1$saltsalt$2vnaRpHa6Jxjz5n83ok8Z0", ErrUnknownScheme, `"1"`},
		{"sha512-crypt", "$6$rounds=5000$salt$hash", ErrUnknownScheme, `"6"`},
		{"argon2i", "$argon2i$v=19$m=65536,t=2,p=1$" + salt + "$" + key, ErrUnknownScheme, `"argon2i"`},
		{"bcrypt 2x", "$2x" + bcryptHash[3:], ErrUnknownScheme, `"2x"`},
		{"dollar then password", "$hunter2 is my password", ErrUnknownScheme, "unrecognised scheme"},

		{"argon2 too few fields", "$argon2id$v=19$m=65536,t=2,p=1$" + salt, ErrMalformedHash, "want $argon2id$"},
		{"argon2 extra field", argon("v=19", "m=65536,t=2,p=1") + "$x", ErrMalformedHash, "want $argon2id$"},
		{"argon2 no version", "$argon2id$m=65536,t=2,p=1$" + salt + "$" + key, ErrMalformedHash, "version"},
		{"argon2 version 16", argon("v=16", "m=65536,t=2,p=1"), ErrMalformedHash, "version"},
		{"argon2 params reordered", argon("v=19", "t=2,m=65536,p=1"), ErrMalformedHash, "m="},
		{"argon2 keyid param", argon("v=19", "m=65536,t=2,p=1,keyid=x"), ErrMalformedHash, "parameters"},
		{"argon2 t=0", argon("v=19", "m=65536,t=0,p=1"), ErrMalformedHash, "t=0"},
		{"argon2 p=0", argon("v=19", "m=65536,t=2,p=0"), ErrMalformedHash, "p=0"},
		{"argon2 m below 8p", argon("v=19", "m=15,t=2,p=2"), ErrMalformedHash, "m=15"},
		{"argon2 leading zero", argon("v=19", "m=065536,t=2,p=1"), ErrMalformedHash, "leading zero"},
		{"argon2 sign", argon("v=19", "m=+65536,t=2,p=1"), ErrMalformedHash, "not a decimal"},
		{"argon2 overflow", argon("v=19", "m=4294967296,t=2,p=1"), ErrMalformedHash, "out of range"},
		{"argon2 bad salt", "$argon2id$v=19$m=65536,t=2,p=1$c29t*XNhbHQ$" + key, ErrMalformedHash, "salt"},
		{"argon2 padded salt", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$" + key, ErrMalformedHash, "salt"},
		{"argon2 short salt", "$argon2id$v=19$m=65536,t=2,p=1$c29tZQ$" + key, ErrMalformedHash, "salt is 4 bytes"},
		{"argon2 short hash", "$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$CTFhFdXPJO1a", ErrMalformedHash, "hash is 9 bytes"},
		{"argon2 newline in hash", "$argon2id$v=19$m=65536,t=2,p=1$" + salt + "$CTFhFdXPJO1aFaMaO6Mm5c8y7cJH\nAph8ArZWb2GRPPc", ErrMalformedHash, "line break"},
		{"huge input", "$argon2id$" + strings.Repeat("A", 10000), ErrMalformedHash, "longer than any"},

		{"argon2 m over cap", argon("v=19", "m=262145,t=2,p=1"), ErrExcessiveCost, "m=262145 KiB exceeds the limit of 262144 KiB"},
		{"argon2 m 4 GiB", argon("v=19", "m=4194304,t=1,p=1"), ErrExcessiveCost, "m=4194304"},
		{"argon2 t over cap", argon("v=19", "m=65536,t=11,p=1"), ErrExcessiveCost, "t=11"},
		{"argon2 p over cap", argon("v=19", "m=65536,t=2,p=17"), ErrExcessiveCost, "p=17"},
		{"argon2 p not a byte", argon("v=19", "m=65536,t=2,p=257"), ErrExcessiveCost, "p=257"},

		{"bcrypt truncated", bcryptHash[:59], ErrMalformedHash, "59 characters"},
		{"bcrypt cost 03", "$2b$03" + bcryptHash[6:], ErrMalformedHash, "cost"},
		{"bcrypt cost letters", "$2b$ab" + bcryptHash[6:], ErrMalformedHash, "cost"},
		{"bcrypt no separator", "$2b$04x" + bcryptHash[7:], ErrMalformedHash, "two-digit cost"},
		{"bcrypt bad alphabet", bcryptHash[:40] + "+" + bcryptHash[41:], ErrMalformedHash, "alphabet"},
		{"bcrypt cost 15", "$2b$15" + bcryptHash[6:], ErrExcessiveCost, "cost 15 exceeds the limit of 14"},
		{"bcrypt cost 31", "$2b$31" + bcryptHash[6:], ErrExcessiveCost, "cost 31"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify(tt.hash, "password")
			if ok || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, %v; want false, %v", ok, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if verr := ValidateHash(tt.hash); verr == nil || verr.Error() != err.Error() {
				t.Errorf("ValidateHash = %v; want the same error as Verify (%v)", verr, err)
			}
		})
	}
}

// Whatever the directory holds may be a password typed into the wrong field; errors end up in
// logs and conditions, so they must not repeat it.
func TestErrorsDoNotEchoTheValue(t *testing.T) {
	for _, value := range []string{
		"Tr0ub4dor&3",
		"$Tr0ub4dor&3",
		"$argon2id$v=19$m=65536,t=2,p=1$Tr0ub4dor&3",
		"$2b$04$Tr0ub4dor&3",
	} {
		err := ValidateHash(value)
		if err == nil {
			t.Fatalf("ValidateHash(%q) accepted it", value)
		}
		if strings.Contains(err.Error(), "Tr0ub4dor") {
			t.Errorf("ValidateHash(%q) error repeats the value: %v", value, err)
		}
	}
}

// Parameters other than our defaults, at the edge of the limits, still verify.
func TestVerifyOtherParameters(t *testing.T) {
	for _, p := range []argon2Params{
		{memory: 64, time: 1, threads: 8},
		{memory: 1024, time: MaxArgon2Time, threads: 4},
		{memory: 8 * 16, time: 1, threads: uint8(MaxArgon2Threads)},
	} {
		p.salt = []byte("0123456789abcdef")
		p.key = nil
		hash := formatArgon2id(hashWith(p, "pw"))
		if ok, err := Verify(hash, "pw"); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", hash, ok, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	good, err := Hash("password")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		good,
		"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"$argon2id$v=19$m=0,t=0,p=0$$",
		"$argon2id$v=19$m=,t=,p=$$",
		"$argon2id$$$$$",
		"$argon2id$v=19$m=4294967295,t=4294967295,p=4294967295$c29tZXNhbHQ$CTFhFdXPJO1a",
		"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
		"$2y$04$" + strings.Repeat(".", 53),
		"$2b$99$" + strings.Repeat("x", 53),
		"$2b$",
		"$",
		"$$",
		"plain",
		"",
	} {
		f.Add(seed, "password")
	}
	f.Fuzz(func(t *testing.T, hash, password string) {
		// Computing a valid but costly hash is correct behaviour, just slow for a fuzzer: parse
		// those without computing them.
		if p, err := parseArgon2id(hash); err == nil && (p.memory > 1024 || p.time > 2) {
			_ = ValidateHash(hash)
			return
		}
		if strings.HasPrefix(hash, "$2") && len(hash) > 6 && hash[4:6] > "06" {
			_ = ValidateHash(hash)
			return
		}
		ok, err := Verify(hash, password)
		if ok && err != nil {
			t.Fatalf("Verify(%q) = true with error %v", hash, err)
		}
		if verr := ValidateHash(hash); (verr == nil) != (err == nil) {
			t.Fatalf("ValidateHash(%q) = %v but Verify error = %v", hash, verr, err)
		}
	})
}

func BenchmarkVerifyArgon2id(b *testing.B) {
	hash, err := Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := Verify(hash, "correct horse battery staple"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

func BenchmarkVerifyBcrypt10(b *testing.B) {
	raw, err := bcrypt.GenerateFromPassword([]byte("correct horse battery staple"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := Verify(string(raw), "correct horse battery staple"); !ok || err != nil {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

func ExampleVerify() {
	hash, _ := Hash("s3cret")
	ok, err := Verify(hash, "s3cret")
	fmt.Println(ok, err)
	_, err = Verify("s3cret", "s3cret")
	fmt.Println(err)
	// Output:
	// true <nil>
	// password hash scheme not supported: not a crypt-style hash (plain text?); want argon2id ($argon2id$...) or bcrypt ($2a$, $2b$, $2y$)
}
