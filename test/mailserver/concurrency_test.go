package mailserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kubemail/kubemail/internal/contract/config"
	"github.com/kubemail/kubemail/internal/testutil"
)

// What the test does with a delivered message, carried in its X-Role header so that every
// actor can tell from the message alone whether it is its to take. The roles split the
// messages that leave INBOX between POP3 and MOVE: a message both downloaded-and-deleted by
// POP3 and moved by IMAP would legitimately exist twice (the POP3 client's copy and the
// Archive one), and "exactly once" could not be asserted.
const (
	roleKeep = "keep" // stays in INBOX; the flagging session marks it \Seen
	rolePOP  = "pop"  // downloaded and deleted over POP3
	roleMove = "move" // moved to Archive over IMAP
)

func concurrencyRole(i int) string {
	switch i % 4 {
	case 0:
		return rolePOP
	case 1:
		return roleMove
	}
	return roleKeep
}

var roleRE = regexp.MustCompile(`X-Role: (\S+)\r\n`)

// The load TestConcurrentAccessToOneMailbox puts on alice's INBOX.
const (
	loadTotal       = 200
	loadSenders     = 4
	loadPOPWorkers  = 2
	loadPerSession  = 6 // POP3 deletions per session, so the work takes several sessions
	loadIdlers      = 2
	loadIdleBatch   = 8 // notifications an idler takes before leaving IDLE to check its view
	loadMoveBatch   = 3
	loadMaxDuration = 60 * time.Second
)

// mailboxLoad is one run of TestConcurrentAccessToOneMailbox: the server, the sessions working
// alice's INBOX, and what each of them reports.
type mailboxLoad struct {
	t                              *testing.T
	s                              *server
	ctx                            context.Context
	imapsAddr, pop3sAddr, smtpAddr string
	want                           map[string]int // messages per role
	idling                         []*idler
	flagger, mover                 *imapclient.Client
	led                            *ledger
	stop                           chan struct{} // closed once deliveries, moves and POP3 deletions are over
	idleWG, flagWG, workWG         sync.WaitGroup

	stored                     int // messages the flagging session marked \Seen
	moves                      moveResult
	pops                       [loadPOPWorkers]popResult
	delivered, popped, removed int
}

// TestConcurrentAccessToOneMailbox works alice's INBOX from every side at once through the
// real binary: SMTP deliveries from several connections, two IMAP sessions in IDLE, one
// marking messages \Seen, one moving some to Archive, and POP3 sessions downloading and
// deleting others. Afterwards every delivered message is in exactly one place, UIDs are
// ordered, counts agree, and the idling sessions heard of every arrival and every removal.
func TestConcurrentAccessToOneMailbox(t *testing.T) {
	l := startMailboxLoad(t)
	l.startIdlers()
	l.startSenders()
	l.startFlagger()
	l.startMover()
	l.startPOPWorkers()
	l.waitForLoad()
	l.lateArrival()
	inbox, archive, unseen := l.readFinal()
	lost, dup, misplaced := l.checkPlaces(inbox, archive)
	l.checkFolders(inbox, archive, unseen)
	l.checkPOPAndLogs()
	t.Logf("delivered %d over SMTP (%d senders); INBOX %d, Archive %d (moved %d in %d MOVEs), POP3 deleted %d; "+
		"lost %d, duplicated %d, misplaced %d", l.delivered, loadSenders, inbox.count, archive.count, len(l.moves.src),
		l.moves.commands, l.popped, lost, dup, misplaced)
	t.Logf("flagging session: %d messages marked \\Seen", l.stored)
}

