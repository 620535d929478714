package dnsresolve

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Bounds of the answer cache.
const (
	// cacheEntries bounds the answers kept; beyond it the least recently used go.
	cacheEntries = 10000
	// maxCacheTTL caps how long an answer is kept whatever its TTL, so a changed record is
	// seen within the hour even behind a resolver that hands out long TTLs.
	maxCacheTTL = time.Hour
)

// cache keeps answers (NOERROR, with or without records, and NXDOMAIN) for their TTL, so the
// lookups of one message's SPF, DKIM and DMARC checks, and of the next messages from the same
// domains, are asked once. Failures are never kept.
type cache struct {
	now func() time.Time

	mu      sync.Mutex
	order   *list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
}

type cacheKey struct {
	name  string // lowercase, fully qualified
	qtype uint16
}

type cacheEntry struct {
	key     cacheKey
	resp    *dns.Msg
	expires time.Time
}

func newCache() *cache {
	return &cache{now: time.Now, order: list.New(), entries: map[cacheKey]*list.Element{}}
}

func keyOf(name string, qtype uint16) cacheKey {
	return cacheKey{strings.ToLower(dns.Fqdn(name)), qtype}
}

// get returns a kept answer; callers must not modify it.
func (c *cache) get(k cacheKey) *dns.Msg {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.entries, k)
		return nil
	}
	c.order.MoveToFront(el)
	return e.resp
}

// put keeps resp for its TTL, if it has one.
func (c *cache) put(k cacheKey, resp *dns.Msg) {
	ttl := answerTTL(resp)
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.order.Remove(el)
		delete(c.entries, k)
	}
	for len(c.entries) >= cacheEntries {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).key)
	}
	c.entries[k] = c.order.PushFront(&cacheEntry{key: k, resp: resp, expires: c.now().Add(ttl)})
}

// answerTTL is how long resp may be kept: the smallest TTL of its answer records, or for an
// answer without records (NXDOMAIN or no data) the negative TTL of RFC 2308 from the SOA record
// in the authority section, the smaller of the SOA's own TTL and its MINIMUM field. Without
// either there is nothing that says how long it holds, and it is not kept.
func answerTTL(resp *dns.Msg) time.Duration {
	var ttl uint32
	found := false
	for _, rr := range resp.Answer {
		if t := rr.Header().Ttl; !found || t < ttl {
			ttl, found = t, true
		}
	}
	if !found {
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
			}
		}
	}
	if !found {
		return 0
	}
	return min(time.Duration(ttl)*time.Second, maxCacheTTL)
}
