package imapd

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/kubemail/kubemail/mailserver/store"
)

// TestSearchHeaderQuickReject checks that the raw-bytes test that spares most header searches
// a parse never hides a match the parsed header has.
func TestSearchHeaderQuickReject(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	box, err := st.Mailbox("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	inbox := box.Inbox()
	msgs := []string{
		"From: Alice Smith <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Quarterly\r\n \treport\r\n\r\nbody with Carol\r\n",
		"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\r\n\r\nhi\r\n",
		"From: Dave <dave@example.com>\r\nSubject: " + strings.Repeat("long ", 2000) + "ÄRGER\r\n\r\nbody\r\n",
	}
	var uids []uint32
	for _, m := range msgs {
		msg, err := inbox.Append(strings.NewReader(m), nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, msg.UID)
	}
	all, _ := inbox.Messages()
	for _, tc := range []struct {
		key, value string
		want       []bool // per message
	}{
		{"From", "alice", []bool{true, false, false}},
		{"From", "ALICE", []bool{true, false, false}},
		{"From", "bob", []bool{false, false, false}}, // in To, not in From
		{"To", "bob", []bool{true, false, false}},
		{"Subject", "REPORT", []bool{true, false, false}},
		{"Subject", "quarterly report", []bool{true, false, false}}, // across the fold
		{"Subject", "grüße", []bool{false, true, false}},            // encoded word
		{"From", "jürgen", []bool{false, true, false}},
		{"Subject", "ärger", []bool{false, false, true}}, // beyond the read buffer, case folded
		{"Subject", "carol", []bool{false, false, false}},
		{"Subject", "", []bool{true, true, true}},
	} {
		for i, m := range all {
			c := &candidate{folder: inbox, seq: uint32(i + 1), msg: m}
			cr := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: tc.key, Value: tc.value}}}
			if got := c.match(cr); got != tc.want[i] {
				t.Errorf("HEADER %s %q on message %d = %v, want %v", tc.key, tc.value, uids[i], got, tc.want[i])
			}
		}
	}
}
