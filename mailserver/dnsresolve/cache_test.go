package dnsresolve

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAnswerTTL(t *testing.T) {
	soa := "test. 900 SOA ns.test. admin.test. 1 3600 600 86400 120"
	for _, c := range []struct {
		name   string
		answer []string
		ns     []string
		want   time.Duration
	}{
		{"smallest TTL of the answer", []string{"a.test. 300 A 192.0.2.1", "a.test. 60 A 192.0.2.2"}, nil, time.Minute},
		{"no records: the SOA's MINIMUM when smaller", nil, []string{soa}, 2 * time.Minute},
		{"no records: the SOA's TTL when smaller", nil, []string{"test. 30 SOA ns.test. admin.test. 1 3600 600 86400 120"}, 30 * time.Second},
		{"no records and no SOA: not kept", nil, nil, 0},
		{"capped", []string{"a.test. 86400 A 192.0.2.1"}, nil, maxCacheTTL},
	} {
		m := new(dns.Msg)
		for _, a := range c.answer {
			m.Answer = append(m.Answer, rr(t, a))
		}
		for _, n := range c.ns {
			m.Ns = append(m.Ns, rr(t, n))
		}
		if got := answerTTL(m); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCacheExpiresAndStaysBounded(t *testing.T) {
	c := newCache()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	m := new(dns.Msg)
	m.Answer = []dns.RR{rr(t, "a.test. 60 A 192.0.2.1")}
	k := keyOf("A.test", dns.TypeA)
	c.put(k, m)
	now = now.Add(59 * time.Second)
	if c.get(keyOf("a.test.", dns.TypeA)) == nil {
		t.Fatal("gone before its TTL")
	}
	now = now.Add(time.Second)
	if c.get(k) != nil {
		t.Fatal("kept past its TTL")
	}
	for i := range cacheEntries + 10 {
		c.put(cacheKey{name: string(rune('a'+i%26)) + ".test.", qtype: uint16(i)}, m)
	}
	if len(c.entries) != cacheEntries || c.order.Len() != cacheEntries {
		t.Errorf("%d entries, %d in order; want %d", len(c.entries), c.order.Len(), cacheEntries)
	}
}
