package builders

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mailv1alpha1 "github.com/kubemail/kubemail/api/v1alpha1"
	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
)

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is a creation time; Kubernetes keeps it to the second, so equal times are common.
func at(sec int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: "mail-system", CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(sec) * time.Second))}
}

func testDomain(name, domain string, created int) mailv1alpha1.MailDomain {
	m := at(created)
	m.Name = name
	return mailv1alpha1.MailDomain{ObjectMeta: m, Spec: mailv1alpha1.MailDomainSpec{
		Domain: mailv1alpha1.MailDomainName(domain), ClusterRef: mailv1alpha1.LocalObjectReference{Name: "mail"},
		DKIM: mailv1alpha1.DKIMSpec{Selector: "kubemail", Algorithm: "rsa-sha256"}}}
}

func testMailbox(name, addr string, created int, aliases ...string) MailboxInput {
	m := at(created)
	m.Name = name
	mb := &mailv1alpha1.Mailbox{ObjectMeta: m, Spec: mailv1alpha1.MailboxSpec{Address: mailv1alpha1.EmailAddress(addr)}}
	for _, a := range aliases {
		mb.Spec.Aliases = append(mb.Spec.Aliases, mailv1alpha1.EmailAddress(a))
	}
	return MailboxInput{Mailbox: mb, PasswordHash: "$argon2id$" + name, Fingerprint: "fp-" + name}
}

func testAlias(name, addr string, created int, members ...string) mailv1alpha1.MailAlias {
	m := at(created)
	m.Name = name
	al := mailv1alpha1.MailAlias{ObjectMeta: m, Spec: mailv1alpha1.MailAliasSpec{Address: mailv1alpha1.EmailAddress(addr)}}
	for _, a := range members {
		al.Spec.Members = append(al.Spec.Members, mailv1alpha1.EmailAddress(a))
	}
	return al
}

func testDomains() []mailv1alpha1.MailDomain {
	return []mailv1alpha1.MailDomain{testDomain("example-com", "example.com", 0), testDomain("example-net", "example.net", 0)}
}

func servedMailbox(res DirectoryResult, addr string) *dirspec.MailboxSpec {
	for i := range res.Spec.Mailboxes {
		if res.Spec.Mailboxes[i].Address == addr {
			return &res.Spec.Mailboxes[i]
		}
	}
	return nil
}

func servedAlias(res DirectoryResult, addr string) *dirspec.AliasSpec {
	for i := range res.Spec.Aliases {
		if res.Spec.Aliases[i].Address == addr {
			return &res.Spec.Aliases[i]
		}
	}
	return nil
}

func TestDirectoryMailboxFields(t *testing.T) {
	plain := testMailbox("alice", "alice@example.com", 1, "a.smith@example.com", "alice@example.net")
	plain.Mailbox.Spec.DisplayName = "Alice Smith"
	plain.Quota, plain.Shard = 5<<30, 2

	forwardKeep := testMailbox("bob", "bob@example.com", 2)
	forwardKeep.Mailbox.Spec.Forwarding = &mailv1alpha1.ForwardingSpec{To: []mailv1alpha1.EmailAddress{"bob@gmail.example", "carol@example.com"}}

	forwardOnly := testMailbox("dave", "dave@example.com", 3)
	forwardOnly.Mailbox.Spec.Forwarding = &mailv1alpha1.ForwardingSpec{To: []mailv1alpha1.EmailAddress{"dave@elsewhere.example"}, KeepCopy: ptr.To(false)}

	suspended := testMailbox("eve", "eve@example.com", 4)
	suspended.Mailbox.Spec.Suspended = true

	res := Directory(testDomains(), nil, []MailboxInput{plain, forwardKeep, forwardOnly, suspended}, nil)
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	tests := []struct {
		addr string
		want dirspec.MailboxSpec
	}{
		{"alice@example.com", dirspec.MailboxSpec{Address: "alice@example.com", DisplayName: "Alice Smith", PasswordHash: "$argon2id$alice",
			PasswordFingerprint: "fp-alice", Quota: 5 << 30, Shard: 2, Aliases: []string{"a.smith@example.com", "alice@example.net"}}},
		// keepCopy defaults to true, as the CRD says.
		{"bob@example.com", dirspec.MailboxSpec{Address: "bob@example.com", PasswordHash: "$argon2id$bob", PasswordFingerprint: "fp-bob",
			ForwardTo: []string{"bob@gmail.example", "carol@example.com"}, KeepCopy: ptr.To(true)}},
		{"dave@example.com", dirspec.MailboxSpec{Address: "dave@example.com", PasswordHash: "$argon2id$dave", PasswordFingerprint: "fp-dave",
			ForwardTo: []string{"dave@elsewhere.example"}, KeepCopy: ptr.To(false)}},
		{"eve@example.com", dirspec.MailboxSpec{Address: "eve@example.com", PasswordHash: "$argon2id$eve", PasswordFingerprint: "fp-eve", Disabled: true,
			DisabledReason: "suspended (spec.suspended)"}},
	}
	for _, tt := range tests {
		got := servedMailbox(res, tt.addr)
		if got == nil {
			t.Errorf("%s not served", tt.addr)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.addr, *got, tt.want)
		}
	}
}

