package imapload

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// dial connects, upgrades with STARTTLS if asked, and waits for the greeting. The connection
// is not logged in.
func dial(cfg *Config, record recordFunc) (*imapclient.Client, error) {
	opts := &imapclient.Options{
		TLSConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // benchmark servers use self-signed certificates
		Dialer:    &net.Dialer{Timeout: 30 * time.Second},
	}
	start := time.Now()
	var c *imapclient.Client
	var err error
	switch {
	case cfg.TLS:
		c, err = imapclient.DialTLS(cfg.Addr, opts)
	case cfg.StartTLS:
		// DialStartTLS sends STARTTLS as soon as the greeting arrives; the greeting and the
		// upgrade are timed together as the connect.
		c, err = imapclient.DialStartTLS(cfg.Addr, opts)
	default:
		c, err = imapclient.DialInsecure(cfg.Addr, opts)
	}
	if err == nil {
		if err = c.WaitGreeting(); err != nil {
			c.Close()
		}
	}
	record(OpConnect, time.Since(start), err)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Addr, err)
	}
	return c, nil
}

// recordFunc takes one measurement.
type recordFunc func(op string, d time.Duration, err error)

// login connects and logs in as acct.
func login(cfg *Config, record recordFunc, acct Account) (*imapclient.Client, error) {
	c, err := dial(cfg, record)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = c.Login(acct.User, acct.Password).Wait()
	record(OpLogin, time.Since(start), err)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("logging in as %s: %w", acct.User, err)
	}
	return c, nil
}

// worker is one client of Run.
type worker struct {
	cfg  *Config
	acct Account
	rng  *rand.Rand
	rec  *recorder
	msgs *messageMaker

	// ctx is the measured window; nothing is recorded once it is over.
	ctx context.Context
	c   *imapclient.Client
	// cur is c for the goroutine that closes it when the window ends.
	mu      sync.Mutex
	cur     *imapclient.Client
	uidPlus bool
	// appended holds the UIDs (or, without UIDPLUS, the Message-IDs) of messages this client
	// appended and has not expunged yet.
	appended    []imap.UID
	appendedIDs []string
	ops         int
}

func newWorker(cfg *Config, i int) *worker {
	r := rng(cfg.Seed, i)
	return &worker{cfg: cfg, acct: cfg.Accounts[i%len(cfg.Accounts)], rng: r, rec: newRecorder(), ctx: context.Background(),
		msgs: newMessageMaker(rand.New(rand.NewPCG(r.Uint64(), r.Uint64())))}
}

// record takes a measurement unless the window is over. Every IMAP command counts towards
// OpsPerClient.
func (w *worker) record(op string, d time.Duration, err error) {
	if w.ctx.Err() != nil {
		return
	}
	if op != OpConnect {
		w.ops++
	}
	w.rec.record(op, d, err)
}

// connect logs in and selects the mailbox.
func (w *worker) connect() error {
	c, err := login(w.cfg, w.record, w.acct)
	if err != nil {
		return err
	}
	w.setClient(c)
	caps := c.Caps()
	w.uidPlus = caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapIMAP4rev2)
	start := time.Now()
	_, err = c.Select(w.cfg.Mailbox, nil).Wait()
	w.record(OpSelect, time.Since(start), err)
	if err != nil {
		w.close()
		return fmt.Errorf("selecting %s as %s: %w", w.cfg.Mailbox, w.acct.User, err)
	}
	return nil
}

func (w *worker) setClient(c *imapclient.Client) {
	w.mu.Lock()
	w.c, w.cur = c, c
	w.mu.Unlock()
}

func (w *worker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cur != nil {
		w.cur.Close()
	}
	w.c, w.cur = nil, nil
}

// loop runs the mix until ctx ends or the client has done OpsPerClient operations.
func (w *worker) loop(ctx context.Context) {
	w.ctx = ctx
	// A command in flight when the window closes would otherwise hold the client up to the
	// library's 30 s response timeout; closing the connection ends it.
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.cur != nil {
			w.cur.Close()
		}
	})
	defer stop()
	for ctx.Err() == nil && (w.cfg.OpsPerClient <= 0 || w.ops < w.cfg.OpsPerClient) {
		if w.c == nil {
			if err := w.connect(); err != nil {
				// The server is refusing or broken: do not spin.
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
		}
		w.step(ctx)
		if w.c != nil && isClosed(w.c) {
			w.close() // reconnect on the next turn
		}
	}
}

func isClosed(c *imapclient.Client) bool {
	select {
	case <-c.Closed():
		return true
	default:
		return false
	}
}

// do times one command. An answer that arrives after the window closed is not counted.
func (w *worker) do(_ context.Context, op string, fn func() error) error {
	start := time.Now()
	err := fn()
	w.record(op, time.Since(start), err)
	return err
}

// step runs one weighted step of the mix.
func (w *worker) step(ctx context.Context) {
	m := w.cfg.Mix
	n := w.rng.IntN(m.total())
	switch {
	case n < m.FetchHeaders:
		w.fetchHeaders(ctx)
	case n < m.FetchHeaders+m.FetchBody:
		w.fetchBody(ctx)
	case n < m.FetchHeaders+m.FetchBody+m.Search:
		w.search(ctx)
	case n < m.FetchHeaders+m.FetchBody+m.Search+m.Store:
		w.store(ctx)
	case n < m.FetchHeaders+m.FetchBody+m.Search+m.Store+m.Append:
		w.append(ctx)
	case n < m.FetchHeaders+m.FetchBody+m.Search+m.Store+m.Append+m.Expunge:
		w.expunge(ctx)
	case n < m.FetchHeaders+m.FetchBody+m.Search+m.Store+m.Append+m.Expunge+m.Noop:
		w.do(ctx, OpNoop, func() error { return w.c.Noop().Wait() })
	default:
		w.reconnect(ctx)
	}
}