// startMailboxLoad starts the server, creates Archive and opens the idling, flagging and moving
// sessions.
func startMailboxLoad(t *testing.T) *mailboxLoad {
	want := map[string]int{}
	for i := 0; i < loadTotal; i++ {
		want[concurrencyRole(i)]++
	}

	s := startServer(t, func(c *config.Config) {
		c.Listeners.IMAPS = config.Listener{Address: "127.0.0.1:0"}
		c.Listeners.POP3S = config.Listener{Address: "127.0.0.1:0"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	t.Cleanup(cancel)
	l := &mailboxLoad{t: t, s: s, ctx: ctx, imapsAddr: s.addr("imaps"), pop3sAddr: s.addr("pop3s"), smtpAddr: s.addr("smtp"),
		want: want, stop: make(chan struct{})}

	setup := dialIMAP(t, l.imapsAddr, nil)
	var exists *imap.Error
	if err := setup.Create("Archive", nil).Wait(); err != nil && !(errors.As(err, &exists) && exists.Code == imap.ResponseCodeAlreadyExists) {
		t.Fatalf("CREATE Archive: %v", err)
	}
	setup.Logout().Wait()

	for i := 0; i < loadIdlers; i++ {
		l.idling = append(l.idling, newIdler(t, fmt.Sprintf("idler %d", i+1), l.imapsAddr))
	}
	l.flagger = dialIMAP(t, l.imapsAddr, nil)
	l.mover = dialIMAP(t, l.imapsAddr, nil)
	for _, c := range []*imapclient.Client{l.flagger, l.mover} {
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}

	l.led = &ledger{delivered: map[string]string{}, popped: map[string]string{}, roleOf: map[string]string{},
		change: make(chan struct{}, loadPOPWorkers)}
	return l
}

func (l *mailboxLoad) startIdlers() {
	for _, id := range l.idling {
		l.idleWG.Add(1)
		go func() {
			defer l.idleWG.Done()
			id.run(l.ctx, l.stop, loadIdleBatch)
		}()
	}
}

// startSenders: several SMTP connections deliver the numbered messages between them.
func (l *mailboxLoad) startSenders() {
	t, ctx, led := l.t, l.ctx, l.led
	next := make(chan int, loadTotal)
	for i := 0; i < loadTotal; i++ {
		next <- i
	}
	close(next)
	for range loadSenders {
		l.workWG.Add(1)
		go func() {
			defer l.workWG.Done()
			for i := range next {
				if ctx.Err() != nil {
					return
				}
				token, role := fmt.Sprintf("cc-%03d", i), concurrencyRole(i)
				if err := sendPlain(l.smtpAddr, "load@elsewhere.net", "alice@example.com", concurrencyMessage(token, role)); err != nil {
					t.Errorf("delivering %s: %v", token, err)
					continue
				}
				led.deliveredOne(token, role)
			}
		}()
	}
}

// startFlagger: one IMAP session marks what it finds unseen as \Seen until the others are done.
func (l *mailboxLoad) startFlagger() {
	l.flagWG.Add(1)
	go func() {
		defer l.flagWG.Done()
		l.stored = flagUnseen(l.t, l.ctx, l.flagger, l.stop)
	}()
}

// startMover: one IMAP session moves the move-role messages to Archive a few at a time.
func (l *mailboxLoad) startMover() {
	l.workWG.Add(1)
	go func() {
		defer l.workWG.Done()
		l.moves = moveToArchive(l.t, l.ctx, l.mover, l.want[roleMove], loadMoveBatch)
	}()
}

// startPOPWorkers: POP3 workers take turns on the maildrop (the lock makes them), each session
// deleting a few pop-role messages.
func (l *mailboxLoad) startPOPWorkers() {
	for w := range loadPOPWorkers {
		l.workWG.Add(1)
		go func() {
			defer l.workWG.Done()
			l.pops[w] = popWorker(l.t, l.ctx, l.pop3sAddr, l.led, l.want[rolePOP], loadPerSession)
		}()
	}
}

// waitForLoad waits for deliveries, moves and POP3 deletions to end and for the idlers, still
// idling, to hear of every arrival and every removal; then it stops the idlers and the flagger.
func (l *mailboxLoad) waitForLoad() {
	t, ctx, led := l.t, l.ctx, l.led
	l.workWG.Wait()
	if ctx.Err() != nil {
		t.Errorf("the load did not finish within %v", loadMaxDuration)
	}
	led.mu.Lock()
	l.delivered, l.popped = len(led.delivered), len(led.popped)
	led.mu.Unlock()
	l.removed = l.popped + len(l.moves.src)
	for _, id := range l.idling {
		untilDone(ctx).Eventually(t, fmt.Sprintf("%s to see %d arrivals and %d expunges", id.name, l.delivered, l.removed), func() bool {
			arrivals, expunges := id.counts()
			return arrivals == l.delivered && expunges == l.removed
		})
	}
	close(l.stop)
	l.idleWG.Wait()
	l.flagWG.Wait()
}

// lateArrival: mail that arrives while a session is between commands is announced as soon as
// it idles again, not with whatever change comes next (so nothing else may change meanwhile).
func (l *mailboxLoad) lateArrival() {
	t := l.t
	late := "cc-late"
	if err := sendPlain(l.smtpAddr, "load@elsewhere.net", "alice@example.com", concurrencyMessage(late, roleKeep)); err != nil {
		t.Fatalf("delivering %s: %v", late, err)
	}
	l.led.deliveredOne(late, roleKeep)
	l.delivered++
	lateCtx, lateCancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer lateCancel()
	for _, id := range l.idling {
		idle, err := id.c.Idle()
		if err != nil {
			t.Fatalf("%s: IDLE: %v", id.name, err)
		}
		untilDone(lateCtx).Eventually(t, fmt.Sprintf("%s to hear in IDLE of a message delivered before it idled", id.name), func() bool {
			arrivals, _ := id.counts()
			return arrivals == l.delivered
		})
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
		id.checkView()
	}
	l.stored += flagUnseen(t, l.ctx, l.flagger, l.stop) // one last pass, for the late message
}

// readFinal reads the folders as a fresh session sees them, and INBOX's unseen messages.
func (l *mailboxLoad) readFinal() (inbox, archive folderView, unseen *imap.SearchData) {
	t := l.t
	final := dialIMAP(t, l.imapsAddr, nil)
	inbox = readFolder(t, final, "INBOX")
	archive = readFolder(t, final, "Archive")
	if _, err := final.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	unseen, err := final.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	final.Logout().Wait()
	return inbox, archive, unseen
}

// checkPlaces checks that every delivered token is in exactly one place, and in the one its
// role sends it to.
func (l *mailboxLoad) checkPlaces(inbox, archive folderView) (lost, dup, misplaced int) {
	t, led := l.t, l.led
	places := map[string][]string{}
	for tok := range inbox.tokens {
		places[tok] = append(places[tok], "INBOX")
	}
	for tok := range archive.tokens {
		places[tok] = append(places[tok], "Archive")
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	for tok := range led.popped {
		places[tok] = append(places[tok], "POP3")
	}
	wantPlace := map[string]string{roleKeep: "INBOX", roleMove: "Archive", rolePOP: "POP3"}
	for tok, role := range led.delivered {
		switch p := places[tok]; {
		case len(p) == 0:
			lost++
			t.Errorf("message %s (%s) is nowhere", tok, role)
		case len(p) > 1:
			dup++
			t.Errorf("message %s (%s) is in %v", tok, role, p)
		case p[0] != wantPlace[role]:
			misplaced++
			t.Errorf("message %s (%s) is in %s, want %s", tok, role, p[0], wantPlace[role])
		}
	}
	for tok, p := range places {
		if _, ok := led.delivered[tok]; !ok {
			t.Errorf("message %s in %v was never acknowledged by SMTP", tok, p)
		}
	}
	return lost, dup, misplaced
}

// checkFolders checks INBOX's count, that COPYUID named exactly what Archive holds, that every
// INBOX message is \Seen, and that each idler's view of INBOX is right.
func (l *mailboxLoad) checkFolders(inbox, archive folderView, unseen *imap.SearchData) {
	t := l.t
	if inbox.count != l.delivered-l.removed || len(inbox.tokens) != inbox.count {
		t.Errorf("INBOX holds %d messages (%d tokens), want %d delivered - %d removed", inbox.count, len(inbox.tokens),
			l.delivered, l.removed)
	}
	// COPYUID named exactly the messages Archive holds.
	if !slices.Equal(l.moves.dst, archive.uids) {
		t.Errorf("COPYUID destination UIDs %v, Archive holds %v", l.moves.dst, archive.uids)
	}
	if n := len(unseen.AllUIDs()); n != 0 {
		t.Errorf("%d INBOX messages are not \\Seen after the flagging session's last pass: %v", n, unseen.AllUIDs())
	}
	for _, id := range l.idling {
		arrivals, expunges := id.counts()
		id.mu.Lock()
		if id.count != uint32(inbox.count) {
			t.Errorf("%s believes INBOX holds %d messages, it holds %d", id.name, id.count, inbox.count)
		}
		t.Logf("%s: %d EXISTS growths, %d EXPUNGEs, %d arrivals implied (EXISTS + EXPUNGEs), %d IDLE rounds, "+
			"%d distinct UIDs learned by FETCH, %d FETCHes short of messages expunged meanwhile", id.name, id.growths,
			expunges, arrivals, id.rounds, len(id.learned), id.shortFetches)
		id.mu.Unlock()
	}
}

// checkPOPAndLogs checks that POP3 sessions probed the maildrop lock and that the server logged
// no errors.
func (l *mailboxLoad) checkPOPAndLogs() {
	t := l.t
	var sessions, inUse, probes, vanished int
	for _, p := range l.pops {
		sessions += p.sessions
		inUse += p.inUse
		probes += p.probes
		vanished += p.vanished
	}
	if probes == 0 {
		t.Error("no POP3 session probed the maildrop lock")
	}
	if strings.Contains(l.s.logs(), "level=ERROR") {
		t.Error("the server logged errors")
	}
	t.Logf("POP3: %d sessions, %d logins refused [IN-USE] while another worker held the maildrop, %d lock probes "+
		"refused, %d messages gone between UIDL and RETR", sessions, inUse, probes, vanished)
}

func concurrencyMessage(token, role string) string {
	return fmt.Sprintf("From: load@elsewhere.net\r\nTo: alice@example.com\r\nSubject: concurrency %s\r\n"+
		"X-Token: %s\r\nX-Role: %s\r\n\r\n%s.a line POP3 must dot-stuff\r\n", token, token, role,
		strings.Repeat("concurrency body line\r\n", 20))
}

// ledger is what the actors agree happened.
type ledger struct {
	mu        sync.Mutex
	delivered map[string]string // token -> role, once SMTP answered 250
	popped    map[string]string // token -> UIDL, once QUIT confirmed the deletion
	roleOf    map[string]string // UIDL -> role, as a POP3 session read it
	change    chan struct{}     // a token per POP3 worker when mail arrives
}

func (l *ledger) deliveredOne(token, role string) {
	l.mu.Lock()
	l.delivered[token] = role
	l.mu.Unlock()
	for range cap(l.change) {
		select {
		case l.change <- struct{}{}:
		default:
		}
	}
}

// idler is an IMAP session in IDLE on INBOX that keeps its own count from the EXISTS and
// EXPUNGE responses it gets, as a mail client does.
type idler struct {
	t    *testing.T
	name string
	c    *imapclient.Client
	wake chan struct{}

	mu       sync.Mutex
	count    uint32 // messages the session believes INBOX holds
	growths  int    // EXISTS responses that raised count
	expunges int
	rounds   int
	learned  map[imap.UID]bool
	// shortFetches counts FETCHes that left out messages expunged meanwhile (see checkView).
	shortFetches int
}

func newIdler(t *testing.T, name, addr string) *idler {
	id := &idler{t: t, name: name, wake: make(chan struct{}, 1), learned: map[imap.UID]bool{}}
	id.c = dialIMAP(t, addr, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages == nil {
				return
			}
			id.mu.Lock()
			switch n := *d.NumMessages; {
			case n < id.count:
				// RFC 9051 section 7.4.1: EXISTS never announces fewer messages; only EXPUNGE removes.
				t.Errorf("%s: EXISTS %d after %d without EXPUNGE", name, n, id.count)
			case n > id.count:
				id.growths++
			}
			id.count = *d.NumMessages
			id.mu.Unlock()
			id.signal()
		},
		Expunge: func(seq uint32) {
			id.mu.Lock()
			if seq == 0 || seq > id.count {
				t.Errorf("%s: EXPUNGE %d with %d messages", name, seq, id.count)
			} else {
				id.count--
			}
			id.expunges++
			id.mu.Unlock()
			id.signal()
		},
	})
	sel, err := id.c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	id.mu.Lock()
	id.count = sel.NumMessages
	id.mu.Unlock()
	return id
}

func (id *idler) signal() {
	select {
	case id.wake <- struct{}{}:
	default:
	}
}

// counts returns the arrivals the session's responses imply (the messages it believes INBOX
// holds plus those it was told left) and the expunges it was told of.
func (id *idler) counts() (arrivals, expunges int) {
	id.mu.Lock()
	defer id.mu.Unlock()
	return int(id.count) + id.expunges, id.expunges
}

func (id *idler) notifications() int {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.growths + id.expunges
}

// run idles until stop, leaving IDLE after every batch notifications to check its view against
// the server's (checkView), then idling again: updates that arrive between two IDLEs must not
// be lost either.
func (id *idler) run(ctx context.Context, stop <-chan struct{}, batch int) {
	for round := 0; round < 10000; round++ {
		idle, err := id.c.Idle()
		if err != nil {
			id.t.Errorf("%s: IDLE: %v", id.name, err)
			return
		}
		id.mu.Lock()
		id.rounds++
		id.mu.Unlock()
		start, stopping := id.notifications(), false
		for !stopping && id.notifications()-start < batch {
			select {
			case <-id.wake:
			case <-stop:
				stopping = true
			case <-ctx.Done():
				stopping = true
			}
		}
		if err := idle.Close(); err != nil {
			id.t.Errorf("%s: ending IDLE: %v", id.name, err)
			return
		}
		if err := idle.Wait(); err != nil {
			id.t.Errorf("%s: IDLE: %v", id.name, err)
			return
		}
		id.checkView()
		if stopping {
			return
		}
	}
}

// checkView fetches the messages the session believes exist. Outside IDLE and between
// commands the server sends nothing, so count cannot change before FETCH is answered, and
// a non-UID FETCH may not be interrupted by EXPUNGE (RFC 9051 section 7.4.1). The server
// leaves out messages another session expunged whose EXPUNGE this session has not been sent
// yet (tagged OK, no EXPUNGEISSUED); those EXPUNGEs must then arrive with the next NOOP.
func (id *idler) checkView() {
	id.mu.Lock()
	n := id.count
	id.mu.Unlock()
	if n == 0 {
		return
	}
	msgs, err := id.c.Fetch(imap.SeqSet{{Start: 1, Stop: n}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		id.t.Errorf("%s: FETCH 1:%d: %v", id.name, n, err)
		return
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.SeqNum) - int(b.SeqNum) })
	id.mu.Lock()
	for i, m := range msgs {
		if m.SeqNum < 1 || m.SeqNum > n || m.UID == 0 || (i > 0 && (m.SeqNum == msgs[i-1].SeqNum || m.UID <= msgs[i-1].UID)) {
			id.t.Errorf("%s: FETCH 1:%d answered seq %d with UID %d: sequence numbers and UIDs must both increase",
				id.name, n, m.SeqNum, m.UID)
		}
		id.learned[m.UID] = true
	}
	before := id.expunges
	id.mu.Unlock()
	if missing := int(n) - len(msgs); missing > 0 {
		if err := id.c.Noop().Wait(); err != nil {
			id.t.Errorf("%s: NOOP: %v", id.name, err)
			return
		}
		id.mu.Lock()
		id.shortFetches++
		if got := id.expunges - before; got < missing {
			id.t.Errorf("%s: FETCH 1:%d left out %d messages, but the NOOP after it expunged only %d", id.name, n, missing, got)
		}
		id.mu.Unlock()
	}
}

// flagUnseen searches for unseen messages and marks them \Seen until stop, then makes one
// last pass. It returns how many it marked.
func flagUnseen(t *testing.T, ctx context.Context, c *imapclient.Client, stop <-chan struct{}) int {
	unseen := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}
	var marked int
	for i := 0; i < 10000 && ctx.Err() == nil; i++ {
		last := isClosed(stop)
		if last {
			// Learn of every message first: commands see only those the session was told of.
			if err := c.Noop().Wait(); err != nil {
				t.Errorf("flagger: NOOP: %v", err)
				return marked
			}
		}
		data, err := c.UIDSearch(unseen, nil).Wait()
		if err != nil {
			t.Errorf("flagger: UID SEARCH UNSEEN: %v", err)
			return marked
		}
		if uids := data.AllUIDs(); len(uids) > 0 {
			var set imap.UIDSet
			set.AddNum(uids...)
			msgs, err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
			if err != nil {
				t.Errorf("flagger: UID STORE %v +FLAGS (\\Seen): %v", set, err)
				return marked
			}
			for _, m := range msgs {
				if !set.Contains(m.UID) || !slices.Contains(m.Flags, imap.FlagSeen) {
					t.Errorf("flagger: UID STORE %v +FLAGS (\\Seen) answered UID %d with flags %v", set, m.UID, m.Flags)
				}
			}
			marked += len(msgs)
		} else if !last {
			pace(ctx, stop, 10*time.Millisecond)
		}
		if last {
			return marked
		}
	}
	if ctx.Err() == nil {
		t.Error("flagger: ran out of rounds before the load ended")
	}
	return marked
}

