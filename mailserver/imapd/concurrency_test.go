package imapd

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kubemail/kubemail/internal/testutil"
)

// The load TestConcurrentSessionsAndDeliveries puts on alice's INBOX.
const (
	loadDeliverers   = 4
	loadPerDeliverer = 25
	loadAppenders    = 2
	loadPerAppender  = 25
	loadIdlers       = 3
	loadTotal        = loadDeliverers*loadPerDeliverer + loadAppenders*loadPerAppender
)

// Several IMAP sessions and deliveries work one mailbox at once: every message gets its own
// UID, the counts add up, and every idling client hears of every message.
func TestConcurrentSessionsAndDeliveries(t *testing.T) {
	e := newEnv(t)
	idling := startCountingIdlers(t, e)
	// A session flags everything it sees while mail pours in, exercising FETCH FLAGS updates
	// interleaved with EXISTS.
	flagger := e.client(alice, nil)
	if _, err := flagger.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	l := &uidLog{}
	var wg sync.WaitGroup
	deliverThroughStore(t, e, &wg, l)
	appendByIMAP(t, e, &wg, l)
	stop := make(chan struct{})
	flagged := flagUntil(flagger, stop)
	wg.Wait()
	close(stop)
	if err := <-flagged; err != nil {
		t.Fatalf("flagging session: %v", err)
	}

	uids := l.uids
	slices.Sort(uids)
	if len(uids) != loadTotal || len(slices.Compact(slices.Clone(uids))) != loadTotal {
		t.Fatalf("got %d UIDs, %d distinct; want %d", len(uids), len(slices.Compact(slices.Clone(uids))), loadTotal)
	}
	checkIdlersAndStatus(t, idling, flagger, uids)
	fresh := checkFreshSession(t, e, uids)
	expungeHalf(t, e, uids, []*imapclient.Client{flagger, idling[0].c, fresh})
}

// countingIdler is an IMAP session idling on INBOX that remembers the highest EXISTS it heard.
type countingIdler struct {
	c       *imapclient.Client
	mu      sync.Mutex
	highest uint32
	idle    *imapclient.IdleCommand
}

// startCountingIdlers opens the idling sessions; each fails the test if EXISTS ever goes down.
func startCountingIdlers(t *testing.T, e *env) []*countingIdler {
	var idling []*countingIdler
	for i := 0; i < loadIdlers; i++ {
		id := &countingIdler{}
		id.c = e.client(alice, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					id.mu.Lock()
					// EXISTS only grows here, one message at a time or more.
					if *d.NumMessages < id.highest {
						t.Errorf("idler %d: EXISTS went down from %d to %d", i, id.highest, *d.NumMessages)
					}
					id.highest = *d.NumMessages
					id.mu.Unlock()
				}
			},
		}})
		if _, err := id.c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		idle, err := id.c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		id.idle = idle
		idling = append(idling, id)
	}
	return idling
}

// uidLog collects the UIDs the deliveries and appends were given.
type uidLog struct {
	mu   sync.Mutex
	uids []uint32
}

func (l *uidLog) record(uid uint32) {
	l.mu.Lock()
	l.uids = append(l.uids, uid)
	l.mu.Unlock()
}

// deliverThroughStore starts the deliverers, which put messages in INBOX straight through the store.
func deliverThroughStore(t *testing.T, e *env, wg *sync.WaitGroup, l *uidLog) {
	inbox := e.folder(alice, "INBOX")
	for d := 0; d < loadDeliverers; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < loadPerDeliverer; i++ {
				m, err := inbox.Append(strings.NewReader(message(fmt.Sprintf("delivery %d/%d", d, i), "x")), nil, time.Time{})
				if err != nil {
					t.Error(err)
					return
				}
				l.record(m.UID)
			}
		}()
	}
}

