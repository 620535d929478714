package directory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/testutil"
)

// fakeHash accepts hashes that look like "$test$..." so these tests need no real hashing.
func fakeHash(h string) error {
	if !strings.HasPrefix(h, "$test$") {
		return errors.New("not a password hash")
	}
	return nil
}

const sample = `
domains:
  - name: example.com
  - name: Example.ORG
    catchAll: bob@example.org
mailboxes:
  - address: Alice@example.com
    passwordHash: $test$a
    quota: 1000
    aliases: [postmaster@example.com]
  - address: bob@example.org
    passwordHash: $test$b
  - address: carol@example.com
    passwordHash: $test$c
    forwardTo: [bob@example.org, dave@elsewhere.net]
    keepCopy: true
  - address: fwd@example.com
    passwordHash: $test$f
    forwardTo: [out@elsewhere.net]
    keepCopy: false
aliases:
  - address: team@example.com
    members: [alice@example.com, carol@example.com, team@example.com, loop@example.com]
  - address: loop@example.com
    members: [team@example.com]
`

func mustParse(t *testing.T, s string) *Directory {
	t.Helper()
	d, err := Parse([]byte(s), fakeHash)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func addrs(mbs []*Mailbox) []string {
	var out []string
	for _, m := range mbs {
		out = append(out, m.Address)
	}
	return out
}

func TestResolve(t *testing.T) {
	d := mustParse(t, sample)
	cases := []struct {
		rcpt     string
		local    []string
		external []string
		err      error
	}{
		{rcpt: "alice@example.com", local: []string{"alice@example.com"}},
		{rcpt: "ALICE@EXAMPLE.COM", local: []string{"alice@example.com"}},
		{rcpt: "<alice@example.com>", local: []string{"alice@example.com"}},
		{rcpt: "alice+news@example.com", local: []string{"alice@example.com"}},
		{rcpt: "postmaster@example.com", local: []string{"alice@example.com"}},
		{rcpt: "team@example.com", local: []string{"alice@example.com", "carol@example.com", "bob@example.org"}, external: []string{"dave@elsewhere.net"}},
		{rcpt: "loop@example.com", local: []string{"alice@example.com", "carol@example.com", "bob@example.org"}, external: []string{"dave@elsewhere.net"}},
		{rcpt: "carol@example.com", local: []string{"carol@example.com", "bob@example.org"}, external: []string{"dave@elsewhere.net"}},
		{rcpt: "fwd@example.com", external: []string{"out@elsewhere.net"}},
		{rcpt: "nobody@example.org", local: []string{"bob@example.org"}},
		{rcpt: "nobody@example.com", err: ErrUnknownUser},
		{rcpt: "someone@elsewhere.net", err: ErrNotLocal},
		{rcpt: "not an address", err: ErrBadAddress},
	}
	for _, tc := range cases {
		res, err := d.Resolve(tc.rcpt)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q) error %v, want %v", tc.rcpt, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.rcpt, err)
			continue
		}
		if !slices.Equal(addrs(res.Local), tc.local) || !slices.Equal(res.External, tc.external) {
			t.Errorf("Resolve(%q) = local %v external %v, want %v %v", tc.rcpt, addrs(res.Local), res.External, tc.local, tc.external)
		}
	}
}

func TestCanSendAs(t *testing.T) {
	d := mustParse(t, sample)
	alice, _ := d.Mailbox("alice@example.com")
	for from, want := range map[string]bool{
		"alice@example.com":      true,
		"Alice@Example.com":      true,
		"alice+x@example.com":    true,
		"postmaster@example.com": true,
		"bob@example.org":        false,
		"team@example.com":       false,
		"stranger@elsewhere.net": false,
		"":                       false,
	} {
		if got := d.CanSendAs(alice, from); got != want {
			t.Errorf("CanSendAs(alice, %q) = %v, want %v", from, got, want)
		}
	}
}

