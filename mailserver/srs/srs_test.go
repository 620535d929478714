package srs

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newAt(t *testing.T, domain string, day int64, secrets ...string) *SRS {
	t.Helper()
	s, err := New(domain, secrets)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Unix(day*86400+3600, 0) }
	return s
}

func TestForwardAndReverse(t *testing.T) {
	s := newAt(t, "fwd.example", 20000, "a-long-enough-secret")
	got, err := s.Forward("Alice.Smith@Origin.example")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=Origin\.example=Alice\.Smith@fwd\.example$`).MatchString(got) {
		t.Fatalf("rewritten %q", got)
	}
	orig, ok, err := s.Reverse(got)
	if !ok || err != nil || orig != "Alice.Smith@Origin.example" {
		t.Fatalf("reverse: %q %v %v", orig, ok, err)
	}
	// Hash compared without case: some MTAs lowercase local parts.
	if orig, ok, err := s.Reverse(strings.ToLower(got)); !ok || err != nil || !strings.EqualFold(orig, "alice.smith@origin.example") {
		t.Fatalf("lowercased: %q %v %v", orig, ok, err)
	}
}

func TestKnownVector(t *testing.T) {
	// Day 20000 mod 1024 = 544 = 17*32 + 0, so the timestamp is "RA". The hash is
	// base64(HMAC-SHA1("secret-secret-secret", "raexample.orguser"))[:4], computed
	// independently (Python's hmac module), as libsrs2 and postsrsd compute it.
	s := newAt(t, "fwd.example", 20000, "secret-secret-secret")
	got, _ := s.Forward("user@example.org")
	if got != "SRS0=MQXa=RA=example.org=user@fwd.example" {
		t.Fatalf("%q", got)
	}
}

func TestRejectsForgedAndExpired(t *testing.T) {
	s := newAt(t, "fwd.example", 20000, "a-long-enough-secret")
	good, _ := s.Forward("alice@origin.example")
	forged := strings.Replace(good, "alice@", "mallory@", 1)
	forged = strings.Replace(forged, "=alice", "=mallory", 1)
	if _, ok, err := s.Reverse(forged); !ok || !errors.Is(err, ErrBadHash) {
		t.Errorf("forged: %v %v", ok, err)
	}
	later := newAt(t, "fwd.example", 20000+22, "a-long-enough-secret")
	if _, ok, err := later.Reverse(good); !ok || !errors.Is(err, ErrExpired) {
		t.Errorf("22 days later: %v %v", ok, err)
	}
	soon := newAt(t, "fwd.example", 20000+20, "a-long-enough-secret")
	if _, _, err := soon.Reverse(good); err != nil {
		t.Errorf("20 days later: %v", err)
	}
	// Across the 1024-day wrap of the timestamp.
	wrap := newAt(t, "fwd.example", 1023, "a-long-enough-secret")
	addr, _ := wrap.Forward("a@b.example")
	wrap.now = func() time.Time { return time.Unix(1025*86400, 0) }
	if _, _, err := wrap.Reverse(addr); err != nil {
		t.Errorf("across the wrap: %v", err)
	}
	for _, a := range []string{"alice@fwd.example", "SRS0=xxxx@fwd.example", "SRS0=abcd=RA=x@fwd.example", good + ".other"} {
		orig, ok, err := s.Reverse(a)
		if a == "alice@fwd.example" || strings.HasSuffix(a, ".other") {
			if ok {
				t.Errorf("%q taken for an SRS address of ours", a)
			}
			continue
		}
		if !ok || err == nil {
			t.Errorf("%q: %q %v %v", a, orig, ok, err)
		}
	}
}

func TestSecretRotation(t *testing.T) {
	old := newAt(t, "fwd.example", 20000, "the-old-secret-value")
	addr, _ := old.Forward("alice@origin.example")
	rotated := newAt(t, "fwd.example", 20001, "the-new-secret-value", "the-old-secret-value")
	if orig, _, err := rotated.Reverse(addr); err != nil || orig != "alice@origin.example" {
		t.Fatalf("an address signed with the old secret: %q %v", orig, err)
	}
	fresh, _ := rotated.Forward("alice@origin.example")
	if _, _, err := old.Reverse(fresh); !errors.Is(err, ErrBadHash) {
		t.Fatalf("the new secret must sign: %v", err)
	}
}

func TestSRS1ForAddressesOfOtherForwarders(t *testing.T) {
	first := newAt(t, "first.example", 20000, "first-forwarder-secret")
	second := newAt(t, "second.example", 20000, "second-forwarder-secret")
	third := newAt(t, "third.example", 20000, "third-forwarder-secret")
	a0, _ := first.Forward("alice@origin.example")
	a1, err := second.Forward(a0)
	if err != nil || !strings.HasPrefix(a1, "SRS1=") || !strings.Contains(a1, "=first.example==") {
		t.Fatalf("SRS1: %q %v", a1, err)
	}
	a2, err := third.Forward(a1)
	if err != nil || !strings.Contains(a2, "=first.example==") || !strings.HasSuffix(a2, "@third.example") {
		t.Fatalf("SRS1 of SRS1 keeps the first hop: %q %v", a2, err)
	}
	back, ok, err := third.Reverse(a2)
	if !ok || err != nil || back != a0 {
		t.Fatalf("third reverses to %q (%v), want the first forwarder's %q", back, err, a0)
	}
	orig, _, err := first.Reverse(back)
	if err != nil || orig != "alice@origin.example" {
		t.Fatalf("first reverses to %q %v", orig, err)
	}
	if own, _ := first.Forward("x@first.example"); own != "x@first.example" {
		t.Errorf("an address of our own SRS domain was rewritten: %q", own)
	}
}
