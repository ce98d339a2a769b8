package route

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routelab/routelab/decision"
)

// entry is one decision of the pending store as encode makes it and
// decode reads it (the store keeps it as a slot). The strings that repeat
// across requests (task, policy, version, reason, arm ids) are indexes
// into the store's intern table, and tenants into a table of their own
// (a flood of tenants must not crowd the others out); a tenant past its
// table's bound goes into the encoded bytes, before the numbers; what is
// rare (tags, a fallback chain, candidates that are not catalogue arms,
// strings past the intern table's bound) goes to extra.
type entry struct {
	id       string
	at, time time.Time
	reward   float64
	nums     []byte // the tenant's bytes (tlen) when not interned, then the numbers
	extra    *entryExtra
	tlen     uint32        // bytes of the tenant at the start of nums
	strs     [nStrs]uint16 // intern indexes; noString = in extra.strs
	tenant   uint16        // index in the tenant table; noString = in nums
	deferred bool
	shared   bool // a copy went to PendingOpts.Backend (held.shared)
}

// The interned strings of an entry, by position in entry.strs.
const (
	sTask = iota
	sPolicy
	sVersion
	sReason
	sShadowPolicy
	sShadowArm
	sFinalArm
	nStrs
)

type entryExtra struct {
	tags       []string
	attempts   []decision.Attempt
	candidates []decision.Arm // when not stored by catalogue index
	strs       *[nStrs]string // when a string did not fit the intern table
	times      *[2]time.Time  // entry.at and entry.time, when a slot cannot hold them (packTime)
}

// slot is an entry as its chunk keeps it, in memory the garbage collector
// does not scan (pendingChunkSlots): no pointer into the Go heap. The id
// and numbers point into the chunk's arena, the times are numbers (with
// their zones in the store's table), and the extra is an index into the
// chunk's extras.
type slot struct {
	id     string // in the arena; "" when the slot holds no decision
	nums   []byte // in the arena
	at     int64  // entry.at, UnixNano
	mono   int64  // entry.at since the store's epoch (monotonic when the clock gives it): the TTL
	tns    int64  // entry.time, UnixNano
	reward float64
	n      uint32 // bytes counted against PendingOpts.MaxBytes
	tlen   uint32
	extra  uint32 // 1 + index in the chunk's extras; 0 for none
	strs   [nStrs]uint16
	tenant uint16
	atLoc  uint8 // zones of at and tns (packTime)
	tLoc   uint8
	// deferred and shared are entry's.
	deferred, shared bool
}

// Flags in the first byte of nums.
const (
	flagShadowKnown = 1 << iota
	flagQualityKnown
	flagCandidatesExtra
)