func TestParseRejectsBadDirectories(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"plain text password": {`{domains: [{name: example.com}], mailboxes: [{address: a@example.com, passwordHash: hunter2}]}`, "password hash"},
		"unknown domain":      {`{domains: [{name: example.com}], mailboxes: [{address: a@example.net, passwordHash: $test$}]}`, `domain "example.net" is not in the directory`},
		"duplicate address":   {`{domains: [{name: example.com}], mailboxes: [{address: a@example.com, passwordHash: $test$}, {address: A@example.com, passwordHash: $test$}]}`, "already belongs to a mailbox"},
		"alias claims mailbox": {`{domains: [{name: example.com}], mailboxes: [{address: a@example.com, passwordHash: $test$}], aliases: [{address: a@example.com, members: [b@x.org]}]}`,
			"already belongs to a mailbox"},
		"bad domain":       {`{domains: [{name: "exa mple.com"}]}`, "has the character"},
		"unknown field":    {`{domains: [{name: example.com, colour: blue}]}`, "unknown field"},
		"bad member":       {`{domains: [{name: example.com}], aliases: [{address: t@example.com, members: [nope]}]}`, "has no @"},
		"empty alias":      {`{domains: [{name: example.com}], aliases: [{address: t@example.com, members: []}]}`, "has no members"},
		"negative quota":   {`{domains: [{name: example.com}], mailboxes: [{address: a@example.com, passwordHash: $test$, quota: -1}]}`, "must not be negative"},
		"not yaml at all":  {"\x00\x01{{{", "directory"},
		"bad MTA-STS mode": {`{domains: [{name: example.com, mtaSTSMode: strict}]}`, "mtaSTSMode"},
	}
	for name, tc := range cases {
		_, err := Parse([]byte(tc.yaml), fakeHash)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	good := map[string]string{
		"Alice@Example.COM":                "alice@example.com",
		"o'brien+tag@example.com":          "o'brien+tag@example.com",
		" <x.y@sub.example.org> ":          "x.y@sub.example.org",
		"a@xn--bcher-kva.example":          "a@xn--bcher-kva.example",
		strings.Repeat("l", 64) + "@e.com": strings.Repeat("l", 64) + "@e.com",
		// Internationalised addresses: U-labels become A-labels; local parts NFC, lowercase.
		"jörg@bücher.example":              "jörg@xn--bcher-kva.example",
		"JÖRG@BÜCHER.example":              "jörg@xn--bcher-kva.example",
		"jo\u0308rg@xn--bcher-kva.example": "jörg@xn--bcher-kva.example", // combining diaeresis
		"Δοκιμή@παράδειγμα.δοκιμή":         "δοκιμή@xn--hxajbheg2az3al.xn--jxalpdlp",
		"用户@例子.广告":                         "用户@xn--fsqu00a.xn--4rr70v",
		"straße@example.com":               "straße@example.com", // no full case folding
		"a@ÉXAMPLE.com":                    "a@xn--xample-9ua.com",
	}
	for in, want := range good {
		got, err := dirspec.NormalizeAddress(in)
		if err != nil || got != want {
			t.Errorf("dirspec.NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "alice", "@example.com", "alice@", "a..b@example.com", ".a@example.com",
		"a b@example.com", "a@example", "a@-x.com", "a@x_y.com", "a@example.123", strings.Repeat("l", 65) + "@e.com",
		"a\x00@example.com", "a@ex ample.com",
		"jörg\u00a0x@example.com",          // a no-break space
		"a\u200bb@example.com",             // a zero-width space
		"a@xn--zz.example",                 // not an A-label
		"a@bü_cher.example",                // not a host name
		"\xff@example.com",                 // not UTF-8
		strings.Repeat("ö", 33) + "@e.com", // 66 octets
	} {
		if got, err := dirspec.NormalizeAddress(bad); err == nil {
			t.Errorf("dirspec.NormalizeAddress(%q) = %q, want an error", bad, got)
		}
	}
}

type recorder struct {
	mu       sync.Mutex
	reloads  int
	failures []error
}

func (r *recorder) Reloaded(*Directory) { r.mu.Lock(); r.reloads++; r.mu.Unlock() }
func (r *recorder) Failed(err error) {
	r.mu.Lock()
	r.failures = append(r.failures, err)
	r.mu.Unlock()
}
func (r *recorder) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloads, len(r.failures)
}

func TestFileSourceReloadsAndKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "directory.yaml")
	write := func(s string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(sample)
	var live Live
	rec := &recorder{}
	src := &FileSource{Path: path, ValidateHash: fakeHash, Interval: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, &live, rec) }()
	defer func() { cancel(); <-done }()

	testutil.Eventually(t, "first load", func() bool { _, ok := live.Load().Mailbox("alice@example.com"); return ok })
	write(strings.Replace(sample, "carol@example.com\n    passwordHash", "carla@example.com\n    passwordHash", 1))
	testutil.Eventually(t, "reload", func() bool { _, ok := live.Load().Mailbox("carla@example.com"); return ok })

	write("domains: [this is: broken")
	testutil.Eventually(t, "failure report", func() bool { _, f := rec.counts(); return f == 1 })
	if _, ok := live.Load().Mailbox("carla@example.com"); !ok {
		t.Fatal("a broken file replaced the last good directory")
	}
	// The same broken content is reported once, however often it is checked.
	before := time.Now()
	testutil.Eventually(t, "several periodic checks", func() bool { return time.Since(before) > 300*time.Millisecond })
	if _, f := rec.counts(); f != 1 {
		t.Fatalf("broken file reported %d times", f)
	}
	write(sample)
	testutil.Eventually(t, "recovery", func() bool { _, ok := live.Load().Mailbox("carol@example.com"); return ok })
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"domains":[{"name":"example.com"}]}`))
	f.Add([]byte(`{domains: [{name: example.com}], aliases: [{address: a@example.com, members: [a@example.com]}]}`))
	f.Add([]byte("domains: [this is: broken"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, fakeHash)
		if err != nil {
			return
		}
		// Whatever parsed must resolve without panicking or looping.
		for _, mb := range d.Mailboxes() {
			if _, err := d.Resolve(mb.Address); err != nil {
				t.Fatalf("mailbox %q does not resolve: %v", mb.Address, err)
			}
			d.CanSendAs(mb, mb.Address)
		}
	})
}

func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "A@B.CO", "<x@y.org>", "a..b@c.d", "@", "o'b+t@x-y.example", "a@b@c.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := dirspec.NormalizeAddress(s)
		if err != nil {
			return
		}
		// Normal forms are fixed points and lowercase.
		again, err := dirspec.NormalizeAddress(n)
		if err != nil || again != n {
			t.Fatalf("dirspec.NormalizeAddress(%q) = %q, but that normalizes to %q, %v", s, n, again, err)
		}
		if n != strings.ToLower(n) {
			t.Fatalf("not lowercase: %q", n)
		}
	})
}

// A domain that went away while accounts still use it: its mail, and every expansion that
// reaches it, waits (a temporary error) rather than leaving for the outside world.
func TestUnavailableDomainsTempfailNeverRelay(t *testing.T) {
	d := mustParse(t, `