func TestDirectoryAliases(t *testing.T) {
	al := testAlias("team", "team@example.com", 1, "alice@example.com", "someone@external.example")
	res := Directory(testDomains(), nil, nil, []mailv1alpha1.MailAlias{al})
	want := []dirspec.AliasSpec{{Address: "team@example.com", Members: []string{"alice@example.com", "someone@external.example"}}}
	if len(res.Problems) != 0 || !reflect.DeepEqual(res.Spec.Aliases, want) {
		t.Errorf("aliases %+v problems %v; want %+v (external members are allowed)", res.Spec.Aliases, res.Problems, want)
	}
}

// directoryConflict is one case of TestDirectoryConflicts: two objects claim one address.
type directoryConflict struct {
	name      string
	mailboxes []MailboxInput
	aliases   []mailv1alpha1.MailAlias
	// loser is "Kind/name"; owner is how the message names the winner.
	loser, owner, address string
	// served are addresses that must stay in the directory.
	served []string
}

func TestDirectoryConflicts(t *testing.T) {
	tests := []directoryConflict{
		{
			name:      "older mailbox keeps its address from a younger mailbox",
			mailboxes: []MailboxInput{testMailbox("alice-again", "alice@example.com", 5), testMailbox("alice", "alice@example.com", 1)},
			loser:     "Mailbox/alice-again", owner: `Mailbox "alice"`, address: "alice@example.com",
			served: []string{"alice@example.com"},
		},
		{
			name:      "older mailbox keeps its address from a younger alias",
			mailboxes: []MailboxInput{testMailbox("postmaster", "postmaster@example.com", 1)},
			aliases:   []mailv1alpha1.MailAlias{testAlias("pm", "postmaster@example.com", 2, "bob@example.com")},
			loser:     "MailAlias/pm", owner: `Mailbox "postmaster"`, address: "postmaster@example.com",
			served: []string{"postmaster@example.com"},
		},
		{
			name:      "older mailbox's alias keeps the address from a younger alias",
			mailboxes: []MailboxInput{testMailbox("alice", "alice@example.com", 1, "sales@example.com")},
			aliases:   []mailv1alpha1.MailAlias{testAlias("sales", "sales@example.com", 2, "bob@example.com")},
			loser:     "MailAlias/sales", owner: `Mailbox "alice"`, address: "sales@example.com",
			served: []string{"alice@example.com"},
		},
		{
			name:      "older alias keeps its address from a younger mailbox",
			mailboxes: []MailboxInput{testMailbox("team-box", "team@example.com", 9)},
			aliases:   []mailv1alpha1.MailAlias{testAlias("team", "team@example.com", 1, "bob@example.com")},
			loser:     "Mailbox/team-box", owner: `MailAlias "team"`, address: "team@example.com",
			served: []string{"team@example.com"},
		},
		{
			// The younger mailbox is left out whole, its uncontested primary address too.
			name:      "younger mailbox's alias claims an older mailbox's address",
			mailboxes: []MailboxInput{testMailbox("bob", "bob@example.com", 3, "alice@example.com"), testMailbox("alice", "alice@example.com", 1)},
			loser:     "Mailbox/bob", owner: `Mailbox "alice"`, address: "alice@example.com",
			served: []string{"alice@example.com"},
		},
		{
			name:      "addresses compare without case",
			mailboxes: []MailboxInput{testMailbox("alice", "alice@example.com", 1), testMailbox("alice-caps", "Alice@example.com", 2)},
			loser:     "Mailbox/alice-caps", owner: `Mailbox "alice"`, address: "Alice@example.com",
			served: []string{"alice@example.com"},
		},
		{
			name:      "same second: the name breaks the tie between mailboxes",
			mailboxes: []MailboxInput{testMailbox("b-alice", "alice@example.com", 1), testMailbox("a-alice", "alice@example.com", 1)},
			loser:     "Mailbox/b-alice", owner: `Mailbox "a-alice"`, address: "alice@example.com",
		},
		{
			// Objects applied together get the same creationTimestamp; the name, not the kind,
			// decides.
			name:      "same second: a mailbox with the lower name beats an alias",
			mailboxes: []MailboxInput{testMailbox("info", "info@example.com", 1)},
			aliases:   []mailv1alpha1.MailAlias{testAlias("zz-info", "info@example.com", 1, "bob@example.com")},
			loser:     "MailAlias/zz-info", owner: `Mailbox "info"`, address: "info@example.com",
		},
		{
			name:      "same second: an alias with the lower name beats a mailbox",
			mailboxes: []MailboxInput{testMailbox("zz-info", "info@example.com", 1)},
			aliases:   []mailv1alpha1.MailAlias{testAlias("info", "info@example.com", 1, "bob@example.com")},
			loser:     "Mailbox/zz-info", owner: `MailAlias "info"`, address: "info@example.com",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// check builds the directory and asserts that only the loser has a problem, an AddressConflict
// naming the owner and the address, that the loser is left out whole and the served addresses
// stay.
func (tt directoryConflict) check(t *testing.T) {
	res := Directory(testDomains(), nil, tt.mailboxes, tt.aliases)
	p, ok := res.Problems[tt.loser]
	if !ok {
		t.Fatalf("%s has no problem; problems: %v", tt.loser, res.Problems)
	}
	if p.Reason != mailv1alpha1.ReasonAddressConflict || !strings.Contains(p.Message, tt.owner) || !strings.Contains(p.Message, tt.address) {
		t.Errorf("%s: %s %q; want AddressConflict naming %s and %s", tt.loser, p.Reason, p.Message, tt.owner, tt.address)
	}
	if len(res.Problems) != 1 {
		t.Errorf("problems %v; want only %s", res.Problems, tt.loser)
	}
	for _, a := range tt.served {
		if servedMailbox(res, a) == nil && servedAlias(res, a) == nil {
			t.Errorf("%s is not served", a)
		}
	}
	// The loser is left out whole; testMailbox gives every mailbox its own hash.
	kind, name, _ := strings.Cut(tt.loser, "/")
	for _, mb := range res.Spec.Mailboxes {
		if kind == "Mailbox" && mb.PasswordHash == "$argon2id$"+name {
			t.Errorf("losing Mailbox %s is in the directory as %s", name, mb.Address)
		}
	}
	if kind == "MailAlias" && len(res.Spec.Aliases) != 0 {
		t.Errorf("losing MailAlias %s is in the directory: %+v", name, res.Spec.Aliases)
	}
}

func TestDirectoryDomainNotFound(t *testing.T) {
	tests := []struct {
		name      string
		mailboxes []MailboxInput
		aliases   []mailv1alpha1.MailAlias
		key       string
		domain    string
	}{
		{"mailbox address", []MailboxInput{testMailbox("carol", "carol@example.org", 1)}, nil, "Mailbox/carol", "example.org"},
		{"mailbox alias", []MailboxInput{testMailbox("carol", "carol@example.com", 1, "carol@example.org")}, nil, "Mailbox/carol", "example.org"},
		{"alias address", nil, []mailv1alpha1.MailAlias{testAlias("list", "list@example.org", 1, "a@example.com")}, "MailAlias/list", "example.org"},
		// A subdomain is another domain.
		{"subdomain", []MailboxInput{testMailbox("sub", "x@lists.example.com", 1)}, nil, "Mailbox/sub", "lists.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Directory(testDomains(), nil, tt.mailboxes, tt.aliases)
			p := res.Problems[tt.key]
			if p.Reason != mailv1alpha1.ReasonDomainNotFound || !strings.Contains(p.Message, `"`+tt.domain+`"`) {
				t.Errorf("%s: %s %q; want DomainNotFound naming %q", tt.key, p.Reason, p.Message, tt.domain)
			}
			if len(res.Spec.Mailboxes)+len(res.Spec.Aliases) != 0 {
				t.Errorf("served anyway: %+v", res.Spec)
			}
		})
	}
}

// A mailbox whose password cannot be used is served with its logins disabled, keeping the last
// good hash when there is one: its mail must never bounce because of a broken Secret.
func TestDirectoryPasswordProblemDisablesLogins(t *testing.T) {
	noPassword := testMailbox("alice", "alice@example.com", 1)
	noPassword.PasswordHash, noPassword.Fingerprint = "", ""
	noPassword.PasswordProblem = `Secret "alice-password" has no key "password"`
	lastGood := testMailbox("bob", "bob@example.com", 1)
	lastGood.PasswordProblem, lastGood.PasswordReason = `the password in Secret "bob-pw" is empty`, mailv1alpha1.ReasonPasswordInvalid
	younger := testAlias("alice-alias", "alice@example.com", 2, "carol@example.com")
	res := Directory(testDomains(), nil, []MailboxInput{noPassword, lastGood}, []mailv1alpha1.MailAlias{younger})

	want := Problem{Reason: mailv1alpha1.ReasonSecretMissing, Served: true, LoginDisabled: true,
		Message: noPassword.PasswordProblem + ": logins are disabled; mail is still accepted and stored"}
	if got := res.Problems["Mailbox/alice"]; got != want {
		t.Errorf("problem = %+v, want %+v", got, want)
	}
	if got := res.Problems["Mailbox/bob"]; got.Reason != mailv1alpha1.ReasonPasswordInvalid || !got.Served {
		t.Errorf("bob: %+v, want PasswordInvalid, served", got)
	}
	if len(res.Spec.Mailboxes) != 2 {
		t.Fatalf("mailboxes in the directory: %+v, want both", res.Spec.Mailboxes)
	}
	alice, bob := res.Spec.Mailboxes[0], res.Spec.Mailboxes[1]
	if !alice.Disabled || alice.PasswordHash != "" || alice.DisabledReason != noPassword.PasswordProblem {
		t.Errorf("alice: %+v", alice)
	}
	if !bob.Disabled || bob.PasswordHash != lastGood.PasswordHash || bob.PasswordFingerprint != lastGood.Fingerprint {
		t.Errorf("bob lost his last good hash: %+v", bob)
	}
	// While its password is broken the mailbox keeps its address: mail must not start going to
	// a younger claimant and move back once the Secret is fixed.
	if p := res.Problems["MailAlias/alice-alias"]; p.Reason != mailv1alpha1.ReasonAddressConflict {
		t.Errorf("younger alias: %+v, want AddressConflict", p)
	}
	if _, err := directory.FromSpec(&res.Spec, func(string) error { return nil }); err != nil {
		t.Errorf("the server refuses the directory: %v", err)
	}
}

func TestDirectoryDomains(t *testing.T) {
	const key = "-----BEGIN PRIVATE KEY-----\nTEST\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		name    string
		enabled *bool
		keys    map[string]string
		want    *dirspec.DKIMSpec
	}{
		{"enabled by default with a key", nil, map[string]string{"example.com": key}, &dirspec.DKIMSpec{Selector: "s2026", Algorithm: "ed25519-sha256", PrivateKey: key}},
		{"enabled with a key", ptr.To(true), map[string]string{"example.com": key}, &dirspec.DKIMSpec{Selector: "s2026", Algorithm: "ed25519-sha256", PrivateKey: key}},
		{"disabled with a key", ptr.To(false), map[string]string{"example.com": key}, nil},
		{"enabled, key not generated yet", ptr.To(true), nil, nil},
		{"enabled, empty key", ptr.To(true), map[string]string{"example.com": ""}, nil},
		{"key of another domain", ptr.To(true), map[string]string{"example.net": key}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testDomain("example-com", "example.com", 0)
			d.Spec.DKIM = mailv1alpha1.DKIMSpec{Enabled: tt.enabled, Selector: "s2026", Algorithm: "ed25519-sha256"}
			d.Spec.CatchAll = "postmaster@example.com"
			res := Directory([]mailv1alpha1.MailDomain{d}, tt.keys, nil, nil)
			want := []dirspec.DomainSpec{{Name: "example.com", CatchAll: "postmaster@example.com", DKIM: tt.want}}
			if !reflect.DeepEqual(res.Spec.Domains, want) {
				t.Errorf("domains = %+v\nwant %+v", res.Spec.Domains, want)
			}
		})
	}

	t.Run("sorted, and the older of two MailDomains for one domain wins", func(t *testing.T) {
		younger := testDomain("example-com-2", "example.com", 5)
		younger.Spec.CatchAll = "younger@example.com"
		older := testDomain("example-com", "example.com", 1)
		older.Spec.CatchAll = "older@example.com"
		res := Directory([]mailv1alpha1.MailDomain{testDomain("zz", "zz.example", 0), younger, testDomain("aa", "aa.example", 0), older}, nil, nil, nil)
		want := []dirspec.DomainSpec{{Name: "aa.example"}, {Name: "example.com", CatchAll: "older@example.com"}, {Name: "zz.example"}}
		if !reflect.DeepEqual(res.Spec.Domains, want) {
			t.Errorf("domains = %+v\nwant %+v", res.Spec.Domains, want)
		}
	})
}

