package login

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/internal/contract/passwordhash"
	"github.com/kubemail/kubemail/mailserver/auth"
	"github.com/kubemail/kubemail/mailserver/directory"
)

// The spellings of an internationalised address are one account: failures under any of them
// count together, and the right password works under every one.
func TestInternationalisedLoginNames(t *testing.T) {
	hash, err := passwordhash.Hash("richtig")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := directory.FromSpec(&dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "bücher.example"}},
		Mailboxes: []dirspec.MailboxSpec{{Address: "jörg@bücher.example", PasswordHash: hash}}}, passwordhash.ValidateHash)
	if err != nil {
		t.Fatal(err)
	}
	var live directory.Live
	live.Store(dir)
	now := time.Now()
	limiter := auth.NewLimiter(auth.LimiterConfig{FreeFailures: 100, MaxIPFailures: 100, MaxAccountFailures: 3,
		Now: func() time.Time { return now }})
	a, err := New(&live, limiter, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"JÖRG@bücher.example", "jörg@BÜCHER.EXAMPLE", "jörg@bücher.example"} {
		if mb, err := a.Login(ctx, "imap", netip.MustParseAddr("192.0.2.1"), name, "richtig"); err != nil || mb.Address != "jörg@xn--bcher-kva.example" {
			t.Fatalf("%s with the right password: %v", name, err)
		}
	}
	for i, name := range []string{"jörg@xn--bcher-kva.example", "JÖRG@bücher.example", "jo\u0308rg@bücher.example"} {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})
		if _, err := a.Login(ctx, "imap", ip, name, "falsch"); !errors.Is(err, ErrFailed) {
			t.Fatalf("%s with a wrong password: %v", name, err)
		}
	}
	if _, err := a.Login(ctx, "imap", netip.MustParseAddr("192.0.2.99"), "Jörg@Bücher.example", "richtig"); !errors.Is(err, ErrThrottled) {
		t.Errorf("after 3 failures under 3 spellings: %v, want the account throttled", err)
	}
}