domains:
  - name: example.com
unavailableDomains: [Example.ORG]
mailboxes:
  - address: alice@example.com
    passwordHash: $test$a
  - address: fwd@example.com
    passwordHash: $test$f
    forwardTo: [bob@example.org]
aliases:
  - address: team@example.com
    members: [alice@example.com, bob@example.org]
`)
	for _, rcpt := range []string{"bob@example.org", "BOB@example.ORG", "team@example.com", "fwd@example.com"} {
		if res, err := d.Resolve(rcpt); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Resolve(%q) = %+v, %v; want ErrUnavailable", rcpt, res, err)
		}
	}
	if res, err := d.Resolve("alice@example.com"); err != nil || len(res.Local) != 1 {
		t.Errorf("alice: %+v, %v", res, err)
	}
	if _, err := d.Resolve("x@elsewhere.net"); !errors.Is(err, ErrNotLocal) {
		t.Errorf("a foreign domain: %v, want ErrNotLocal", err)
	}
	if _, err := Parse([]byte("domains: [{name: example.com}]\nunavailableDomains: [example.com]\n"), fakeHash); err == nil ||
		!strings.Contains(err.Error(), "served and as unavailable") {
		t.Errorf("a domain both served and unavailable: %v", err)
	}
}

// A mailbox whose password cannot be read stays in the directory, disabled, so its mail is
// still accepted; without a hash it must be disabled.
func TestDisabledMailboxWithoutHash(t *testing.T) {
	d := mustParse(t, `