// richDirectoryInput has something of every kind, conflicts and problems included.
func richDirectoryInput() ([]mailv1alpha1.MailDomain, map[string]string, []MailboxInput, []mailv1alpha1.MailAlias) {
	domains := []mailv1alpha1.MailDomain{testDomain("example-com", "example.com", 0), testDomain("example-net", "example.net", 0)}
	domains[1].Spec.DKIM.Enabled = ptr.To(false)
	domains[0].Spec.CatchAll = "postmaster@example.com"
	keys := map[string]string{"example.com": "PEM-example.com", "example.net": "PEM-example.net"}

	alice := testMailbox("alice", "alice@example.com", 1, "a.smith@example.com")
	alice.Quota, alice.Shard = 1<<30, 1
	bob := testMailbox("bob", "bob@example.com", 2)
	bob.Mailbox.Spec.Forwarding = &mailv1alpha1.ForwardingSpec{To: []mailv1alpha1.EmailAddress{"bob@home.example"}}
	carol := testMailbox("carol", "carol@example.net", 2)
	carol.Mailbox.Spec.Suspended = true
	carol.Shard = 2
	noPass := testMailbox("dave", "dave@example.com", 3)
	noPass.PasswordHash, noPass.PasswordProblem = "", `Secret "dave-credentials" not found`
	mailboxes := []MailboxInput{
		alice, bob, carol, noPass,
		testMailbox("alice-again", "alice@example.com", 4),
		testMailbox("frank", "frank@example.org", 1),
		testMailbox("gina", "gina@example.com", 5, "a.smith@example.com"),
		testMailbox("a-tie", "tie@example.com", 6),
		testMailbox("b-tie", "tie@example.com", 6),
	}
	aliases := []mailv1alpha1.MailAlias{
		testAlias("team", "team@example.com", 1, "alice@example.com", "bob@example.com"),
		testAlias("sales", "a.smith@example.com", 2, "bob@example.com"),
		testAlias("ext", "list@example.org", 1, "alice@example.com"),
		testAlias("tie", "tie@example.com", 6, "alice@example.com"),
		testAlias("net", "all@example.net", 7, "carol@example.net", "partner@elsewhere.example"),
	}
	return domains, keys, mailboxes, aliases
}