// encode fills e from rec: exactly what the store's copy of rec used to
// keep (slices copied, nil when empty; attempts only when there was more
// than one).
func (p *pendingStore) encode(e *entry, rec *decision.Record, now time.Time, deferred bool, b []byte) []byte {
	f, d, o := &rec.Request.Features, &rec.Decision, &rec.Outcome
	*e = entry{id: rec.Request.ID, at: now, time: f.Time, reward: rec.Reward, deferred: deferred}
	strs := [nStrs]string{sTask: f.Task, sPolicy: d.Policy, sVersion: d.PolicyVersion, sReason: d.Reason,
		sShadowPolicy: d.Shadow.Policy, sShadowArm: d.Shadow.Arm, sFinalArm: o.Arm}
	overflow := false
	for i, v := range strs {
		e.strs[i] = p.strings.index(v)
		overflow = overflow || e.strs[i] == noString
	}
	var tags []string
	var attempts []decision.Attempt
	if len(f.Tags) > 0 {
		tags = append([]string(nil), f.Tags...)
	}
	if len(o.Attempts) > 1 { // ForDecision needs the chain only when there was more than one attempt
		attempts = append([]decision.Attempt(nil), o.Attempts...)
	}
	var cands []decision.Arm
	byIndex := p.catalogue != nil
	for i := range d.Candidates {
		if byIndex && p.catalogueIndex(&d.Candidates[i]) < 0 {
			byIndex = false
		}
	}
	var flags byte
	if !byIndex && len(d.Candidates) > 0 {
		cands = append([]decision.Arm(nil), d.Candidates...)
		flags |= flagCandidatesExtra
	}
	if tags != nil || attempts != nil || cands != nil || overflow {
		e.extra = &entryExtra{tags: tags, attempts: attempts, candidates: cands}
		if overflow {
			e.extra.strs = new([nStrs]string)
			*e.extra.strs = strs
		}
	}
	if d.Shadow.LoggedProbKnown {
		flags |= flagShadowKnown
	}
	if o.QualityKnown {
		flags |= flagQualityKnown
	}

	// Encoded into b (the caller's stack buffer); the store copies the
	// bytes into its arena.
	if e.tenant = p.tenants.index(f.Tenant); e.tenant == noString {
		e.tlen = uint32(len(f.Tenant))
		b = append(b, f.Tenant...)
	}
	b = append(b, flags, byte(o.Status))
	b = binary.AppendVarint(b, int64(f.PromptTokens))
	b = binary.AppendVarint(b, int64(d.Chosen))
	b = appendFloats(b, d.Probs)
	b = appendSparse(b, f.Vector)
	if byIndex {
		b = binary.AppendUvarint(b, uint64(len(d.Candidates)))
		for i := range d.Candidates {
			a := &d.Candidates[i]
			b = binary.AppendUvarint(b, uint64(p.catalogueIndex(a)))
			b = appendFloat(appendFloat(appendFloat(b, a.LatencyMS), a.Quality), a.ErrorRate)
		}
	}
	b = appendFloat(appendFloat(b, d.Shadow.Prob), d.Shadow.LoggedProb)
	b = binary.AppendVarint(b, int64(o.Latency))
	b = binary.AppendVarint(b, int64(o.TTFT))
	b = binary.AppendVarint(b, int64(o.TokensIn))
	b = binary.AppendVarint(b, int64(o.TokensOut))
	b = appendFloat(appendFloat(b, o.Cost), o.Quality)
	return b
}

// catalogueIndex returns the catalogue index of a when a is that
// catalogue arm with live profile values filled in (what Decide puts in
// the candidates), else -1.
func (p *pendingStore) catalogueIndex(a *decision.Arm) int {
	i, ok := p.index[a.ID]
	if !ok {
		return -1
	}
	c := p.catalogue[i]
	c.LatencyMS, c.Quality, c.ErrorRate = a.LatencyMS, a.Quality, a.ErrorRate
	if c != *a {
		return -1
	}
	return i
}

// decode fills h from e and its encoded numbers (e.nums, or a copy),
// reusing h's slices. h.id is e.id, which must not be in the arena.
func (p *pendingStore) decode(h *held, e *entry, nums []byte) {
	b := nums
	var tenant string
	if e.tenant == noString {
		tenant = string(b[:e.tlen]) // a copy: the arena's bytes are reused
		b = b[e.tlen:]
	} else {
		tenant = p.tenants.get(e.tenant)
	}
	flags, status := b[0], decision.Status(b[1])
	b = b[2:]
	prompt, b := varint(b)
	chosen, b := varint(b)
	var probs, vector []float64
	probs, b = floats(b, h.decision.Probs[:0])
	vector, b = sparse(b, h.features.Vector[:0])
	cands := h.decision.Candidates[:0]
	var x entryExtra
	if e.extra != nil {
		x = *e.extra
	}
	if flags&flagCandidatesExtra != 0 {
		cands = append(cands, x.candidates...)
	} else if p.catalogue != nil {
		var n uint64
		n, b = uvarint(b)
		for range n {
			var i uint64
			i, b = uvarint(b)
			a := p.catalogue[i]
			a.LatencyMS, b = float(b)
			a.Quality, b = float(b)
			a.ErrorRate, b = float(b)
			cands = append(cands, a)
		}
	}
	var sp, slp float64
	sp, b = float(b)
	slp, b = float(b)
	lat, b := varint(b)
	ttft, b := varint(b)
	tin, b := varint(b)
	tout, b := varint(b)
	cost, b := float(b)
	quality, _ := float(b)

	var strs [nStrs]string
	if x.strs != nil {
		strs = *x.strs
	} else {
		for i, k := range e.strs {
			strs[i] = p.strings.get(k)
		}
	}
	*h = held{id: e.id, at: e.at, reward: e.reward, deferred: e.deferred, shared: e.shared}
	h.features = decision.Features{Tenant: tenant, Task: strs[sTask], PromptTokens: int(prompt), Time: e.time,
		Tags: x.tags, Vector: nilIfEmpty(vector)}
	h.decision = decision.Decision{Policy: strs[sPolicy], PolicyVersion: strs[sVersion], Reason: strs[sReason], Candidates: nilIfEmptyArms(cands),
		Probs: nilIfEmpty(probs), Chosen: int(chosen),
		Shadow: decision.Shadow{Policy: strs[sShadowPolicy], Arm: strs[sShadowArm], Prob: sp, LoggedProb: slp, LoggedProbKnown: flags&flagShadowKnown != 0}}
	h.outcome = decision.Outcome{Arm: strs[sFinalArm], Status: status, Latency: time.Duration(lat), TTFT: time.Duration(ttft),
		TokensIn: int(tin), TokensOut: int(tout), Cost: cost, Quality: quality, QualityKnown: flags&flagQualityKnown != 0, Attempts: x.attempts}
}

