package imapd

import (
	"fmt"
	"testing"
)

// LSUB lists subscriptions without attributes, and the unsubscribed parent "%" stops at as
// \Noselect, as Dovecot does (RFC 3501 6.3.9).
func TestLsubParentOfSubscribedChild(t *testing.T) {
	e := newEnv(t)
	c := e.rawSelected(t, "", "SELECT INBOX")
	c.until("s")
	for i, cmd := range []string{"CREATE a/b", "SUBSCRIBE a/b", "CREATE c", "SUBSCRIBE c", "DELETE c"} {
		tag := fmt.Sprint("p", i)
		c.send(tag + " " + cmd)
		c.expect(tag + " OK")
	}
	c.send(`l1 LSUB "" "%"`)
	got := c.until("l1")
	for _, want := range []string{`* LSUB (\Noselect) "/" a`, `* LSUB () "/" c`} {
		if !hasLine(got, want) {
			t.Errorf(`LSUB "" "%%" = %q, want a line %s`, got, want)
		}
	}
	c.send(`l2 LSUB "" "*"`)
	if got := c.until("l2"); !hasLine(got, `* LSUB () "/" a/b`) || hasLine(got, `* LSUB (\Noselect) "/" a`) {
		t.Errorf(`LSUB "" "*" = %q, want a/b and no parent`, got)
	}
}
