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

// held is a decision taken out of the pending store: what delayed
// feedback, or the expiry of a deferred update, needs to reach the policy
// that decided it.
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
//
// Decisions are stored compactly (entry): a ring of values, not pointers,
// whose numbers live in a pointer-free byte slice that is recycled when
// the entry leaves, and candidates as catalogue indexes plus their live
// profile. Full, the store holds about 0.5 KB per decision
// (TestPendingStoreMemory), which the garbage collector need not scan.
type pendingStore struct {
	ttl    time.Duration
	max    int
	expire func(*held)
	// catalogue lets candidates that are catalogue arms be stored by
	// index; nil stores every candidate in full.
	catalogue []decision.Arm
	index     map[string]int

	deferred, fromFeedback, expired, evicted, updateErrors atomic.Uint64

	mu   sync.Mutex
	m    map[string]int32 // request id → ring slot
	ring []entry          // insertion order, len max; entry{} = free slot
	head int              // next slot to write
	size int              // slots in use, oldest at head-size

	strings internTable
	blobs   sync.Pool // *[]byte: entry.nums buffers
	scratch sync.Pool // *held: decoded for expiry
}

func newPendingStore(ttl time.Duration, max int, expire func(*held)) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, expire: expire, m: make(map[string]int32, min(max, 1<<16)), ring: make([]entry, max)}
}

// enabled reports whether the store keeps anything.
func (p *pendingStore) enabled() bool { return p.max > 0 }

// put copies what rec's request needs for a later Learn. deferred says the
// policy has not learned from rec yet.
func (p *pendingStore) put(rec *decision.Record, now time.Time, deferred bool) {
	if p.max == 0 {
		return
	}
	var e entry
	p.encode(&e, rec, now, deferred)
	if deferred {
		p.deferred.Add(1)
	}
	var outBuf [2]entry
	p.mu.Lock()
	out := p.sweepLocked(now, outBuf[:0])
	if i, ok := p.m[e.id]; ok {
		// A reused id replaces its older entry, which leaves unrated; its
		// ring slot no longer counts (liveAt reports it free).
		out = append(out, p.ring[i])
		p.ring[i] = entry{}
	}
	if p.size == p.max {
		if p.liveAt(p.head) {
			old := p.ring[p.head]
			delete(p.m, old.id)
			out = append(out, old)
			p.evicted.Add(1)
		} else {
			p.release(&p.ring[p.head])
		}
		p.size--
	}
	p.ring[p.head] = e
	p.m[e.id] = int32(p.head)
	p.head = (p.head + 1) % p.max
	p.size++
	p.mu.Unlock()
	p.expireAll(out)
}

// liveAt reports whether ring slot i holds a decision still waiting (not
// taken, replaced or swept). Callers hold mu.
func (p *pendingStore) liveAt(i int) bool {
	e := &p.ring[i]
	if e.id == "" {
		return false
	}
	j, ok := p.m[e.id]
	return ok && int(j) == i
}

// sweepLocked removes the entries older than ttl, oldest first, appending
// them to out. Callers hold mu.
func (p *pendingStore) sweepLocked(now time.Time, out []entry) []entry {
	for p.size > 0 {
		i := (p.head - p.size + p.max) % p.max
		live := p.liveAt(i)
		if live && now.Sub(p.ring[i].at) <= p.ttl {
			break
		}
		if live {
			delete(p.m, p.ring[i].id)
			out = append(out, p.ring[i])
		} else {
			p.release(&p.ring[i])
		}
		p.ring[i] = entry{}
		p.size--
	}
	return out
}

// expireAll credits the deferred entries of out their immediate reward
// and recycles every entry's buffer.
func (p *pendingStore) expireAll(out []entry) {
	for i := range out {
		e := &out[i]
		if e.deferred {
			p.expired.Add(1)
			if p.expire != nil {
				h, _ := p.scratch.Get().(*held)
				if h == nil {
					h = new(held)
				}
				p.decode(h, e)
				p.expire(h)
				p.scratch.Put(h)
			}
		}
		p.release(e)
	}
}

// take removes and returns the decision of id, or nil when unknown,
// expired or already rated.
func (p *pendingStore) take(id string, now time.Time) *held {
	if p.max == 0 {
		return nil
	}
	var e entry
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	i, ok := p.m[id]
	if ok {
		delete(p.m, id)
		e = p.ring[i]
		p.ring[i] = entry{}
	}
	p.mu.Unlock()
	p.expireAll(out)
	if !ok {
		return nil
	}
	d := new(held)
	p.decode(d, &e)
	p.release(&e)
	if d.deferred {
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
	out := make([]entry, 0, len(p.m))
	for p.size > 0 { // oldest first
		i := (p.head - p.size + p.max) % p.max
		if p.liveAt(i) {
			delete(p.m, p.ring[i].id)
			out = append(out, p.ring[i])
		} else {
			p.release(&p.ring[i])
		}
		p.ring[i] = entry{}
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
