package route

import (
	"encoding/json"
	"errors"
	"fmt"
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
	// MaxBytes, when > 0, also bounds the bytes the kept decisions hold
	// (entryBytes each: the fixed part, the id and the encoded numbers,
	// which grow with the feature vector's non-zero slots): when over it,
	// the oldest are evicted as when MaxEntries is reached. A text-feature
	// encoder's vectors make a decision 10–20× larger than a task-only
	// one's, so a count alone does not bound the memory. Negative is an
	// error.
	MaxBytes int64
	// TTL is how long a decision waits for feedback; 0 means
	// DefaultPendingTTL; negative is an error.
	TTL time.Duration
	// Backend, optional, shares the pending decisions with other processes
	// (the gateway's replicas, through Redis): see PendingBackend.
	Backend PendingBackend
	// Defer makes Complete hold back the policy update of a routed,
	// successful answer of unknown quality until its feedback arrives (or,
	// when none does within TTL, credit the immediate reward then): every
	// routed request updates the policy exactly once. Needs MaxEntries > 0.
	Defer bool
}

// PendingBackend shares pending decisions between processes, so that
// feedback reaching any of them joins the decision another one made. The
// core's pending store stays the one store: it keeps every decision
// locally as before and, with a backend, also puts an encoded copy there
// (for TTL plus a minute). Whoever takes the copy from the backend owns the
// decision: Feedback takes it (from the local store, or, when another
// process made the decision, from the backend alone), and the process that
// made a deferred decision takes it before crediting the immediate reward
// at expiry — if it is gone, another process got the feedback and learned,
// so the update happens exactly once across processes. A backend error
// (unreachable) falls back to the local store alone: the decision is then
// known only to the process that made it.
type PendingBackend interface {
	Put(id string, data []byte, ttl time.Duration) error
	// Take removes and returns id's decision; ok is false when the
	// backend holds none.
	Take(id string) (data []byte, ok bool, err error)
}

// pendingGrace is how much longer the backend keeps a decision than the
// local store, so the deciding process can still claim it at expiry.
const pendingGrace = time.Minute

// PendingStats are the pending store's counters since the core was built.
type PendingStats struct {
	// Waiting is the number of decisions held now.
	Waiting int
	// Bytes is what they hold, as PendingOpts.MaxBytes counts it.
	Bytes int64
	// Deferred counts policy updates held back for feedback; each ends as
	// exactly one of FromFeedback or Expired.
	Deferred uint64
	// FromFeedback counts deferred updates applied from feedback.
	FromFeedback uint64
	// Expired counts deferred updates credited their immediate reward
	// because no feedback came in time (TTL, eviction or Flush).
	Expired uint64
	// Evicted counts decisions dropped because the store was full (in
	// entries or bytes).
	Evicted uint64
	// UpdateErrors counts expired updates whose policy Update failed.
	UpdateErrors uint64
	// Remote counts feedback joined to a decision another process made
	// (through PendingOpts.Backend); BackendErrors counts backend calls that
	// failed (the local store answered alone).
	Remote, BackendErrors uint64
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
	// shared: a copy went to the backend, and whoever takes it owns it.
	shared bool
}

// heldJSON is held's encoding in a PendingBackend.
type heldJSON struct {
	ID       string            `json:"id"`
	At       time.Time         `json:"at"`
	Features decision.Features `json:"features"`
	Decision decision.Decision `json:"decision"`
	Outcome  decision.Outcome  `json:"outcome"`
	Reward   float64           `json:"reward"`
	Deferred bool              `json:"deferred"`
}

func (h *held) encode() ([]byte, error) {
	return json.Marshal(heldJSON{ID: h.id, At: h.at, Features: h.features, Decision: h.decision, Outcome: h.outcome, Reward: h.reward, Deferred: h.deferred})
}

func decodeHeld(id string, data []byte) (*held, error) {
	var j heldJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("pending decision %q from the backend: %w", id, err)
	}
	if j.ID != id || j.Decision.Chosen < 0 || j.Decision.Chosen >= len(j.Decision.Candidates) {
		return nil, fmt.Errorf("pending decision %q from the backend: id %q, chosen %d of %d candidates", id, j.ID, j.Decision.Chosen, len(j.Decision.Candidates))
	}
	return &held{id: j.ID, at: j.At, features: j.Features, decision: j.Decision, outcome: j.Outcome, reward: j.Reward, deferred: j.Deferred}, nil
}

