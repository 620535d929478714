package handoff

import (
	"testing"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
	"github.com/kubemail/kubemail/mailserver/directory"
)

func liveDirectory(t *testing.T, frozen bool) *directory.Directory {
	t.Helper()
	d, err := directory.FromSpec(&dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "example.com"}},
		Mailboxes: []dirspec.MailboxSpec{{Address: "bob@example.com", PasswordHash: "x", Shard: 1, Frozen: frozen},
			{Address: "carol@example.com", PasswordHash: "x", Shard: 0}}}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A delivery counted before the freeze holds the cut-over until it ends; after the freeze,
// none begins.
func TestHoldsAdmitWhatLivesHereAndIsNotFrozen(t *testing.T) {
	var live directory.Live
	live.Store(liveDirectory(t, false))
	h := &Holds{Directory: &live, Shard: 1}
	release, ok := h.Begin("bob@example.com")
	if !ok || h.InFlight("bob@example.com") != 1 {
		t.Fatalf("a delivery to bob here: ok %v, in flight %d", ok, h.InFlight("bob@example.com"))
	}
	if _, ok := h.Begin("carol@example.com"); ok || h.InFlight("carol@example.com") != 0 {
		t.Errorf("a delivery to a mailbox of another replica was admitted")
	}
	live.Store(liveDirectory(t, true))
	if h.InFlight("bob@example.com") != 1 {
		t.Errorf("the delivery begun before the freeze is no longer counted")
	}
	if _, ok := h.Begin("bob@example.com"); ok || h.InFlight("bob@example.com") != 1 {
		t.Errorf("a delivery began on a frozen mailbox")
	}
	release()
	if n := h.InFlight("bob@example.com"); n != 0 {
		t.Errorf("in flight after the release: %d", n)
	}
	if (*Holds)(nil).InFlight("bob@example.com") != 0 {
		t.Error("a nil Holds counts deliveries")
	}
}