func TestDirectoryGolden(t *testing.T) {
	res := Directory(richDirectoryInput())
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "directory.json", append(data, '\n'))
}

func TestDirectoryIgnoresInputOrder(t *testing.T) {
	domains, keys, mailboxes, aliases := richDirectoryInput()
	want := Directory(domains, keys, mailboxes, aliases)
	if len(want.Problems) == 0 || len(want.Spec.Mailboxes) == 0 || len(want.Spec.Aliases) == 0 {
		t.Fatalf("input too thin to show anything: %+v", want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		rng.Shuffle(len(domains), func(i, j int) { domains[i], domains[j] = domains[j], domains[i] })
		rng.Shuffle(len(mailboxes), func(i, j int) { mailboxes[i], mailboxes[j] = mailboxes[j], mailboxes[i] })
		rng.Shuffle(len(aliases), func(i, j int) { aliases[i], aliases[j] = aliases[j], aliases[i] })
		if got := Directory(domains, keys, mailboxes, aliases); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffle %d changed the result:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// A MailDomain deleted while in use: the Mailboxes of other domains keep their own address and
// lose only their aliases there (the server answers 451 for that domain); forwarding targets
// and alias members there are reported; an object whose own address is there is left out.
func TestDirectoryUnavailableDomain(t *testing.T) {
	alice := testMailbox("alice", "alice@example.com", 1, "alice@old.example", "a@example.com")
	fwd := testMailbox("fwd", "fwd@example.com", 2)
	fwd.Mailbox.Spec.Forwarding = &mailv1alpha1.ForwardingSpec{To: []mailv1alpha1.EmailAddress{"bob@old.example"}}
	gone := testMailbox("gone", "gone@old.example", 3)
	team := testAlias("team", "team@example.com", 4, "alice@example.com", "bob@old.example")
	res := Directory(testDomains(), nil, []MailboxInput{alice, fwd, gone}, []mailv1alpha1.MailAlias{team}, "old.example")

	if got := res.Spec.UnavailableDomains; len(got) != 1 || got[0] != "old.example" {
		t.Errorf("unavailable domains %v", got)
	}
	a := servedMailbox(res, "alice@example.com")
	if a == nil || len(a.Aliases) != 1 || a.Aliases[0] != "a@example.com" {
		t.Fatalf("alice: %+v; want served with her alias in example.com only", a)
	}
	for key, want := range map[string]Problem{
		"Mailbox/alice":  {Reason: mailv1alpha1.ReasonDomainUnavailable, Served: true},
		"Mailbox/fwd":    {Reason: mailv1alpha1.ReasonDomainUnavailable, Served: true},
		"MailAlias/team": {Reason: mailv1alpha1.ReasonDomainUnavailable, Served: true},
		"Mailbox/gone":   {Reason: mailv1alpha1.ReasonDomainNotFound},
	} {
		got := res.Problems[key]
		if got.Reason != want.Reason || got.Served != want.Served || got.LoginDisabled || got.Message == "" {
			t.Errorf("%s: %+v, want %+v", key, got, want)
		}
	}
	if servedMailbox(res, "fwd@example.com") == nil || servedMailbox(res, "gone@old.example") != nil {
		t.Error("fwd must be served and gone not")
	}
	if _, err := directory.FromSpec(&res.Spec, func(string) error { return nil }); err != nil {
		t.Errorf("the server refuses the directory: %v", err)
	}
}