// pendingStore keeps recent decisions by request id, bounded in count
// (oldest evicted first) and in age (ttl). A deferred decision that leaves
// the store without feedback — evicted, older than ttl, or flushed — is
// handed to expire, which credits its immediate reward, so every routed
// request updates the policy exactly once. Expiry is checked on every put
// and take, so with no traffic at all an expired update waits for the next
// request (or Flush).
//
// Decisions are stored compactly (entry): values, not pointers, in
// insertion order, in chunks of pendingChunk slots added as decisions
// arrive and dropped once their decisions have all left (so a store that
// never fills costs what it holds, and it grows without moving an entry);
// their numbers live in a pointer-free byte slice that is recycled when
// the entry leaves, and candidates as catalogue indexes plus their live
// profile. Full, the store holds about 0.5 KB per decision
// (TestPendingStoreMemory), which the garbage collector need not scan.
type pendingStore struct {
	ttl      time.Duration
	max      int
	maxBytes int64 // 0 = no byte bound
	expire   func(*held)
	// catalogue lets candidates that are catalogue arms be stored by
	// index; nil stores every candidate in full.
	catalogue []decision.Arm
	index     map[string]int

	backend PendingBackend

	deferred, fromFeedback, expired, evicted, updateErrors, remote, backendErrors atomic.Uint64

	mu    sync.Mutex
	bytes int64             // entryBytes of the live entries, guarded by mu
	m     map[string]uint64 // request id → its slot's sequence number
	// The slot of sequence number q is chunks[q/pendingChunk-first]
	// [q%pendingChunk]; entry{} = free. next is the sequence number of
	// the next decision; size the slots in use, the oldest next-size.
	chunks []*[pendingChunk]entry
	first  uint64
	next   uint64
	size   int
	spare  []*[pendingChunk]entry // emptied chunks kept for reuse (≤ 2)

	strings internTable
	blobs   sync.Pool // *[]byte: entry.nums buffers
	scratch sync.Pool // *held: decoded for expiry
}

func newPendingStore(ttl time.Duration, max int, maxBytes int64, expire func(*held), backend PendingBackend) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, maxBytes: maxBytes, expire: expire, backend: backend, m: make(map[string]uint64, min(max, 1<<16))}
}

// pendingChunk is how many slots the store adds or drops at a time.
const (
	pendingChunkShift = 10
	pendingChunk      = 1 << pendingChunkShift
)

// slot is the slot of sequence number q, which must be in use. Callers
// hold mu.
func (p *pendingStore) slot(q uint64) *entry {
	return &p.chunks[q>>pendingChunkShift-p.first][q&(pendingChunk-1)]
}

// oldest is the sequence number of the oldest slot in use. Callers hold mu.
func (p *pendingStore) oldest() uint64 { return p.next - uint64(p.size) }

// pushLocked returns the slot for sequence number next, adding a chunk
// when it begins one. Callers hold mu and then advance next and size.
func (p *pendingStore) pushLocked() *entry {
	c := p.next >> pendingChunkShift
	if len(p.chunks) == 0 {
		p.first = c
	}
	if c-p.first == uint64(len(p.chunks)) {
		var ch *[pendingChunk]entry
		if n := len(p.spare); n > 0 {
			ch, p.spare = p.spare[n-1], p.spare[:n-1]
		} else {
			ch = new([pendingChunk]entry)
		}
		p.chunks = append(p.chunks, ch)
	}
	return p.slot(p.next)
}

// popLocked clears the oldest slot and drops the chunks before the new
// oldest (every one of their slots was cleared as it was popped). Callers
// hold mu; p.size > 0.
func (p *pendingStore) popLocked() {
	*p.slot(p.oldest()) = entry{}
	p.size--
	for len(p.chunks) > 0 && p.first < p.oldest()>>pendingChunkShift {
		ch := p.chunks[0]
		p.chunks[0] = nil
		p.chunks = p.chunks[1:]
		p.first++
		if len(p.spare) < 2 {
			p.spare = append(p.spare, ch)
		}
	}
}

// entryFixedBytes is what a kept decision costs besides its id and
// numbers: its slot, map slot and buffer header (about; measured by
// TestPendingStoreMemory).
const entryFixedBytes = 280

// entryBytes is what e counts against PendingOpts.MaxBytes.
func entryBytes(e *entry) int64 {
	n := int64(entryFixedBytes + len(e.id))
	if e.nums != nil {
		n += int64(cap(*e.nums))
	}
	return n
}

// dropLocked removes the live entry of slot q from the index and the
// byte count (the caller moves or clears the slot). Callers hold mu.
func (p *pendingStore) dropLocked(q uint64) {
	e := p.slot(q)
	delete(p.m, e.id)
	p.bytes -= entryBytes(e)
}

// share puts d's copy in the backend.
func (p *pendingStore) share(d *held) {
	data, err := d.encode()
	if err == nil {
		err = p.backend.Put(d.id, data, p.ttl+pendingGrace)
	}
	if err != nil {
		p.backendErrors.Add(1)
		return
	}
	d.shared = true
}

