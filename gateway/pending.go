package gateway

import (
	"sync"
	"time"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// decided is what the gateway keeps of a finished request so that delayed
// feedback can reach the policy that decided it.
type decided struct {
	at       time.Time
	features policy.Features
	decision route.Decision
	outcome  route.Outcome // without attempts
}

// pendingStore keeps recent decisions by request id, bounded in count
// (oldest evicted first) and in age (ttl).
type pendingStore struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	m    map[string]*decided
	ring []string // insertion order, len max
	head int
}

func newPendingStore(ttl time.Duration, max int) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, m: make(map[string]*decided, min(max, 1<<16)), ring: make([]string, max)}
}

// put copies what rec's request needs for a later Learn.
func (p *pendingStore) put(rec *route.Record, now time.Time) {
	if p.max == 0 {
		return
	}
	d := &decided{at: now, features: rec.Request.Features, decision: rec.Decision, outcome: rec.Outcome}
	d.features.Vector = append([]float64(nil), rec.Request.Features.Vector...)
	d.features.Tags = append([]string(nil), rec.Request.Features.Tags...)
	d.decision.Candidates = append([]policy.Arm(nil), rec.Decision.Candidates...)
	d.decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	d.outcome.Attempts = nil
	if len(rec.Outcome.Attempts) > 1 { // RewardFor needs the chain only when a fallback answered
		d.outcome.Attempts = append([]route.Attempt(nil), rec.Outcome.Attempts...)
	}
	id := rec.Request.ID
	p.mu.Lock()
	if old := p.ring[p.head]; old != "" {
		delete(p.m, old)
	}
	p.ring[p.head] = id
	p.head = (p.head + 1) % p.max
	p.m[id] = d
	p.mu.Unlock()
}

// take removes and returns the decision of id, or nil when unknown,
// expired or already rated.
func (p *pendingStore) take(id string, now time.Time) *decided {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.m[id]
	if d == nil {
		return nil
	}
	delete(p.m, id)
	if now.Sub(d.at) > p.ttl {
		return nil
	}
	return d
}

func (p *pendingStore) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
