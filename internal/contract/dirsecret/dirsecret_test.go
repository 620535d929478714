package dirsecret

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kubemail/kubemail/internal/contract/dirspec"
)

func bigSpec(n int) *dirspec.Spec {
	s := &dirspec.Spec{Domains: []dirspec.DomainSpec{{Name: "example.com"}},
		Aliases:            []dirspec.AliasSpec{{Address: "team@example.com", Members: []string{"u1@example.com", "u0@example.com"}}},
		UnavailableDomains: []string{"gone.example", "away.example"}}
	for i := n - 1; i >= 0; i-- {
		s.Mailboxes = append(s.Mailboxes, dirspec.MailboxSpec{Address: fmt.Sprintf("u%d@example.com", i),
			PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("s", 22) + "$" + strings.Repeat("h", 43)})
	}
	return s
}

func TestSplitAssembleRoundTrip(t *testing.T) {
	spec := bigSpec(500)
	parts, err := Split("mail", spec, "g1", 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 5 {
		t.Fatalf("500 mailboxes in 8 KiB parts gave only %d parts", len(parts))
	}
	var datas []map[string][]byte
	for i, p := range parts {
		if p.Name != SecretName("mail", i) {
			t.Fatalf("part %d named %q", i, p.Name)
		}
		if len(p.Data[KeyDirectory]) > 8<<10 {
			t.Fatalf("part %d has %d bytes", i, len(p.Data[KeyDirectory]))
		}
		datas = append(datas, p.Data)
	}
	got, err := Assemble(datas)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Mailboxes) != 500 || got.Mailboxes[0].Address != "u0@example.com" || len(got.Aliases) != 1 ||
		got.Aliases[0].Members[0] != "u0@example.com" {
		t.Fatalf("assembled %d mailboxes, first %q", len(got.Mailboxes), got.Mailboxes[0].Address)
	}
	// Every field survives the trip, in the directory's sorted order.
	if want := sortedCopy(spec); !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip changed the directory:\n got %+v\nwant %+v", got.UnavailableDomains, want.UnavailableDomains)
	}
}

func TestSplitIsDeterministic(t *testing.T) {
	a, _ := Split("mail", bigSpec(50), "g", 0)
	spec := bigSpec(50)
	spec.Mailboxes[0], spec.Mailboxes[49] = spec.Mailboxes[49], spec.Mailboxes[0]
	b, _ := Split("mail", spec, "g", 0)
	if len(a) != 1 || len(b) != 1 || !bytes.Equal(a[0].Data[KeyDirectory], b[0].Data[KeyDirectory]) {
		t.Fatal("the same directory in another order serialized differently")
	}
}

func TestAssembleRefusesMixedGenerations(t *testing.T) {
	parts, _ := Split("mail", bigSpec(200), "g1", 4<<10)
	newer, _ := Split("mail", bigSpec(200), "g2", 4<<10)
	datas := []map[string][]byte{parts[0].Data}
	for _, p := range newer[1:] {
		datas = append(datas, p.Data)
	}
	if _, err := Assemble(datas); err == nil || !strings.Contains(err.Error(), "generation") {
		t.Fatalf("mixed generations assembled: %v", err)
	}
	if _, err := Assemble(datas[:1]); err == nil || !strings.Contains(err.Error(), "parts") {
		t.Fatalf("missing parts assembled: %v", err)
	}
}