type moveResult struct {
	src, dst []imap.UID // COPYUID pairs, in order
	commands int
}

// moveToArchive moves the move-role messages to Archive a few per UID MOVE until it has
// moved want of them.
func moveToArchive(t *testing.T, ctx context.Context, c *imapclient.Client, want, batch int) moveResult {
	var res moveResult
	toMove := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Role", Value: roleMove}}}
	for i := 0; i < 10000 && len(res.src) < want && ctx.Err() == nil; i++ {
		data, err := c.UIDSearch(toMove, nil).Wait()
		if err != nil {
			t.Errorf("mover: UID SEARCH: %v", err)
			return res
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			pace(ctx, nil, 10*time.Millisecond)
			continue
		}
		var set imap.UIDSet
		set.AddNum(uids[:min(len(uids), batch)]...)
		md, err := c.Move(set, "Archive").Wait()
		res.commands++
		if err != nil {
			t.Errorf("mover: UID MOVE %v Archive: %v", set, err)
			return res
		}
		if md.SourceUIDs == nil {
			t.Errorf("mover: UID MOVE %v Archive moved nothing, though only this session moves these", set)
			return res
		}
		src, _ := md.SourceUIDs.(imap.UIDSet).Nums()
		dst, _ := md.DestUIDs.(imap.UIDSet).Nums()
		if len(src) != len(dst) || !slices.Equal(src, uids[:min(len(uids), batch)]) {
			t.Errorf("mover: UID MOVE %v answered COPYUID %v -> %v", set, md.SourceUIDs, md.DestUIDs)
		}
		res.src = append(res.src, src...)
		res.dst = append(res.dst, dst...)
	}
	if len(res.src) != want {
		t.Errorf("mover: moved %d messages, want %d", len(res.src), want)
	}
	return res
}

