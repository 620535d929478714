package handoff

import (
	"sync"
	"time"
)

// Kept sessions: at most poolPerShard per replica (as many as the handoffs in flight to it
// under load, so that none waits for a TLS handshake), each for at most poolIdle unused.
const (
	poolPerShard = 32
	poolIdle     = 30 * time.Second
)

// pool keeps sessions between messages, by shard.
type pool struct {
	mu     sync.Mutex
	byShrd map[int][]*lmtpSession
	closed bool
}

// get takes a kept session to shard, nil when there is none fresh enough.
func (p *pool) get(shard int) *lmtpSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	for list := p.byShrd[shard]; len(list) > 0; list = p.byShrd[shard] {
		s := list[len(list)-1]
		p.byShrd[shard] = list[:len(list)-1]
		if time.Since(s.idle) < poolIdle {
			return s
		}
		go s.close()
	}
	return nil
}

// put keeps a session that ended its transaction cleanly, or closes it when enough are kept.
func (p *pool) put(shard int, s *lmtpSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.byShrd[shard]) >= poolPerShard {
		go s.close()
		return
	}
	if p.byShrd == nil {
		p.byShrd = map[int][]*lmtpSession{}
	}
	s.idle = time.Now()
	p.byShrd[shard] = append(p.byShrd[shard], s)
}

// Close ends the kept sessions; later ones are not kept.
func (c *Client) Close() {
	p := &c.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, list := range p.byShrd {
		for _, s := range list {
			s.close()
		}
	}
	p.byShrd = nil
}
