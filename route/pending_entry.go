package route

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/routelab/routelab/decision"
)

// entry is one decision in the pending store's ring. Strings are kept as
// they are (they share the record's bytes: catalogue ids, policy names);
// the numbers go to nums, a pointer-free buffer; what is rare (tags, a
// fallback chain, candidates that are not catalogue arms) to extra.
type entry struct {
	id, tenant, task                  string
	policy, version, reason           string
	shadowPolicy, shadowArm, finalArm string
	at, time                          time.Time
	reward                            float64
	deferred                          bool
	nums                              *[]byte
	extra                             *entryExtra
}

type entryExtra struct {
	tags       []string
	attempts   []decision.Attempt
	candidates []decision.Arm // when not stored by catalogue index
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
func (p *pendingStore) encode(e *entry, rec *decision.Record, now time.Time, deferred bool) {
	f, d, o := &rec.Request.Features, &rec.Decision, &rec.Outcome
	*e = entry{id: rec.Request.ID, tenant: f.Tenant, task: f.Task, policy: d.Policy, version: d.PolicyVersion, reason: d.Reason,
		shadowPolicy: d.Shadow.Policy, shadowArm: d.Shadow.Arm, finalArm: o.Arm, at: now, time: f.Time, reward: rec.Reward, deferred: deferred}
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
	if tags != nil || attempts != nil || cands != nil {
		e.extra = &entryExtra{tags: tags, attempts: attempts, candidates: cands}
	}
	if d.Shadow.LoggedProbKnown {
		flags |= flagShadowKnown
	}
	if o.QualityKnown {
		flags |= flagQualityKnown
	}

	bp, _ := p.blobs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	if need := 64 + 8*(len(d.Probs)+len(f.Vector)) + 32*len(d.Candidates); cap(*bp) < need {
		*bp = make([]byte, 0, need)
	}
	b := append((*bp)[:0], flags, byte(o.Status))
	b = binary.AppendVarint(b, int64(f.PromptTokens))
	b = binary.AppendVarint(b, int64(d.Chosen))
	b = appendFloats(b, d.Probs)
	b = appendFloats(b, f.Vector)
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
	*bp = b
	e.nums = bp
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

// decode fills h from e, reusing h's slices.
func (p *pendingStore) decode(h *held, e *entry) {
	b := *e.nums
	flags, status := b[0], decision.Status(b[1])
	b = b[2:]
	prompt, b := varint(b)
	chosen, b := varint(b)
	var probs, vector []float64
	probs, b = floats(b, h.decision.Probs[:0])
	vector, b = floats(b, h.features.Vector[:0])
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

	*h = held{id: e.id, at: e.at, reward: e.reward, deferred: e.deferred}
	h.features = decision.Features{Tenant: e.tenant, Task: e.task, PromptTokens: int(prompt), Time: e.time,
		Tags: x.tags, Vector: nilIfEmpty(vector)}
	h.decision = decision.Decision{Policy: e.policy, PolicyVersion: e.version, Reason: e.reason, Candidates: nilIfEmptyArms(cands),
		Probs: nilIfEmpty(probs), Chosen: int(chosen),
		Shadow: decision.Shadow{Policy: e.shadowPolicy, Arm: e.shadowArm, Prob: sp, LoggedProb: slp, LoggedProbKnown: flags&flagShadowKnown != 0}}
	h.outcome = decision.Outcome{Arm: e.finalArm, Status: status, Latency: time.Duration(lat), TTFT: time.Duration(ttft),
		TokensIn: int(tin), TokensOut: int(tout), Cost: cost, Quality: quality, QualityKnown: flags&flagQualityKnown != 0, Attempts: x.attempts}
}

// release recycles e's buffer; e must not be decoded afterwards.
func (p *pendingStore) release(e *entry) {
	if e.nums != nil {
		p.blobs.Put(e.nums)
		e.nums = nil
	}
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