type popResult struct {
	sessions, inUse, probes, vanished int
}

// popWorker runs POP3 sessions until want pop-role messages are downloaded and deleted
// between all workers. Each session lists the maildrop, reads messages it has not classified
// yet, deletes up to perSession pop-role ones and quits; a login refused because another
// session holds the maildrop is retried after a short backoff.
func popWorker(t *testing.T, ctx context.Context, addr string, led *ledger, want, perSession int) popResult {
	var res popResult
	done := func() bool {
		led.mu.Lock()
		defer led.mu.Unlock()
		return len(led.popped) >= want
	}
	for attempt := 0; attempt < 2000 && !done() && ctx.Err() == nil; attempt++ {
		p, err := dialPOP3(addr)
		if err != nil {
			t.Errorf("pop3: %v", err)
			return res
		}
		err = p.login("alice@example.com", alicePW)
		if errors.Is(err, errPOP3InUse) {
			p.close()
			res.inUse++
			pace(ctx, nil, time.Duration(5+rand.IntN(20))*time.Millisecond)
			continue
		}
		if err != nil {
			p.close()
			t.Errorf("pop3: login: %v", err)
			return res
		}
		res.sessions++
		progress, err := popSession(t, p, addr, led, perSession, &res)
		p.close()
		if err != nil {
			t.Errorf("pop3 session %d: %v", res.sessions, err)
			return res
		}
		if !progress && !done() {
			// Nothing left to take: wait for mail to arrive rather than log in in a loop.
			select {
			case <-led.change:
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if !done() && ctx.Err() == nil {
		t.Error("pop3: ran out of attempts")
	}
	return res
}

// popSession does one session's work on a logged-in connection and reports whether it
// deleted anything.
func popSession(t *testing.T, p *pop3Client, addr string, led *ledger, perSession int, res *popResult) (bool, error) {
	// The maildrop is ours now: nobody else may log in to it until QUIT.
	probe, err := dialPOP3(addr)
	if err != nil {
		return false, err
	}
	err = probe.login("alice@example.com", alicePW)
	probe.close()
	if !errors.Is(err, errPOP3InUse) {
		return false, fmt.Errorf("a second login while this session holds the maildrop got %v, want -ERR [IN-USE]", err)
	}
	res.probes++

	lines, err := p.multi("UIDL")
	if err != nil {
		return false, err
	}
	uidls := map[string]bool{}
	type pending struct{ token, uidl string }
	var deleted []pending
	for _, line := range lines {
		num, uidl, ok := strings.Cut(line, " ")
		if !ok || uidls[uidl] {
			return false, fmt.Errorf("UIDL line %q: malformed or a repeated unique-id", line)
		}
		uidls[uidl] = true
		led.mu.Lock()
		role, known := led.roleOf[uidl]
		for tok, u := range led.popped {
			if u == uidl {
				led.mu.Unlock()
				return false, fmt.Errorf("message %s (%s) was deleted by an earlier session and is listed again", tok, uidl)
			}
		}
		led.mu.Unlock()
		if len(deleted) == perSession || (known && role != rolePOP) {
			continue
		}
		msg, err := p.multi("RETR " + num)
		if perr := (*pop3Error)(nil); errors.As(err, &perr) && perr.code == "" {
			res.vanished++ // moved away over IMAP since the listing; a SYS/TEMP failure has a code
			continue
		}
		if err != nil {
			return false, err
		}
		text := strings.Join(msg, "\r\n") + "\r\n"
		tm, rm := tokenRE.FindStringSubmatch(text), roleRE.FindStringSubmatch(text)
		if tm == nil || rm == nil || !strings.Contains(text, "\r\n.a line POP3 must dot-stuff\r\n") {
			return false, fmt.Errorf("RETR %s (%s) returned a message without its token, role or body:\n%s", num, uidl, text)
		}
		led.mu.Lock()
		led.roleOf[uidl] = rm[1]
		led.mu.Unlock()
		if rm[1] != rolePOP {
			continue
		}
		if _, err := p.cmd("DELE " + num); err != nil {
			return false, err
		}
		deleted = append(deleted, pending{tm[1], uidl})
	}
	if _, err := p.cmd("QUIT"); err != nil {
		return false, fmt.Errorf("QUIT after deleting %d: %w", len(deleted), err)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	for _, d := range deleted {
		if prev, ok := led.popped[d.token]; ok {
			return false, fmt.Errorf("message %s downloaded and deleted twice (%s, %s)", d.token, prev, d.uidl)
		}
		led.popped[d.token] = d.uidl
	}
	return len(deleted) > 0, nil
}

// folderView is a folder as a fresh session reads it.
type folderView struct {
	count  int
	uids   []imap.UID
	tokens map[string]imap.UID
}

// readFolder selects a folder and checks that EXISTS, UID SEARCH ALL and FETCH agree and that
// UIDs increase with sequence numbers.
func readFolder(t *testing.T, c *imapclient.Client, name string) folderView {
	t.Helper()
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", name, err)
	}
	all, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatalf("%s: UID SEARCH ALL: %v", name, err)
	}
	v := folderView{count: int(sel.NumMessages), tokens: map[string]imap.UID{}}
	if n := len(all.AllUIDs()); n != v.count {
		t.Errorf("%s: EXISTS %d, UID SEARCH ALL found %d", name, v.count, n)
	}
	if v.count == 0 {
		return v
	}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Token"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil {
		t.Fatalf("%s: FETCH 1:*: %v", name, err)
	}
	if len(msgs) != v.count {
		t.Errorf("%s: EXISTS %d, FETCH 1:* returned %d", name, v.count, len(msgs))
	}
	for i, m := range msgs {
		if m.SeqNum != uint32(i+1) || (i > 0 && m.UID <= msgs[i-1].UID) {
			t.Errorf("%s: message %d has seq %d UID %d: UIDs must increase with sequence numbers", name, i+1, m.SeqNum, m.UID)
		}
		tm := tokenRE.FindSubmatch(m.FindBodySection(hdr))
		if tm == nil {
			t.Errorf("%s: UID %d has no X-Token", name, m.UID)
			continue
		}
		if prev, ok := v.tokens[string(tm[1])]; ok {
			t.Errorf("%s: token %s under UIDs %d and %d", name, tm[1], prev, m.UID)
		}
		v.tokens[string(tm[1])] = m.UID
		v.uids = append(v.uids, m.UID)
	}
	if !slices.Equal(v.uids, all.AllUIDs()) {
		t.Errorf("%s: FETCH UIDs %v, UID SEARCH ALL %v", name, v.uids, all.AllUIDs())
	}
	return v
}

// dialIMAP connects to the IMAPS listener and logs alice in.
func dialIMAP(t *testing.T, addr string, handler *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{
		TLSConfig:             &tls.Config{InsecureSkipVerify: true}, // the test server's self-signed certificate
		UnilateralDataHandler: handler,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice@example.com", alicePW).Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	return c
}

// pace waits d, less if stop closes or ctx ends: it spaces out retries and polls, it does not
// wait for anything to happen.
func pace(ctx context.Context, stop <-chan struct{}, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-stop:
	case <-ctx.Done():
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pop3Client speaks just enough POP3 (RFC 1939) over implicit TLS for the test.
type pop3Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// pop3Error is a -ERR answer; code is its RFC 2449 response code, if any.
type pop3Error struct{ code, text string }

func (e *pop3Error) Error() string { return "-ERR " + e.text }

func (e *pop3Error) Is(target error) bool { return target == errPOP3InUse && e.code == "IN-USE" }

var errPOP3InUse = errors.New("maildrop in use")

func dialPOP3(addr string) (*pop3Client, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, fmt.Errorf("connecting to POP3S %s: %w", addr, err)
	}
	p := &pop3Client{conn: conn, r: bufio.NewReader(conn)}
	if _, err := p.status(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("POP3 greeting: %w", err)
	}
	return p, nil
}

func (p *pop3Client) close() { p.conn.Close() }

func (p *pop3Client) login(user, pass string) error {
	if _, err := p.cmd("USER " + user); err != nil {
		return err
	}
	_, err := p.cmd("PASS " + pass)
	return err
}

// cmd sends a command and reads its status line, returning the text after +OK.
func (p *pop3Client) cmd(line string) (string, error) {
	p.conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := p.conn.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	return p.status()
}

func (p *pop3Client) status() (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if rest, ok := strings.CutPrefix(line, "+OK"); ok {
		return strings.TrimPrefix(rest, " "), nil
	}
	if rest, ok := strings.CutPrefix(line, "-ERR"); ok {
		rest = strings.TrimPrefix(rest, " ")
		e := &pop3Error{text: rest}
		if strings.HasPrefix(rest, "[") {
			if end := strings.Index(rest, "]"); end > 0 {
				e.code = rest[1:end]
			}
		}
		return "", e
	}
	return "", fmt.Errorf("POP3 answer %q is neither +OK nor -ERR", line)
}

// multi sends a command with a multi-line answer and returns its lines, dot-unstuffed.
func (p *pop3Client) multi(line string) ([]string, error) {
	if _, err := p.cmd(line); err != nil {
		return nil, err
	}
	var lines []string
	for {
		l, err := p.r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("%s: reading the answer: %w", line, err)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if l == "." {
			return lines, nil
		}
		lines = append(lines, strings.TrimPrefix(l, "."))
	}
}

// untilDone polls until ctx's deadline.
func untilDone(ctx context.Context) testutil.Poll {
	deadline, _ := ctx.Deadline()
	return testutil.Poll{Within: max(time.Until(deadline), time.Millisecond), Every: 20 * time.Millisecond}
}