func appendFloat(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

func appendFloats(b []byte, vs []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = appendFloat(b, v)
	}
	return b
}

// appendSparse appends vs as its length, a bitmap of the elements whose
// bits are not all zero (so -0 and NaN are kept), and those elements:
// feature vectors are mostly one-hot groups, so mostly +0.
func appendSparse(b []byte, vs []float64) []byte {
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for i := 0; i < len(vs); i += 8 {
		var m byte
		for j := i; j < min(i+8, len(vs)); j++ {
			if math.Float64bits(vs[j]) != 0 {
				m |= 1 << (j - i)
			}
		}
		b = append(b, m)
	}
	for _, v := range vs {
		if math.Float64bits(v) != 0 {
			b = appendFloat(b, v)
		}
	}
	return b
}

// sparse reads what appendSparse wrote, appending to dst.
func sparse(b []byte, dst []float64) ([]float64, []byte) {
	n, b := uvarint(b)
	mask := b[:(n+7)/8]
	b = b[(n+7)/8:]
	for i := range int(n) {
		v := 0.0
		if mask[i/8]&(1<<(i%8)) != 0 {
			v, b = float(b)
		}
		dst = append(dst, v)
	}
	return dst, b
}

func float(b []byte) (float64, []byte) {
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
}

func floats(b []byte, dst []float64) ([]float64, []byte) {
	n, b := uvarint(b)
	for range n {
		var v float64
		v, b = float(b)
		dst = append(dst, v)
	}
	return dst, b
}

// varint and uvarint read what encode wrote (always well formed).
func varint(b []byte) (int64, []byte) {
	v, n := binary.Varint(b)
	return v, b[n:]
}

func uvarint(b []byte) (uint64, []byte) {
	v, n := binary.Uvarint(b)
	return v, b[n:]
}

func nilIfEmpty(s []float64) []float64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyArms(s []decision.Arm) []decision.Arm {
	if len(s) == 0 {
		return nil
	}
	return s
}

// noString marks a string that is not in the intern table.
const noString = math.MaxUint16

// maxInterned bounds the intern table: task names, policy names and
// versions, reasons and arm ids are few; a flood of distinct ones (task
// names from a header, say) goes to entryExtra instead.
const maxInterned = 4096

// internTable maps the strings that repeat across decisions to small
// indexes. Reads are lock-free (an immutable snapshot); a new string
// copies the snapshot under mu, which happens a bounded number of times.
type internTable struct {
	snap atomic.Pointer[internSnap]
	mu   sync.Mutex
}

type internSnap struct {
	idx  map[string]uint16
	strs []string
}

// index returns s's index, adding it when new, or noString when the
// table is full.
func (t *internTable) index(s string) uint16 {
	if sn := t.snap.Load(); sn != nil {
		if i, ok := sn.idx[s]; ok {
			return i
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	if old == nil {
		old = &internSnap{}
	}
	if i, ok := old.idx[s]; ok {
		return i
	}
	if len(old.strs) >= maxInterned {
		return noString
	}
	sn := &internSnap{idx: make(map[string]uint16, len(old.strs)+1), strs: append(old.strs[:len(old.strs):len(old.strs)], s)}
	for k, v := range old.idx {
		sn.idx[k] = v
	}
	i := uint16(len(old.strs))
	sn.idx[s] = i
	t.snap.Store(sn)
	return i
}

// get returns the string of index i (from index).
func (t *internTable) get(i uint16) string { return t.snap.Load().strs[i] }
