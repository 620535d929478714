package store

import (
	"bufio"
	"bytes"
	"container/list"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultHeaderCacheBytes is the header cache's budget when the server's settings name none.
const DefaultHeaderCacheBytes = 64 << 20

// maxCachedHeader bounds one cached header block: a message with a larger header is read from
// its file every time rather than pushing hundreds of ordinary headers out of the cache.
const maxCachedHeader = 256 << 10

// headerEntryOverhead approximates what an entry costs besides its bytes (list element, map
// slot, Header struct), so a budget of many tiny headers is not exceeded several times over.
const headerEntryOverhead = 160

// Header is a message's header block as stored: every header line and the empty line that ends
// them (or the whole file, for a message without a body). It is shared between readers and
// must not be modified.
type Header struct {
	// Raw is the header block, CRLF line endings.
	Raw []byte
	// ASCII reports whether Raw holds only 7-bit bytes; EncodedWords whether it holds "=?",
	// with which every RFC 2047 encoded word starts.
	ASCII, EncodedWords bool

	// memo is what Memo computed from Raw; cache and key name the entry that holds the header,
	// set once when it is cached (before any other reader can see it), for Memo's cost.
	memo  atomic.Pointer[headerMemo]
	cache *headerCache
	key   headerKey
}

type headerMemo struct{ v any }

// Memo returns what compute derives from the header (IMAP keeps its parsed ENVELOPE here),
// computing it on first use only: every later reader of the cached header shares the value,
// which must therefore not be modified. compute also says how many bytes the value holds;
// the cache counts them against its budget for as long as it keeps the header.
func (h *Header) Memo(compute func(raw []byte) (v any, size int)) any {
	if m := h.memo.Load(); m != nil {
		return m.v
	}
	v, size := compute(h.Raw)
	if h.memo.CompareAndSwap(nil, &headerMemo{v: v}) && h.cache != nil {
		h.cache.grow(h.key, int64(size))
	}
	return h.memo.Load().v
}

// headerKey names a message for the cache: folders get a process-unique id when opened, and
// UIDs are never reused within a folder, so a key never names two different contents.
type headerKey struct {
	folder uint64
	uid    uint32
}

type headerEntry struct {
	key  headerKey
	hdr  *Header
	cost int64
}

// headerCache keeps the header blocks of recently read messages of every folder of a Store,
// within a byte budget, evicting the least recently used. Message files never change once
// stored (flags live in the file name and the journal), so an entry is valid until its message
// is expunged or its folder or mailbox deleted, which drop it.
type headerCache struct {
	mu       sync.Mutex
	budget   int64
	used     int64
	lru      list.List // of *headerEntry, most recently used at the front
	byFolder map[uint64]map[uint32]*list.Element

	hits, misses, evictions uint64
}

func newHeaderCache(budget int64) *headerCache {
	return &headerCache{budget: budget, byFolder: map[uint64]map[uint32]*list.Element{}}
}

// HeaderCacheStats are the header cache's counters.
type HeaderCacheStats struct {
	Entries                 int
	Bytes, Budget           int64
	Hits, Misses, Evictions uint64
}

func (c *headerCache) get(k headerKey) *Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byFolder[k.folder][k.uid]; ok {
		c.lru.MoveToFront(el)
		c.hits++
		return el.Value.(*headerEntry).hdr
	}
	c.misses++
	return nil
}

func (c *headerCache) put(k headerKey, h *Header) {
	cost := int64(len(h.Raw)) + headerEntryOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.budget <= 0 || len(h.Raw) > maxCachedHeader || cost > c.budget {
		return
	}
	uids := c.byFolder[k.folder]
	if uids == nil {
		uids = map[uint32]*list.Element{}
		c.byFolder[k.folder] = uids
	}
	if el, ok := uids[k.uid]; ok {
		c.lru.MoveToFront(el) // another reader filled it meanwhile: same content
		return
	}
	for c.used+cost > c.budget {
		c.removeLocked(c.lru.Back())
		c.evictions++
	}
	h.cache, h.key = c, k
	uids[k.uid] = c.lru.PushFront(&headerEntry{key: k, hdr: h, cost: cost})
	c.used += cost
}