// appendByIMAP starts the appenders, IMAP sessions that APPEND to INBOX.
func appendByIMAP(t *testing.T, e *env, wg *sync.WaitGroup, l *uidLog) {
	for a := 0; a < loadAppenders; a++ {
		c := e.client(alice, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < loadPerAppender; i++ {
				msg := message(fmt.Sprintf("append %d/%d", a, i), "y")
				cmd := c.Append("INBOX", int64(len(msg)), nil)
				cmd.Write([]byte(msg))
				cmd.Close()
				data, err := cmd.Wait()
				if err != nil {
					t.Error(err)
					return
				}
				l.record(uint32(data.UID))
			}
		}()
	}
}

// flagUntil flags every message the flagger sees until stop is closed, then sends nil, or
// sends the first error.
func flagUntil(flagger *imapclient.Client, stop <-chan struct{}) <-chan error {
	flagged := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				flagged <- nil
				return
			default:
			}
			// "1:*" names no message in an empty folder (BAD): until mail has arrived, a
			// NOOP brings the EXISTS.
			if mbox := flagger.Mailbox(); mbox == nil || mbox.NumMessages == 0 {
				if err := flagger.Noop().Wait(); err != nil {
					flagged <- err
					return
				}
				continue
			}
			err := flagger.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd,
				Silent: true, Flags: []imap.Flag{"$Seen-By-Test"}}, nil).Close()
			if err != nil {
				flagged <- err
				return
			}
		}
	}()
	return flagged
}

// checkIdlersAndStatus checks that every idler heard of every message and that STATUS counts
// them all, with UIDNEXT one past the highest UID given.
func checkIdlersAndStatus(t *testing.T, idling []*countingIdler, flagger *imapclient.Client, uids []uint32) {
	for _, id := range idling {
		testutil.Eventually(t, fmt.Sprintf("an idler to see %d messages", loadTotal), func() bool {
			id.mu.Lock()
			defer id.mu.Unlock()
			return id.highest == loadTotal
		})
		if err := id.idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := id.idle.Wait(); err != nil {
			t.Fatal(err)
		}
		if n := id.c.Mailbox().NumMessages; n != loadTotal {
			t.Errorf("idler believes %d messages, want %d", n, loadTotal)
		}
	}
	st, err := flagger.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != loadTotal || uint32(st.UIDNext) != uids[len(uids)-1]+1 {
		t.Errorf("STATUS = %d messages, UIDNEXT %d; want %d, %d", *st.NumMessages, st.UIDNext, loadTotal, uids[len(uids)-1]+1)
	}
}

// checkFreshSession checks that a fresh session sees exactly the recorded UIDs, in order,
// numbered 1..total, and returns the session.
func checkFreshSession(t *testing.T, e *env, uids []uint32) *imapclient.Client {
	fresh := e.client(alice, nil)
	if _, err := fresh.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs := fetch(t, fresh, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true})
	if len(msgs) != loadTotal {
		t.Fatalf("FETCH 1:* returned %d messages", len(msgs))
	}
	for i, m := range msgs {
		if m.SeqNum != uint32(i+1) || uint32(m.UID) != uids[i] {
			t.Fatalf("message %d: seq %d UID %d, want UID %d", i+1, m.SeqNum, m.UID, uids[i])
		}
	}
	return fresh
}

