package gateway

import (
	"sync"
	"time"

	"github.com/routelab/routelab/decision"
)

// decided is what the gateway keeps of a finished request so that delayed
// feedback can reach the policy that decided it.
type decided struct {
	at       time.Time
	features decision.Features
	decision decision.Decision
	outcome  decision.Outcome // without attempts
	// reward is the immediate reward computed at completion.
	reward float64
	// deferred: the policy has not learned from this request yet; it learns
	// exactly once, from feedback or, when none comes, from reward.
	deferred bool
}

// pendingStore keeps recent decisions by request id, bounded in count
// (oldest evicted first) and in age (ttl). A deferred decision that leaves
// the store without feedback — evicted, or older than ttl — is handed to
// expire, which credits its immediate reward, so every routed request
// updates the policy exactly once. Expiry is checked on every put and take,
// so with no traffic at all an expired update waits for the next request.
type pendingStore struct {
	ttl    time.Duration
	max    int
	expire func(*decided)

	mu   sync.Mutex
	m    map[string]*decided
	ring []string // insertion order, len max; "" = free slot
	head int      // next slot to write
	size int      // slots in use, oldest at head-size
}

func newPendingStore(ttl time.Duration, max int, expire func(*decided)) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, expire: expire, m: make(map[string]*decided, min(max, 1<<16)), ring: make([]string, max)}
}

// enabled reports whether the store keeps anything (max_entries > 0).
func (p *pendingStore) enabled() bool { return p.max > 0 }

// put copies what rec's request needs for a later Learn. deferred says the
// policy has not learned from rec yet.
func (p *pendingStore) put(rec *decision.Record, now time.Time, deferred bool) {
	if p.max == 0 {
		return
	}
	d := &decided{at: now, features: rec.Request.Features, decision: rec.Decision, outcome: rec.Outcome, reward: rec.Reward, deferred: deferred}
	d.features.Vector = append([]float64(nil), rec.Request.Features.Vector...)
	d.features.Tags = append([]string(nil), rec.Request.Features.Tags...)
	d.decision.Candidates = append([]decision.Arm(nil), rec.Decision.Candidates...)
	d.decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	d.outcome.Attempts = nil
	if len(rec.Outcome.Attempts) > 1 { // RewardFor needs the chain only when a fallback answered
		d.outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
	}
	id := rec.Request.ID
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	if p.size == p.max {
		if old := p.m[p.ring[p.head]]; old != nil {
			delete(p.m, p.ring[p.head])
			out = append(out, old)
		}
		p.size--
	}
	p.ring[p.head] = id
	p.head = (p.head + 1) % p.max
	p.size++
	p.m[id] = d
	p.mu.Unlock()
	p.expireAll(out)
}

// sweepLocked removes the entries older than ttl, oldest first, appending
// them to out. Callers hold mu.
func (p *pendingStore) sweepLocked(now time.Time, out []*decided) []*decided {
	for p.size > 0 {
		i := (p.head - p.size + p.max) % p.max
		d := p.m[p.ring[i]]
		if d != nil && now.Sub(d.at) <= p.ttl {
			break
		}
		if d != nil {
			delete(p.m, p.ring[i])
			out = append(out, d)
		}
		p.ring[i] = ""
		p.size--
	}
	return out
}

func (p *pendingStore) expireAll(out []*decided) {
	if p.expire == nil {
		return
	}
	for _, d := range out {
		if d.deferred {
			p.expire(d)
		}
	}
}

// take removes and returns the decision of id, or nil when unknown,
// expired or already rated.
func (p *pendingStore) take(id string, now time.Time) *decided {
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	d := p.m[id]
	if d != nil {
		delete(p.m, id)
	}
	p.mu.Unlock()
	p.expireAll(out)
	return d
}

// flush expires every entry still waiting (at shutdown), so deferred
// updates are not lost.
func (p *pendingStore) flush() {
	p.mu.Lock()
	out := make([]*decided, 0, len(p.m))
	for id, d := range p.m {
		out = append(out, d)
		delete(p.m, id)
	}
	clear(p.ring)
	p.size = 0
	p.mu.Unlock()
	p.expireAll(out)
}

func (p *pendingStore) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
