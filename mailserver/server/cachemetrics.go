package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubemail/kubemail/mailserver/store"
)

// headerCacheCollector exports the store's header cache (what IMAP searches and message
// listings read instead of the message files) as metrics, read when Prometheus scrapes.
type headerCacheCollector struct {
	st                                          *store.Store
	entries, bytes, budget, hits, misses, evict *prometheus.Desc
}

func newHeaderCacheCollector(st *store.Store) *headerCacheCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("kubemail_header_cache_"+name, help, nil, nil)
	}
	return &headerCacheCollector{st: st,
		entries: d("entries", "Message headers held in the header cache."),
		bytes:   d("bytes", "Bytes the header cache holds, counted against its budget."),
		budget:  d("budget_bytes", "The header cache's budget (store.headerCacheBytes); 0 when it is off."),
		hits:    d("hits_total", "Header reads answered from the cache."),
		misses:  d("misses_total", "Header reads that had to open the message file."),
		evict:   d("evictions_total", "Headers dropped to stay within the budget."),
	}
}

func (c *headerCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.bytes, c.budget, c.hits, c.misses, c.evict} {
		ch <- d
	}
}

func (c *headerCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.HeaderCacheStats()
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(max(s.Budget, 0)))
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.evict, prometheus.CounterValue, float64(s.Evictions))
}
