package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// transact sends one command and returns every line up to and including its tagged response.
func (c *rawConn) transact(tag, command string) []string {
	c.t.Helper()
	c.send(tag + " " + command)
	return c.until(tag)
}

// checkLines fails the test unless got is want, line for line; a want ending in "*" matches
// any line with that prefix (the free text of a tagged response).
func checkLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		if p, prefix := strings.CutSuffix(want[i], "*"); prefix {
			ok = strings.HasPrefix(got[i], p)
		} else {
			ok = got[i] == want[i]
		}
	}
	if !ok {
		t.Errorf("%s answered\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// sizedMessage is a message of exactly n bytes.
func sizedMessage(n int) string {
	m := message("sized", "")
	return m[:len(m)-2] + strings.Repeat("x", n-len(m)) + "\r\n"
}

// rawLogin is a raw conversation, logged in as user.
func (e *env) rawLogin(t *testing.T, user string) *rawConn {
	c := e.raw(t)
	c.send(fmt.Sprintf("l1 LOGIN %s %q", user, password))
	c.expect("l1 OK")
	return c
}

// Bob's quota is 4000 bytes: 4 KiB rounded up. His usage rounds up too: 1025 bytes are 2 KiB.
func TestQuotaReportsStorageInKiB(t *testing.T) {
	e := newEnv(t)
	msg := e.deliver(bob, "INBOX", sizedMessage(1025))
	if msg.Size != 1025 {
		t.Fatalf("the store counts the message as %d bytes, want 1025", msg.Size)
	}
	c := e.rawLogin(t, bob)

	caps := c.transact("a1", "CAPABILITY")[0]
	for _, want := range []string{" QUOTA ", " QUOTA=RES-STORAGE "} {
		if !strings.Contains(caps+" ", want) {
			t.Errorf("CAPABILITY lacks %q: %s", want, caps)
		}
	}
	for _, unwanted := range []string{"QUOTA=RES-MESSAGE", "QUOTASET"} {
		if strings.Contains(caps, unwanted) {
			t.Errorf("CAPABILITY offers %s: %s", unwanted, caps)
		}
	}
	checkLines(t, "GETQUOTAROOT INBOX", c.transact("a2", "GETQUOTAROOT inbox"),
		`* QUOTAROOT INBOX ""`, `* QUOTA "" (STORAGE 2 4)`, "a2 OK GETQUOTAROOT completed")
	// Every folder shares the root.
	checkLines(t, "GETQUOTAROOT Sent", c.transact("a3", "GETQUOTAROOT Sent"),
		`* QUOTAROOT Sent ""`, `* QUOTA "" (STORAGE 2 4)`, "a3 OK GETQUOTAROOT completed")
	checkLines(t, `GETQUOTA ""`, c.transact("a4", `GETQUOTA ""`),
		`* QUOTA "" (STORAGE 2 4)`, "a4 OK GETQUOTA completed")

	// A delivery (SMTP's path into the store) counts at once: 1025 + 2000 bytes are 3 KiB.
	e.deliver(bob, "Archive", sizedMessage(2000))
	checkLines(t, "GETQUOTA after a delivery", c.transact("a5", `GETQUOTA ""`),
		`* QUOTA "" (STORAGE 3 4)`, "a5 OK GETQUOTA completed")
	// What the client is told agrees with APPEND's refusal: 1000 more bytes would be 4025.
	c.send(fmt.Sprintf("a6 APPEND INBOX {%d}", 1000))
	if got := c.expect("a6 "); !strings.HasPrefix(got, "a6 NO [OVERQUOTA]") {
		t.Errorf("APPEND over the quota answered %q", got)
	}
}

// Alice has no quota: her folders are in no quota root, and the root "" does not exist.
func TestQuotaNoneMeansNoRoot(t *testing.T) {
	e := newEnv(t)
	e.deliver(alice, "INBOX", sizedMessage(5000))
	c := e.rawLogin(t, alice)
	checkLines(t, "GETQUOTAROOT INBOX", c.transact("a1", "GETQUOTAROOT INBOX"),
		"* QUOTAROOT INBOX", "a1 OK GETQUOTAROOT completed")
	checkLines(t, `GETQUOTA ""`, c.transact("a2", `GETQUOTA ""`),
		`a2 NO [NONEXISTENT] No quota root ""; GETQUOTAROOT INBOX names this mailbox's`)
}

func TestQuotaRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.raw(t)
	checkLines(t, "GETQUOTAROOT before login", c.transact("b1", "GETQUOTAROOT INBOX"),
		"b1 BAD GETQUOTAROOT is not allowed before LOGIN")
	c.send(fmt.Sprintf("l1 LOGIN %s %q", bob, password))
	c.expect("l1 OK")
	for _, tc := range []struct{ command, want string }{
		{"GETQUOTAROOT NoSuchFolder", `NO [NONEXISTENT] No folder named "NoSuchFolder"`},
		{"GETQUOTAROOT", "BAD *"},
		{"GETQUOTAROOT INBOX Sent", "BAD *"},
		{`GETQUOTA "User quota"`, `NO [NONEXISTENT] No quota root "User quota"; *`},
		{"GETQUOTA", "BAD GETQUOTA takes a quota root name*"},
		{"GETQUOTA (STORAGE)", "BAD GETQUOTA takes the quota root name as a string"},
		{`SETQUOTA "" (STORAGE 100000)`, "NO [NOPERM] Quotas are set by the administrator on the Mailbox in Kubernetes (spec.quota), not over IMAP"},
		{`SETQUOTA "" STORAGE`, "BAD SETQUOTA takes a quota root name and a list of limits*"},
	} {
		checkLines(t, tc.command, c.transact("a1", tc.command), "a1 "+tc.want)
	}
	// SETQUOTA changed nothing.
	checkLines(t, `GETQUOTA ""`, c.transact("a2", `GETQUOTA ""`), `* QUOTA "" (STORAGE 0 4)`, "a2 OK *")
}

// RFC 9208 4.2: STATUS DELETED and DELETED-STORAGE, the messages an EXPUNGE would remove and
// the bytes it would free.
func TestQuotaStatusDeletedItems(t *testing.T) {
	e := newEnv(t)
	e.deliver(bob, "INBOX", sizedMessage(1000), `\Deleted`)
	e.deliver(bob, "INBOX", sizedMessage(300))
	e.deliver(bob, "INBOX", sizedMessage(200), `\Deleted`, `\Seen`)
	c := e.rawLogin(t, bob)
	checkLines(t, "STATUS", c.transact("a1", "STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)"),
		"* STATUS INBOX (MESSAGES 3 DELETED 2 DELETED-STORAGE 1200)", "a1 OK STATUS completed")
	checkLines(t, "LIST RETURN (STATUS)", c.transact("a2", `LIST "" INBOX RETURN (STATUS (DELETED DELETED-STORAGE))`),
		`* LIST (\HasNoChildren) "/" INBOX`, "* STATUS INBOX (DELETED 2 DELETED-STORAGE 1200)", "a2 OK LIST completed")
}

// go-imap's client, written by others, reads the responses.
func TestQuotaGoIMAPClient(t *testing.T) {
	e := newEnv(t)
	e.deliver(bob, "INBOX", sizedMessage(3000))
	c := e.client(bob, nil)
	if !slices.Contains(c.Caps().QuotaResourceTypes(), imap.QuotaResourceStorage) {
		t.Errorf("go-imap sees quota resources %v", c.Caps().QuotaResourceTypes())
	}
	data, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 || data[0].Root != "" || data[0].Resources[imap.QuotaResourceStorage].Usage != 3 ||
		data[0].Resources[imap.QuotaResourceStorage].Limit != 4 {
		t.Errorf("GETQUOTAROOT INBOX = %+v, want root \"\" with STORAGE 3 of 4", data)
	}
	if err := c.SetQuota("", map[imap.QuotaResourceType]int64{imap.QuotaResourceStorage: 1 << 20}).Wait(); imapCode(err) != imap.ResponseCodeNoPerm {
		t.Errorf("SETQUOTA answered %v, want NO [NOPERM]", err)
	}
}