// expungeHalf has the last session expunge half the mail; the other sessions converge on the
// same count, and so does the store.
func expungeHalf(t *testing.T, e *env, uids []uint32, sessions []*imapclient.Client) {
	fresh := sessions[len(sessions)-1]
	var odd imap.UIDSet
	for i, u := range uids {
		if i%2 == 1 {
			odd.AddNum(imap.UID(u))
		}
	}
	if err := fresh.Store(odd, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.UIDExpunge(odd).Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range sessions {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if n := c.Mailbox().NumMessages; n != loadTotal/2 {
			t.Errorf("after the expunge a session believes %d messages, want %d", n, loadTotal/2)
		}
	}
	if n := e.folder(alice, "INBOX").Status().Messages; n != loadTotal/2 {
		t.Errorf("store holds %d messages, want %d", n, loadTotal/2)
	}
}

// UIDVALIDITY, UIDs and flags survive a restart; UIDVALIDITY, UIDs and content survive losing
// the journal (the index is rebuilt from the message files), and no UID is reused.
func TestRestartKeepsUIDsAndFlags(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, func(o *envOptions) { o.root = root })
	c := e.client(alice, nil)
	for i := 1; i <= 4; i++ {
		appendMsg(t, c, "INBOX", message(fmt.Sprint("keep ", i), "content"), nil)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for uid, flags := range map[uint32][]imap.Flag{1: {imap.FlagSeen}, 2: {imap.FlagFlagged, "$Work"}, 4: {imap.FlagDeleted}} {
		if err := c.Store(uidSet(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Expunge().Close(); err != nil { // UID 4 goes; UIDNEXT stays 5
		t.Fatal(err)
	}
	type state struct {
		uidValidity uint32
		uidNext     imap.UID
		flags       map[imap.UID][]imap.Flag
		bodies      map[imap.UID]string
	}
	snapshot := func(e *env) state {
		c := e.client(alice, nil)
		sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		st := state{uidValidity: sel.UIDValidity, uidNext: sel.UIDNext, flags: map[imap.UID][]imap.Flag{}, bodies: map[imap.UID]string{}}
		whole := &imap.FetchItemBodySection{Peek: true}
		for _, m := range fetch(t, c, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}},
			&imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{whole}}) {
			st.flags[m.UID] = m.Flags
			st.bodies[m.UID] = string(m.FindBodySection(whole))
		}
		c.Logout().Wait()
		return st
	}
	before := snapshot(e)
	if len(before.flags) != 3 || before.uidNext != 5 {
		t.Fatalf("before restart: %+v", before)
	}

	e.close()
	again := newEnv(t, func(o *envOptions) { o.root = root })
	after := snapshot(again)
	if after.uidValidity != before.uidValidity || after.uidNext != before.uidNext {
		t.Errorf("after restart UIDVALIDITY %d UIDNEXT %d, before %d %d", after.uidValidity, after.uidNext, before.uidValidity, before.uidNext)
	}
	for uid, flags := range before.flags {
		if !slices.Equal(after.flags[uid], flags) || after.bodies[uid] != before.bodies[uid] {
			t.Errorf("UID %d after restart: flags %v, before %v", uid, after.flags[uid], flags)
		}
	}

	// Lose the journal: the store rebuilds the index from cur/.
	again.close()
	journal := filepath.Join(root, "mailboxes", "example.com", "alice", "INBOX", "journal")
	if err := os.Remove(journal); err != nil {
		t.Fatalf("removing the journal: %v", err)
	}
	rebuilt := newEnv(t, func(o *envOptions) { o.root = root })
	got := snapshot(rebuilt)
	if got.uidValidity != before.uidValidity {
		t.Errorf("after rebuild UIDVALIDITY %d, before %d", got.uidValidity, before.uidValidity)
	}
	if got.uidNext < before.uidNext {
		t.Errorf("after rebuild UIDNEXT %d went below %d: UIDs would be reused", got.uidNext, before.uidNext)
	}
	if len(got.bodies) != len(before.bodies) {
		t.Errorf("after rebuild %d messages, before %d", len(got.bodies), len(before.bodies))
	}
	for uid, body := range before.bodies {
		if got.bodies[uid] != body {
			t.Errorf("after rebuild UID %d has %q, before %q", uid, got.bodies[uid], body)
		}
	}
	// Standard flags live in the file names and survive a rebuild; keywords ($Work) live only in
	// the journal and are lost with it.
	for uid, flags := range before.flags {
		want := slices.DeleteFunc(slices.Clone(flags), func(f imap.Flag) bool { return !strings.HasPrefix(string(f), `\`) })
		if !slices.Equal(got.flags[uid], want) {
			t.Errorf("UID %d: flags %v before the journal was lost, %v after the rebuild, want %v", uid, flags, got.flags[uid], want)
		}
	}
	c = rebuilt.client(alice, nil)
	data := appendMsg(t, c, "INBOX", message("new", "after the rebuild"), nil)
	if data.UID < before.uidNext {
		t.Errorf("APPEND after rebuild got UID %d, below the old UIDNEXT %d", data.UID, before.uidNext)
	}
}