// claimID takes id's copy from the backend: false when another process
// took it first. A backend error claims locally.
func (p *pendingStore) claimID(id string) bool {
	_, ok, err := p.backend.Take(id)
	if err != nil {
		p.backendErrors.Add(1)
		return true
	}
	return ok
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
	if p.backend != nil {
		// The backend gets the full decision (encoded); the ring keeps
		// whether it did, which decides who owns the decision later.
		h := new(held)
		p.decode(h, &e)
		p.share(h)
		e.shared = h.shared
	}
	var outBuf [2]entry
	p.mu.Lock()
	out := p.sweepLocked(now, outBuf[:0])
	if q, ok := p.m[e.id]; ok {
		// A reused id replaces its older entry, which leaves unrated; its
		// slot no longer counts (liveAt reports it free).
		p.dropLocked(q)
		out = append(out, *p.slot(q))
		*p.slot(q) = entry{}
	}
	if p.size == p.max {
		out = p.evictOldestLocked(out)
	}
	*p.pushLocked() = e
	p.m[e.id] = p.next
	p.bytes += entryBytes(&e)
	p.next++
	p.size++
	for p.maxBytes > 0 && p.bytes > p.maxBytes && p.size > 1 {
		out = p.evictOldestLocked(out)
	}
	p.mu.Unlock()
	p.expireAll(out)
}

// evictOldestLocked frees the oldest slot, evicting its decision
// when it is still waiting. Callers hold mu; p.size > 0.
func (p *pendingStore) evictOldestLocked(out []entry) []entry {
	q := p.oldest()
	if p.liveAt(q) {
		p.dropLocked(q)
		out = append(out, *p.slot(q))
		p.evicted.Add(1)
	} else {
		p.release(p.slot(q))
	}
	p.popLocked()
	return out
}

// liveAt reports whether slot q holds a decision still waiting (not
// taken, replaced or swept). Callers hold mu.
func (p *pendingStore) liveAt(q uint64) bool {
	e := p.slot(q)
	if e.id == "" {
		return false
	}
	j, ok := p.m[e.id]
	return ok && j == q
}

// sweepLocked removes the entries older than ttl, oldest first, appending
// them to out. Callers hold mu.
func (p *pendingStore) sweepLocked(now time.Time, out []entry) []entry {
	for p.size > 0 {
		q := p.oldest()
		live := p.liveAt(q)
		if live && now.Sub(p.slot(q).at) <= p.ttl {
			break
		}
		if live {
			p.dropLocked(q)
			out = append(out, *p.slot(q))
		} else {
			p.release(p.slot(q))
		}
		p.popLocked()
	}
	return out
}

// expireAll credits the deferred entries of out their immediate reward
// and recycles every entry's buffer. A deferred entry whose copy is in the
// backend is claimed first: when another process took it, that process
// got the feedback and learned.
func (p *pendingStore) expireAll(out []entry) {
	for i := range out {
		e := &out[i]
		if e.deferred && e.shared && !p.claimID(e.id) {
			p.release(e)
			continue
		}
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
	q, ok := p.m[id]
	if ok {
		p.dropLocked(q)
		e = *p.slot(q)
		*p.slot(q) = entry{}
	}
	p.mu.Unlock()
	p.expireAll(out)
	var d *held
	if ok {
		d = new(held)
		p.decode(d, &e)
		p.release(&e)
	}
	if p.backend != nil {
		d = p.takeShared(id, d)
	}
	if d == nil {
		return nil
	}
	if d.deferred {
		p.fromFeedback.Add(1)
	}
	return d
}

// takeShared settles ownership of id with the backend: local is what the
// local store held (nil when this process did not make the decision).
func (p *pendingStore) takeShared(id string, local *held) *held {
	if local != nil && !local.shared {
		return local
	}
	data, ok, err := p.backend.Take(id)
	switch {
	case err != nil:
		p.backendErrors.Add(1)
		return local
	case !ok:
		return nil // rated through another process, or expired there
	case local != nil:
		return local
	}
	d, err := decodeHeld(id, data)
	if err != nil {
		p.backendErrors.Add(1)
		return nil
	}
	p.remote.Add(1)
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
		q := p.oldest()
		if p.liveAt(q) {
			p.dropLocked(q)
			out = append(out, *p.slot(q))
		} else {
			p.release(p.slot(q))
		}
		p.popLocked()
	}
	p.mu.Unlock()
	p.expireAll(out)
}

func (p *pendingStore) stats() PendingStats {
	p.mu.Lock()
	n, b := len(p.m), p.bytes
	p.mu.Unlock()
	return PendingStats{Waiting: n, Bytes: b, Deferred: p.deferred.Load(), FromFeedback: p.fromFeedback.Load(),
		Expired: p.expired.Load(), Evicted: p.evicted.Load(), UpdateErrors: p.updateErrors.Load(),
		Remote: p.remote.Load(), BackendErrors: p.backendErrors.Load()}
}