// grow counts n more bytes for a cached header (its Memo), evicting others, or it, to stay
// within the budget.
func (c *headerCache) grow(k headerKey, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byFolder[k.folder][k.uid]
	if !ok {
		return // evicted or dropped meanwhile
	}
	el.Value.(*headerEntry).cost += n
	c.used += n
	for c.used > c.budget && c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
		c.evictions++
	}
}

func (c *headerCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*headerEntry)
	c.used -= e.cost
	uids := c.byFolder[e.key.folder]
	delete(uids, e.key.uid)
	if len(uids) == 0 {
		delete(c.byFolder, e.key.folder)
	}
}

// drop forgets messages of one folder.
func (c *headerCache) drop(folder uint64, uids []uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, uid := range uids {
		if el, ok := c.byFolder[folder][uid]; ok {
			c.removeLocked(el)
		}
	}
}

// dropFolder forgets every message of a folder.
func (c *headerCache) dropFolder(folder uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, el := range c.byFolder[folder] {
		c.removeLocked(el)
	}
}

func (c *headerCache) setBudget(budget int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = budget
	for c.used > max(c.budget, 0) {
		c.removeLocked(c.lru.Back())
		c.evictions++
	}
}

func (c *headerCache) stats() HeaderCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return HeaderCacheStats{Entries: c.lru.Len(), Bytes: c.used, Budget: c.budget,
		Hits: c.hits, Misses: c.misses, Evictions: c.evictions}
}

// headerBufs are the buffers header blocks are read from files with.
var headerBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// ReadHeaderBlock returns a message's header lines and the empty line that ends them; without
// such a line, everything r holds.
func ReadHeaderBlock(r io.Reader) []byte {
	br := headerBufs.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		headerBufs.Put(br)
	}()
	var out []byte
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if lineStart && (len(line) == 0 || line[0] == '\n' || (line[0] == '\r' && len(line) > 1 && line[1] == '\n')) {
			return out
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			lineStart = false
		case err != nil:
			return out
		default:
			lineStart = true
		}
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// Header returns the header block of a message, from the store's cache or, the first time,
// from its file. Every session of every protocol shares the cache.
func (f *Folder) Header(uid uint32) (*Header, error) {
	cache := f.mbox.store.headers
	k := headerKey{folder: f.id, uid: uid}
	// The index is asked first, so a message expunged meanwhile is gone here as in Open.
	f.mu.RLock()
	if _, ok := f.find(uid); !ok {
		f.mu.RUnlock()
		return nil, ErrNoSuchMessage
	}
	if h := cache.get(k); h != nil {
		f.mu.RUnlock()
		return h, nil
	}
	f.mu.RUnlock()

	fh, err := f.Open(uid)
	if err != nil {
		return nil, err
	}
	raw := ReadHeaderBlock(fh)
	fh.Close()
	h := &Header{Raw: raw, ASCII: isASCII(raw), EncodedWords: bytes.Contains(raw, []byte("=?"))}

	// Cached only if the message is still there: Expunge drops entries under the folder's
	// write lock, so an entry added under the read lock after this check cannot outlive it.
	f.mu.RLock()
	if _, ok := f.find(uid); ok && !f.deleted {
		cache.put(k, h)
	}
	f.mu.RUnlock()
	return h, nil
}

// HeaderCacheStats returns the counters of the store's header cache.
func (s *Store) HeaderCacheStats() HeaderCacheStats { return s.headers.stats() }

// SetHeaderCacheBytes sets the header cache's budget in bytes; 0 or less turns the cache off.
func (s *Store) SetHeaderCacheBytes(n int64) { s.headers.setBudget(n) }

func (c *headerCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	c.byFolder = map[uint64]map[uint32]*list.Element{}
	c.used = 0
}
