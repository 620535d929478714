package imapd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

func TestListFolders(t *testing.T) {
	folders := []store.FolderInfo{
		{Name: "INBOX"}, {Name: "INBOX/Receipts"}, {Name: "Archive", SpecialUse: `\Archive`},
		{Name: "Sent", SpecialUse: `\Sent`}, {Name: "Work/Clients/Acme"}, {Name: "Work/Admin"},
	}
	subs := []string{"INBOX", "Sent", "Work/Clients/Acme", "Gone"}
	render := func(list []*imap.ListData) string {
		var parts []string
		for _, d := range list {
			var attrs []string
			for _, a := range d.Attrs {
				attrs = append(attrs, string(a))
			}
			s := d.Mailbox + "(" + strings.Join(attrs, " ") + ")"
			if d.ChildInfo != nil {
				s += "+CHILDINFO"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct {
		ref, pattern string
		opts         imap.ListOptions
		want         string
	}{
		{"", "%", imap.ListOptions{},
			`INBOX(\HasChildren) Archive(\Archive \HasNoChildren) Sent(\Sent \HasNoChildren) Work(\Noselect \HasChildren)`},
		{"", "*", imap.ListOptions{},
			`INBOX(\HasChildren) INBOX/Receipts(\HasNoChildren) Archive(\Archive \HasNoChildren) Sent(\Sent \HasNoChildren) ` +
				`Work(\Noselect \HasChildren) Work/Admin(\HasNoChildren) Work/Clients(\Noselect \HasChildren) Work/Clients/Acme(\HasNoChildren)`},
		{"Work/", "%", imap.ListOptions{}, `Work/Admin(\HasNoChildren) Work/Clients(\Noselect \HasChildren)`},
		{"Work", "%", imap.ListOptions{}, `Work/Admin(\HasNoChildren) Work/Clients(\Noselect \HasChildren)`},
		{"Work/", "/Sent", imap.ListOptions{}, `Sent(\Sent \HasNoChildren)`}, // a pattern from the root ignores ref
		{"", "inbox/%", imap.ListOptions{}, `INBOX/Receipts(\HasNoChildren)`},
		{"", "Inbox", imap.ListOptions{}, `INBOX(\HasChildren)`},
		{"", "inboxes", imap.ListOptions{}, ``},
		{"", "*", imap.ListOptions{SelectSpecialUse: true}, `Archive(\Archive \HasNoChildren) Sent(\Sent \HasNoChildren)`},
		{"", "*", imap.ListOptions{SelectSubscribed: true},
			`INBOX(\HasChildren \Subscribed) Gone(\NonExistent \Subscribed) Sent(\Sent \HasNoChildren \Subscribed) Work/Clients/Acme(\HasNoChildren \Subscribed)`},
		{"", "%", imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true},
			`INBOX(\HasChildren \Subscribed) Gone(\NonExistent \Subscribed) Sent(\Sent \HasNoChildren \Subscribed) Work(\Noselect \HasChildren)+CHILDINFO`},
		{"", "W*", imap.ListOptions{ReturnSubscribed: true},
			`Work(\Noselect \HasChildren) Work/Admin(\HasNoChildren) Work/Clients(\Noselect \HasChildren) Work/Clients/Acme(\HasNoChildren \Subscribed)`},
	} {
		got := render(listFolders(folders, subs, tc.ref, []string{tc.pattern}, &tc.opts))
		if got != tc.want {
			t.Errorf("LIST %s %q %q:\n got %s\nwant %s", optString(tc.opts), tc.ref, tc.pattern, got, tc.want)
		}
	}
	// Several patterns: each name once.
	got := render(listFolders(folders, subs, "", []string{"Sent", "S*", "Archive"}, &imap.ListOptions{}))
	if want := `Archive(\Archive \HasNoChildren) Sent(\Sent \HasNoChildren)`; got != want {
		t.Errorf("two patterns: got %s, want %s", got, want)
	}
}

func optString(o imap.ListOptions) string {
	return fmt.Sprintf("%+v", o)
}