// numMessages is the message count the server has told this client about.
func (w *worker) numMessages() uint32 {
	if mb := w.c.Mailbox(); mb != nil {
		return mb.NumMessages
	}
	return 0
}

// headerFields are what a message list shows.
var headerFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Content-Type"}

// fetchHeaders lists a screenful of messages, usually the newest ones, as a client that opens
// a folder or scrolls does.
func (w *worker) fetchHeaders(ctx context.Context) {
	n := w.numMessages()
	if n == 0 {
		w.append(ctx)
		return
	}
	const page = 25
	stop := n
	if w.rng.IntN(3) == 0 && n > page { // scrolled back
		stop = page + uint32(w.rng.IntN(int(n-page)+1))
	}
	start := uint32(1)
	if stop > page {
		start = stop - page + 1
	}
	opts := &imap.FetchOptions{UID: true, Flags: true, Envelope: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: headerFields, Peek: true}}}
	var set imap.SeqSet
	set.AddRange(start, stop)
	w.do(ctx, OpFetchHeaders, func() error {
		_, err := w.c.Fetch(set, opts).Collect()
		return err
	})
}

// fetchBody reads one whole message, as a client that opens it does.
func (w *worker) fetchBody(ctx context.Context) {
	n := w.numMessages()
	if n == 0 {
		w.append(ctx)
		return
	}
	seq := w.recentSeq(n)
	opts := &imap.FetchOptions{UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	w.do(ctx, OpFetchBody, func() error {
		_, err := w.c.Fetch(imap.SeqSetNum(seq), opts).Collect()
		return err
	})
}

// recentSeq picks a message, more often a recent one.
func (w *worker) recentSeq(n uint32) uint32 {
	if w.rng.IntN(2) == 0 && n > 50 {
		return n - uint32(w.rng.IntN(50))
	}
	return 1 + uint32(w.rng.IntN(int(n)))
}

// search runs one of the searches clients send: unread mail, or a word in the subject or
// sender.
func (w *worker) search(ctx context.Context) {
	var crit imap.SearchCriteria
	switch w.rng.IntN(3) {
	case 0:
		crit.NotFlag = []imap.Flag{imap.FlagSeen}
	case 1:
		crit.Header = []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: pick(w.rng, subjectWords)}}
	default:
		crit.Header = []imap.SearchCriteriaHeaderField{{Key: "From", Value: pick(w.rng, firstNames)}}
	}
	w.do(ctx, OpSearch, func() error {
		_, err := w.c.UIDSearch(&crit, nil).Wait()
		return err
	})
}

// store marks a message read or unread, flagged or not.
func (w *worker) store(ctx context.Context) {
	n := w.numMessages()
	if n == 0 {
		w.append(ctx)
		return
	}
	flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}
	switch w.rng.IntN(4) {
	case 1:
		flags.Flags = []imap.Flag{imap.FlagFlagged}
	case 2:
		flags.Op, flags.Flags = imap.StoreFlagsDel, []imap.Flag{imap.FlagFlagged}
	case 3:
		flags.Op = imap.StoreFlagsDel
	}
	seq := w.recentSeq(n)
	w.do(ctx, OpStore, func() error {
		_, err := w.c.Store(imap.SeqSetNum(seq), flags, nil).Collect()
		return err
	})
}

// append adds a new message, as delivery or a client saving a sent message or draft does.
func (w *worker) append(ctx context.Context) {
	id, msg := w.msgs.message()
	var uid imap.UID
	err := w.do(ctx, OpAppend, func() error {
		cmd := w.c.Append(w.cfg.Mailbox, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if data != nil {
			uid = data.UID
		}
		return err
	})
	if err != nil {
		return
	}
	if w.uidPlus && uid != 0 {
		w.appended = append(w.appended, uid)
	} else {
		w.appendedIDs = append(w.appendedIDs, id)
	}
}

// expunge deletes a message this client appended: STORE \Deleted, then UID EXPUNGE of just
// that message (plain EXPUNGE without UIDPLUS). Other clients' messages are never deleted.
func (w *worker) expunge(ctx context.Context) {
	var uid imap.UID
	switch {
	case len(w.appended) > 0:
		i := w.rng.IntN(len(w.appended))
		uid = w.appended[i]
		w.appended = append(w.appended[:i], w.appended[i+1:]...)
	case len(w.appendedIDs) > 0:
		i := w.rng.IntN(len(w.appendedIDs))
		id := w.appendedIDs[i]
		w.appendedIDs = append(w.appendedIDs[:i], w.appendedIDs[i+1:]...)
		var found imap.UIDSet
		err := w.do(ctx, OpSearch, func() error {
			data, err := w.c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: id}}}, nil).Wait()
			if err == nil {
				found, _ = data.All.(imap.UIDSet)
			}
			return err
		})
		if err != nil {
			return
		}
		uids, _ := found.Nums()
		if len(uids) == 0 {
			return
		}
		uid = uids[0]
	default:
		w.append(ctx)
		return
	}
	set := imap.UIDSetNum(uid)
	err := w.do(ctx, OpStore, func() error {
		return w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	})
	if err != nil {
		return
	}
	w.do(ctx, OpExpunge, func() error {
		if w.uidPlus {
			return w.c.UIDExpunge(set).Close()
		}
		return w.c.Expunge().Close()
	})
}

// reconnect logs out and starts a new session, as a mobile client coming back does.
func (w *worker) reconnect(ctx context.Context) {
	c := w.c
	w.do(ctx, OpLogout, func() error { return c.Logout().Wait() })
	w.close()
	if ctx.Err() != nil {
		return
	}
	w.connect() // records what failed; the loop retries
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }
