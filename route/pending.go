package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// Bytes is what they hold, as PendingOpts.MaxBytes counts it (a
	// decision taken by feedback counts until the older ones have left).
	Bytes int64
	// Mapped is the memory the store has mapped outside the Go heap for
	// its decisions' slots, ids and numbers (part of Bytes, plus up to
	// 1 MiB of blocks and two chunks of slots kept for reuse); 0 where the
	// platform maps none.
	Mapped int64
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
// the repeated strings are interned, candidates stored as catalogue
// indexes plus their live profile, and each decision's id and numbers
// go to its chunk's arena, outside the Go heap (see offheap), and so do
// the chunk's slots themselves (slot: values only, no pointer into the Go
// heap). Full, the store holds about 0.4 KB per decision
// (TestPendingStoreMemory), of which the garbage collector sees only the
// map of ids.
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

	mu sync.Mutex
	// bytes is what the slots in use count (slot.n, taken or not: their
	// bytes stay in the arena until the slot is popped), guarded by mu.
	bytes int64
	m     map[string]uint64 // request id (in the arena) → its slot's sequence number
	// epoch is when the store was made: slots keep when they were stored
	// as the (monotonic) time since, for the TTL.
	epoch time.Time
	// locs are the time zones of the times in the slots (slot.atLoc,
	// slot.tLoc), at most maxLocs; guarded by mu.
	locs []*time.Location
	// The slot of sequence number q is chunks[q/pendingChunk-first]
	// .slots[q%pendingChunk]; a slot with no id is free. next is the
	// sequence number of the next decision; size the slots in use, the
	// oldest next-size.
	chunks []*pendingChunkSlots
	first  uint64
	next   uint64
	size   int
	spare  []*pendingChunkSlots // emptied chunks kept for reuse (≤ pendingSpareChunks)
	mem    *offheap             // the chunks' arena blocks

	strings internTable
	tenants internTable
	blobs   sync.Pool // *[]byte: copies of nums taken out of the store
	scratch sync.Pool // *held: decoded for expiry
}

// pendingChunkSlots is a chunk of slots, in a block of the store's
// offheap (mem), the arena of their bytes, and the rare parts of their
// decisions (slot.extra), which are on the Go heap and so referenced from
// here, where the garbage collector sees them.
type pendingChunkSlots struct {
	slots  *[pendingChunk]slot
	mem    []byte
	arena  chunkArena
	extras []*entryExtra
}

// pendingSpareChunks bounds the emptied chunks a store keeps for reuse.
const pendingSpareChunks = 2

// newChunk returns an empty chunk, its slots in a block from mem.
func newChunk(mem *offheap) *pendingChunkSlots {
	b := mem.getZeroed(int(unsafe.Sizeof(slot{})) * pendingChunk)
	return &pendingChunkSlots{slots: (*[pendingChunk]slot)(unsafe.Pointer(&b[0])), mem: b}
}

func newPendingStore(ttl time.Duration, max int, maxBytes int64, expire func(*held), backend PendingBackend) *pendingStore {
	p := &pendingStore{ttl: ttl, max: max, maxBytes: maxBytes, expire: expire, backend: backend, m: make(map[string]uint64, min(max, 1<<16)), mem: newOffheap(),
		epoch: time.Now()}
	// The garbage collector does not manage the blocks: a store that
	// becomes garbage unmaps them.
	runtime.AddCleanup(p, (*offheap).release, p.mem)
	return p
}

// pendingChunk is how many slots the store adds or drops at a time.
const (
	pendingChunkShift = 10
	pendingChunk      = 1 << pendingChunkShift
)

// chunk is the chunk of sequence number q, which must be in use.
// Callers hold mu.
func (p *pendingStore) chunk(q uint64) *pendingChunkSlots {
	return p.chunks[q>>pendingChunkShift-p.first]
}

// slot is the slot of sequence number q, which must be in use. Callers
// hold mu.
func (p *pendingStore) slot(q uint64) *slot {
	return &p.chunk(q).slots[q&(pendingChunk-1)]
}

// oldest is the sequence number of the oldest slot in use. Callers hold mu.
func (p *pendingStore) oldest() uint64 { return p.next - uint64(p.size) }

// pushLocked stores e in the slot of sequence number next, adding a
// chunk when it begins one, with its id and nums copied to the chunk's
// arena and its extra kept by the chunk, and indexes it. Callers hold mu.
func (p *pendingStore) pushLocked(e *entry, nums []byte) {
	c := p.next >> pendingChunkShift
	if len(p.chunks) == 0 {
		p.first = c
	}
	if c-p.first == uint64(len(p.chunks)) {
		var ch *pendingChunkSlots
		if n := len(p.spare); n > 0 {
			ch, p.spare = p.spare[n-1], p.spare[:n-1]
		} else {
			ch = newChunk(p.mem)
		}
		p.chunks = append(p.chunks, ch)
	}
	ch := p.chunks[c-p.first]
	b := ch.arena.alloc(p.mem, len(e.id)+len(nums))
	copy(b, e.id)
	copy(b[len(e.id):], nums)
	// Every pointer in a slot points into the arena (an empty id is
	// nil, not an empty string into the heap): the collector does not
	// see the slots.
	s := slot{nums: b[len(e.id):], reward: e.reward, n: uint32(entryFixedBytes + len(b)), tlen: e.tlen,
		strs: e.strs, tenant: e.tenant, deferred: e.deferred, shared: e.shared, mono: int64(e.at.Sub(p.epoch))}
	if len(e.id) > 0 {
		s.id = unsafe.String(&b[0], len(e.id))
	}
	s.at, s.atLoc = p.packTime(e.at)
	s.tns, s.tLoc = p.packTime(e.time)
	x := e.extra // encode's own: the store may add to it
	if s.atLoc == locExtra || s.tLoc == locExtra {
		if x == nil {
			x = new(entryExtra)
		}
		x.times = &[2]time.Time{e.at, e.time}
	}
	if x != nil {
		ch.extras = append(ch.extras, x)
		s.extra = uint32(len(ch.extras))
	}
	*p.slot(p.next) = s
	p.m[s.id] = p.next
	p.bytes += int64(s.n)
	p.next++
	p.size++
}

// Slot time zones: slot.atLoc and slot.tLoc are 0 for the zero time,
// locExtra when the time is in the decision's extra (more than maxLocs
// zones, or a year UnixNano cannot hold), else 1 + the zone's index in
// the store's locs.
const (
	maxLocs  = 254
	locExtra = 255
)

// The times UnixNano can hold.
var minUnixNano, maxUnixNano = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

// packTime is t as a slot keeps it. Callers hold mu.
func (p *pendingStore) packTime(t time.Time) (int64, uint8) {
	if t.IsZero() {
		return 0, 0
	}
	if t.Before(minUnixNano) || t.After(maxUnixNano) {
		return 0, locExtra
	}
	loc := t.Location()
	i := slices.Index(p.locs, loc)
	if i < 0 {
		if len(p.locs) == maxLocs {
			return 0, locExtra
		}
		p.locs = append(p.locs, loc)
		i = len(p.locs) - 1
	}
	return t.UnixNano(), uint8(i + 1)
}

// unpackTime is the time packTime kept (times: the decision's extra
// times, when it has them). Callers hold mu.
func (p *pendingStore) unpackTime(ns int64, loc uint8, times *[2]time.Time, k int) time.Time {
	switch loc {
	case 0:
		return time.Time{}
	case locExtra:
		return times[k]
	}
	return time.Unix(0, ns).In(p.locs[loc-1])
}

// popLocked frees the oldest slot and drops the chunks before the new
// oldest, giving their arenas back (every one of their decisions has
// left: removed from the index, and copied out when still needed).
// Callers hold mu; p.size > 0.
func (p *pendingStore) popLocked() {
	s := p.slot(p.oldest())
	p.bytes -= int64(s.n)
	*s = slot{}
	p.size--
	for len(p.chunks) > 0 && (p.size == 0 || p.first < p.oldest()>>pendingChunkShift) {
		ch := p.chunks[0]
		p.chunks[0] = nil
		p.chunks = p.chunks[1:]
		p.first++
		ch.arena.free(p.mem)
		clear(ch.extras)
		ch.extras = ch.extras[:0]
		if len(p.spare) < pendingSpareChunks {
			p.spare = append(p.spare, ch)
		} else {
			p.mem.put(ch.mem)
		}
	}
}

// entryFixedBytes is what a kept decision costs besides its id and
// numbers: its slot (104 B, outside the heap) and its place in the map
// of ids (~40 B; measured by TestPendingStoreMemory).
const entryFixedBytes = 144

// dropLocked removes the live entry of slot q from the index (its bytes
// count until the slot is popped). Callers hold mu.
func (p *pendingStore) dropLocked(q uint64) {
	delete(p.m, p.slot(q).id)
}

// clearLocked empties slot q, whose entry was dropped, keeping what it
// counts until it is popped. Callers hold mu.
func (p *pendingStore) clearLocked(q uint64) {
	s := p.slot(q)
	*s = slot{n: s.n}
}

// outEntry is a decision copied out of the store: its numbers in a
// pooled buffer (buf), since the arena they were in may be given back
// before they are read.
type outEntry struct {
	entry
	buf *[]byte
}

// outLocked appends the dropped entry of slot q to out when it still
// has work to do once mu is released (a deferred update to expire).
// Callers hold mu.
func (p *pendingStore) outLocked(out []outEntry, q uint64) []outEntry {
	s := p.slot(q)
	if !s.deferred {
		return out
	}
	o := p.copyOut(q)
	if s.shared {
		o.id = strings.Clone(s.id) // claimed from the backend by id
	}
	return append(out, o)
}

// copyOut copies the entry of slot q without its id, its numbers to a
// pooled buffer (given back by release). Callers hold mu.
func (p *pendingStore) copyOut(q uint64) outEntry {
	ch := p.chunk(q)
	s := &ch.slots[q&(pendingChunk-1)]
	bp, _ := p.blobs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = append((*bp)[:0], s.nums...)
	o := outEntry{entry: entry{reward: s.reward, nums: *bp, tlen: s.tlen, strs: s.strs, tenant: s.tenant,
		deferred: s.deferred, shared: s.shared}, buf: bp}
	var times *[2]time.Time
	if s.extra > 0 {
		o.extra = ch.extras[s.extra-1]
		times = o.extra.times
	}
	o.at = p.unpackTime(s.at, s.atLoc, times, 0)
	o.time = p.unpackTime(s.tns, s.tLoc, times, 1)
	return o
}

// release gives o's buffer back; o must not be decoded afterwards.
func (p *pendingStore) release(o *outEntry) {
	if o.buf != nil {
		p.blobs.Put(o.buf)
		o.buf, o.nums = nil, nil
	}
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
	var scratch [512]byte
	nums := p.encode(&e, rec, now, deferred, scratch[:0])
	if deferred {
		p.deferred.Add(1)
	}
	if p.backend != nil {
		// The backend gets the full decision (encoded); the store keeps
		// whether it did, which decides who owns the decision later.
		h := new(held)
		p.decode(h, &e, nums)
		p.share(h)
		e.shared = h.shared
	}
	var outBuf [2]outEntry
	p.mu.Lock()
	out := p.sweepLocked(now, outBuf[:0])
	if q, ok := p.m[e.id]; ok {
		// A reused id replaces its older entry, which leaves unrated; its
		// slot no longer holds a decision (liveAt reports it free).
		p.dropLocked(q)
		out = p.outLocked(out, q)
		p.clearLocked(q)
	}
	if p.size == p.max {
		out = p.evictOldestLocked(out)
	}
	p.pushLocked(&e, nums)
	for p.maxBytes > 0 && p.bytes > p.maxBytes && p.size > 1 {
		out = p.evictOldestLocked(out)
	}
	p.mu.Unlock()
	p.expireAll(out)
}

// evictOldestLocked frees the oldest slot, evicting its decision
// when it is still waiting. Callers hold mu; p.size > 0.
func (p *pendingStore) evictOldestLocked(out []outEntry) []outEntry {
	out, live := p.popOldestLocked(out)
	if live {
		p.evicted.Add(1)
	}
	return out
}

// popOldestLocked frees the oldest slot; a decision still waiting there
// leaves the store (appended to out when it has work left) and live
// reports it. Callers hold mu; p.size > 0.
func (p *pendingStore) popOldestLocked(out []outEntry) (_ []outEntry, live bool) {
	q := p.oldest()
	if live = p.liveAt(q); live {
		p.dropLocked(q)
		out = p.outLocked(out, q)
	}
	p.popLocked()
	return out, live
}

// liveAt reports whether slot q holds a decision still waiting (not
// taken, replaced or swept). Callers hold mu.
func (p *pendingStore) liveAt(q uint64) bool {
	s := p.slot(q)
	if s.id == "" {
		return false
	}
	j, ok := p.m[s.id]
	return ok && j == q
}

// sweepLocked removes the entries older than ttl, oldest first, appending
// those with work left to out. Callers hold mu.
func (p *pendingStore) sweepLocked(now time.Time, out []outEntry) []outEntry {
	for p.size > 0 {
		if q := p.oldest(); p.liveAt(q) && int64(now.Sub(p.epoch))-p.slot(q).mono <= int64(p.ttl) {
			break
		}
		out, _ = p.popOldestLocked(out)
	}
	return out
}

// expireAll credits the entries of out (deferred, dropped from the store)
// their immediate reward and gives their buffers back. An entry whose copy
// is in the backend is claimed first: when another process took it, that
// process got the feedback and learned.
func (p *pendingStore) expireAll(out []outEntry) {
	for i := range out {
		e := &out[i]
		if e.shared && !p.claimID(e.id) {
			p.release(e)
			continue
		}
		p.expired.Add(1)
		if p.expire != nil {
			h, _ := p.scratch.Get().(*held)
			if h == nil {
				h = new(held)
			}
			p.decode(h, &e.entry, e.nums)
			p.expire(h)
			p.scratch.Put(h)
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
	var o outEntry
	p.mu.Lock()
	out := p.sweepLocked(now, nil)
	q, ok := p.m[id]
	if ok {
		p.dropLocked(q)
		o = p.copyOut(q)
		p.clearLocked(q)
	}
	p.mu.Unlock()
	p.expireAll(out)
	var d *held
	if ok {
		o.id = id
		d = new(held)
		p.decode(d, &o.entry, o.nums)
		p.release(&o)
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

// flush expires every entry still waiting, so deferred updates are not
// lost, and empties the store.
func (p *pendingStore) flush() {
	if p.max == 0 {
		return
	}
	p.mu.Lock()
	out := make([]outEntry, 0, len(p.m))
	for p.size > 0 { // oldest first
		out, _ = p.popOldestLocked(out)
	}
	for _, ch := range p.spare {
		p.mem.put(ch.mem)
	}
	p.spare = nil
	p.mu.Unlock()
	p.mem.trim() // empty: no memory kept for reuse
	p.expireAll(out)
}

func (p *pendingStore) stats() PendingStats {
	p.mu.Lock()
	n, b := len(p.m), p.bytes
	p.mu.Unlock()
	return PendingStats{Waiting: n, Bytes: b, Mapped: p.mem.mapped.Load(), Deferred: p.deferred.Load(), FromFeedback: p.fromFeedback.Load(),
		Expired: p.expired.Load(), Evicted: p.evicted.Load(), UpdateErrors: p.updateErrors.Load(),
		Remote: p.remote.Load(), BackendErrors: p.backendErrors.Load()}
}
