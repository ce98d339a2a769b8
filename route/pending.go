package route

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routelab/routelab/decision"
)

// DefaultPendingTTL is how long a decision waits for delayed feedback when
// PendingOpts.TTL is zero.
const DefaultPendingTTL = 15 * time.Minute

// ErrUnknownRequest is returned by Core.Feedback for a request id that the
// core does not hold: never completed, already rated, older than the TTL,
// evicted, or the pending store is disabled.
var ErrUnknownRequest = errors.New("no pending decision with this request id")

// PendingOpts configures the core's store of finished decisions awaiting
// delayed feedback. The zero value disables it: Complete learns at once and
// Feedback knows no request.
type PendingOpts struct {
	// MaxEntries bounds the decisions kept; when full, the oldest is
	// evicted (a deferred one is credited its immediate reward). 0 disables
	// the store; negative is an error.
	MaxEntries int
	// TTL is how long a decision waits for feedback; 0 means
	// DefaultPendingTTL; negative is an error.
	TTL time.Duration
	// Defer makes Complete hold back the policy update of a routed,
	// successful answer of unknown quality until its feedback arrives (or,
	// when none does within TTL, credit the immediate reward then): every
	// routed request updates the policy exactly once. Needs MaxEntries > 0.
	Defer bool
}

// PendingStats are the pending store's counters since the core was built.
type PendingStats struct {
	// Waiting is the number of decisions held now.
	Waiting int
	// Deferred counts policy updates held back for feedback; each ends as
	// exactly one of FromFeedback or Expired.
	Deferred uint64
	// FromFeedback counts deferred updates applied from feedback.
	FromFeedback uint64
	// Expired counts deferred updates credited their immediate reward
	// because no feedback came in time (TTL, eviction or Flush).
	Expired uint64
	// Evicted counts decisions dropped because the store was full.
	Evicted uint64
	// UpdateErrors counts expired updates whose policy Update failed.
	UpdateErrors uint64
}

// held is what the core keeps of a finished request so that delayed
// feedback can reach the policy that decided it.
type held struct {
	id       string
	at       time.Time
	features decision.Features
	decision decision.Decision
	outcome  decision.Outcome // attempts only when a fallback answered
	// reward is the immediate reward computed at completion.
	reward float64
	// deferred: the policy has not learned from this request yet; it learns
	// exactly once, from feedback or, when none comes, from reward.
	deferred bool
}

// pendingStore keeps recent decisions by request id, bounded in count
// (oldest evicted first) and in age (ttl). A deferred decision that leaves
// the store without feedback — evicted, older than ttl, or flushed — is
// handed to expire, which credits its immediate reward, so every routed
// request updates the policy exactly once. Expiry is checked on every put
// and take, so with no traffic at all an expired update waits for the next
// request (or Flush).
type pendingStore struct {
	ttl    time.Duration
	max    int
	expire func(*held)

	deferred, fromFeedback, expired, evicted, updateErrors atomic.Uint64

	mu   sync.Mutex
	m    map[string]*held
	ring []*held // insertion order, len max; nil = free slot
	head int     // next slot to write
	size int     // slots in use, oldest at head-size
}

func newPendingStore(ttl time.Duration, max int, expire func(*held)) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, expire: expire, m: make(map[string]*held, min(max, 1<<16)), ring: make([]*held, max)}
}

// enabled reports whether the store keeps anything.
func (p *pendingStore) enabled() bool { return p.max > 0 }

// put copies what rec's request needs for a later Learn. deferred says the
// policy has not learned from rec yet.
func (p *pendingStore) put(rec *decision.Record, now time.Time, deferred bool) {
	if p.max == 0 {
		return
	}
	d := &held{id: rec.Request.ID, at: now, features: rec.Request.Features, decision: rec.Decision, outcome: rec.Outcome, reward: rec.Reward, deferred: deferred}
	d.features.Vector = append([]float64(nil), rec.Request.Features.Vector...)
	d.features.Tags = append([]string(nil), rec.Request.Features.Tags...)
	d.decision.Candidates = append([]decision.Arm(nil), rec.Decision.Candidates...)
	d.decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	d.outcome.Attempts = nil
	if len(rec.Outcome.Attempts) > 1 { // ForDecision needs the chain only when there was more than one attempt
		d.outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
	}
	if deferred {
		p.deferred.Add(1)
	}
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	if old := p.m[d.id]; old != nil {
		// A reused id replaces its older entry, which leaves unrated; its
		// ring slot no longer counts (live reports it free).
		out = append(out, old)
	}
	if p.size == p.max {
		if old := p.ring[p.head]; p.live(old) {
			delete(p.m, old.id)
			out = append(out, old)
			p.evicted.Add(1)
		}
		p.size--
	}
	p.ring[p.head] = d
	p.head = (p.head + 1) % p.max
	p.size++
	p.m[d.id] = d
	p.mu.Unlock()
	p.expireAll(out)
}

// live reports whether ring entry d is still waiting (not taken, replaced
// or swept). Callers hold mu.
func (p *pendingStore) live(d *held) bool { return d != nil && p.m[d.id] == d }

// sweepLocked removes the entries older than ttl, oldest first, appending
// them to out. Callers hold mu.
func (p *pendingStore) sweepLocked(now time.Time, out []*held) []*held {
	for p.size > 0 {
		i := (p.head - p.size + p.max) % p.max
		d := p.ring[i]
		live := p.live(d)
		if live && now.Sub(d.at) <= p.ttl {
			break
		}
		if live {
			delete(p.m, d.id)
			out = append(out, d)
		}
		p.ring[i] = nil
		p.size--
	}
	return out
}

func (p *pendingStore) expireAll(out []*held) {
	for _, d := range out {
		if d.deferred {
			p.expired.Add(1)
			if p.expire != nil {
				p.expire(d)
			}
		}
	}
}

// take removes and returns the decision of id, or nil when unknown,
// expired or already rated.
func (p *pendingStore) take(id string, now time.Time) *held {
	if p.max == 0 {
		return nil
	}
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	d := p.m[id]
	if d != nil {
		delete(p.m, id)
	}
	p.mu.Unlock()
	p.expireAll(out)
	if d != nil && d.deferred {
		p.fromFeedback.Add(1)
	}
	return d
}

// flush expires every entry still waiting, so deferred updates are not lost.
func (p *pendingStore) flush() {
	if p.max == 0 {
		return
	}
	p.mu.Lock()
	out := make([]*held, 0, len(p.m))
	for p.size > 0 { // oldest first
		i := (p.head - p.size + p.max) % p.max
		if d := p.ring[i]; p.live(d) {
			delete(p.m, d.id)
			out = append(out, d)
		}
		p.ring[i] = nil
		p.size--
	}
	p.mu.Unlock()
	p.expireAll(out)
}

func (p *pendingStore) stats() PendingStats {
	p.mu.Lock()
	n := len(p.m)
	p.mu.Unlock()
	return PendingStats{Waiting: n, Deferred: p.deferred.Load(), FromFeedback: p.fromFeedback.Load(),
		Expired: p.expired.Load(), Evicted: p.evicted.Load(), UpdateErrors: p.updateErrors.Load()}
}