domains: [{name: example.com}]
mailboxes:
  - address: alice@example.com
    passwordHash: ""
    disabled: true
    disabledReason: Secret "alice-pw" not found
`)
	mb, ok := d.Mailbox("alice@example.com")
	if !ok || !mb.Disabled || mb.DisabledReason == "" {
		t.Fatalf("alice: %+v %v", mb, ok)
	}
	if res, err := d.Resolve("alice@example.com"); err != nil || len(res.Local) != 1 {
		t.Errorf("mail to a disabled mailbox: %+v, %v", res, err)
	}
	_, err := Parse([]byte("domains: [{name: example.com}]\nmailboxes: [{address: a@example.com, passwordHash: \"\"}]\n"), fakeHash)
	if err == nil || !strings.Contains(err.Error(), "no password hash") {
		t.Errorf("an enabled mailbox without a hash: %v", err)
	}
}

// A domain is one domain whether it is written in U-labels or A-labels, in the directory or
// in a recipient; UTF-8 local parts match after NFC and lowercasing.
func TestInternationalisedAddresses(t *testing.T) {
	d := mustParse(t, `
domains:
  - name: Bücher.example
  - name: xn--mller-kva.example
    catchAll: info@müller.example
mailboxes:
  - address: jörg@bücher.example
    passwordHash: $test$j
    aliases: [Ärger@xn--bcher-kva.example]
  - address: info@xn--mller-kva.example
    passwordHash: $test$i
aliases:
  - address: alle@müller.example
    members: [JÖRG@bücher.example, søren@example.dk]
`)
	for _, rcpt := range []string{"jörg@bücher.example", "JÖRG@XN--BCHER-KVA.EXAMPLE", "jo\u0308rg@bücher.example",
		"jörg+news@bücher.example", "ärger@bücher.example"} {
		res, err := d.Resolve(rcpt)
		if err != nil || !slices.Equal(addrs(res.Local), []string{"jörg@xn--bcher-kva.example"}) {
			t.Errorf("Resolve(%q) = %v, %v; want jörg's mailbox", rcpt, addrs(res.Local), err)
		}
	}
	res, err := d.Resolve("alle@xn--mller-kva.example")
	if err != nil || !slices.Equal(addrs(res.Local), []string{"jörg@xn--bcher-kva.example"}) ||
		!slices.Equal(res.External, []string{"søren@example.dk"}) {
		t.Errorf("alias: %v %v %v", addrs(res.Local), res.External, err)
	}
	if res, err := d.Resolve("wer@müller.example"); err != nil || !slices.Equal(addrs(res.Local), []string{"info@xn--mller-kva.example"}) {
		t.Errorf("catch-all: %v %v", addrs(res.Local), err)
	}
	if _, err := d.Resolve("jorg@bücher.example"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("jorg without the umlaut: %v, want unknown user", err)
	}
	if _, ok := d.Mailbox("Jörg@Bücher.Example"); !ok {
		t.Error("Mailbox does not find jörg by the U-label form")
	}
	if !d.IsLocalDomain("bücher.example") || !d.IsLocalDomain("XN--BCHER-KVA.example") {
		t.Error("IsLocalDomain does not take both forms")
	}
	mb, _ := d.Mailbox("jörg@bücher.example")
	if !d.CanSendAs(mb, "ärger@xn--bcher-kva.example") || d.CanSendAs(mb, "info@müller.example") {
		t.Error("CanSendAs is wrong for internationalised aliases")
	}
	if _, err := Parse([]byte("domains: [{name: bücher.example}, {name: xn--bcher-kva.example}]\n"), fakeHash); err == nil ||
		!strings.Contains(err.Error(), "listed twice") {
		t.Errorf("a domain listed in both forms: %v, want listed twice", err)
	}
}

// BenchmarkNormalizeAddress: every RCPT, login and lookup normalises its address once.
func BenchmarkNormalizeAddress(b *testing.B) {
	for _, addr := range []string{"Alice.Smith+news@Example.COM", "jörg@xn--bcher-kva.example", "JÖRG@BÜCHER.example"} {
		b.Run(addr, func(b *testing.B) {
			for b.Loop() {
				if _, err := dirspec.NormalizeAddress(addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
