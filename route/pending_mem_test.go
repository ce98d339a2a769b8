package route

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// pendingRecord is a record as the gateway completes it: three
// candidates with live profiles, the default encoder's 26-dimensional
// feature vector (one-hot groups: 5 non-zero), a request id of the
// gateway's length (rl- and 48 hex digits).
func pendingRecord(i int) *decision.Record {
	vec := make([]float64, 26)
	for _, j := range []int{0, 3, 9, 15, 20} {
		vec[j] = 1
	}
	cands := []decision.Arm{
		{ID: "mock-small", Provider: "mock", PriceIn: 0.00015, PriceOut: 0.0006, LatencyMS: 12, Quality: 0.7, ErrorRate: 0.01},
		{ID: "mock-medium", Provider: "mock", PriceIn: 0.0005, PriceOut: 0.0015, LatencyMS: 15, Quality: 0.8},
		{ID: "mock-large", Provider: "mock", PriceIn: 0.003, PriceOut: 0.015, LatencyMS: 30, Quality: 0.9},
	}
	return &decision.Record{
		Request: decision.Request{ID: fmt.Sprintf("rl-%048d", i), Features: decision.Features{Task: "chat", PromptTokens: 60,
			Time: time.Unix(1700000000, 0), Vector: vec}},
		Decision: decision.Decision{Policy: "thompson", PolicyVersion: "v1", Reason: decision.ReasonPolicy, Candidates: cands,
			Probs: []float64{0.2, 0.3, 0.5}, Chosen: 1},
		Outcome: decision.Outcome{Arm: "mock-medium", Status: decision.StatusOK, Latency: time.Millisecond, TokensIn: 60, TokensOut: 20,
			Attempts: []decision.Attempt{{Arm: "mock-medium", Status: decision.StatusOK, Latency: time.Millisecond}}},
	}
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestPendingStoreMemory measures the heap a full pending store holds
// per decision (ids included), so that its bound in bytes is known:
// max_entries × this.
func TestPendingStoreMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100k records")
	}
	const n = 100_000
	recs := make([]*decision.Record, 1000)
	for i := range recs {
		recs[i] = pendingRecord(i)
	}
	before := heapInuse()
	p := newPendingStore(time.Hour, n, 0, nil, nil)
	p.catalogue = []decision.Arm{
		{ID: "mock-small", Provider: "mock", PriceIn: 0.00015, PriceOut: 0.0006},
		{ID: "mock-medium", Provider: "mock", PriceIn: 0.0005, PriceOut: 0.0015},
		{ID: "mock-large", Provider: "mock", PriceIn: 0.003, PriceOut: 0.015},
	}
	p.index = map[string]int{"mock-small": 0, "mock-medium": 1, "mock-large": 2}
	now := time.Unix(1700000000, 0)
	for i := range n {
		r := recs[i%len(recs)]
		r.Request.ID = fmt.Sprintf("rl-%048d", i)
		p.put(r, now, true)
	}
	after := heapInuse()
	st := p.stats()
	heap := float64(after-before) / n
	off := float64(st.Mapped) / n
	per := heap + off
	counted := float64(st.Bytes) / n
	t.Logf("pending store: %.0f bytes per decision held (%d held, %.1f MiB): %.0f on the Go heap, %.0f mapped outside it; feedback.max_bytes counts %.0f",
		per, st.Waiting, per*n/(1<<20), heap, off, counted)
	if counted < 0.8*per || counted > 1.25*per {
		t.Fatalf("the byte bound counts %.0f bytes per decision where the store holds %.0f: the bound would not be what it says", counted, per)
	}
	if mapBlockWorks() && heap > 80 {
		t.Fatalf("%.0f bytes per decision on the Go heap, %.0f outside it: only the map of ids should be on the heap (~40 B a decision)", heap, off)
	}
	runtime.KeepAlive(p)
	runtime.KeepAlive(recs)
}

// textRecord is pendingRecord with the vector a text-feature encoder
// (word 1–2-grams, character 3–4-grams, 2048 slots, markers) gives a
// prompt of about 2 KB.
func textRecord(t testing.TB, i int) *decision.Record {
	spec := policy.DefaultEncoderSpec([]string{"chat", "code"})
	spec.Version = 2
	spec.Text = &policy.TextSpec{Buckets: 2048, WordNgrams: 2, CharMin: 3, CharMax: 4, Markers: true}
	enc, err := policy.NewEncoder(spec)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	var b strings.Builder
	for b.Len() < 2048 { // varied English-like words, as benchmark prompts have
		for range 3 + rng.IntN(7) {
			b.WriteByte("etaoinshrdlucmfwypvbgkqjxz"[min(rng.IntN(26), rng.IntN(26))])
		}
		b.WriteString([]string{" ", " ", " ", ", ", ". ", "\n"}[rng.IntN(6)])
	}
	prompt := b.String()[:2048]
	r := pendingRecord(i)
	r.Request.Features.Prompt = prompt
	r.Request.Features.Vector = enc.Encode(&r.Request.Features, nil)
	return r
}

// TestPendingStoreByteBound: with text-feature vectors the count bound
// alone lets the store grow 10–20× past the task-only figure; MaxBytes
// holds it, evicting the oldest (counted) and keeping the newest.
func TestPendingStoreByteBound(t *testing.T) {
	p := newPendingStore(time.Hour, 10_000, 0, nil, nil)
	p.put(pendingRecord(0), time.Unix(1700000000, 0), true)
	taskOnly := p.stats().Bytes
	rec := textRecord(t, 1)
	p = newPendingStore(time.Hour, 10_000, 0, nil, nil)
	p.put(rec, time.Unix(1700000000, 0), true)
	per := p.stats().Bytes
	nz := 0
	for _, v := range rec.Request.Features.Vector {
		if v != 0 {
			nz++
		}
	}
	t.Logf("text-feature decision: %d non-zero slots of %d, %d bytes counted; a task-only one %d",
		nz, len(rec.Request.Features.Vector), per, taskOnly)
	if per < 5*taskOnly {
		t.Fatalf("a text-feature decision counts %d bytes: not the size the bound is for", per)
	}

	const limit = 1 << 20
	var evicted []int
	p = newPendingStore(time.Hour, 10_000, limit, func(h *held) { evicted = append(evicted, int(h.features.PromptTokens)) }, nil)
	now := time.Unix(1700000000, 0)
	for i := range 2000 {
		rec.Request.ID = fmt.Sprintf("rl-%048d", i)
		rec.Request.Features.PromptTokens = i
		p.put(rec, now, true)
		if b := p.stats().Bytes; b > limit {
			t.Fatalf("after %d puts the store holds %d bytes, over its bound %d", i+1, b, limit)
		}
	}
	st := p.stats()
	if st.Waiting == 0 || st.Waiting > int(limit/per) || st.Evicted != uint64(2000-st.Waiting) || len(evicted) != int(st.Evicted) {
		t.Fatalf("waiting %d, evicted %d (expired %d), %d bytes per decision", st.Waiting, st.Evicted, len(evicted), per)
	}
	for i, v := range evicted { // oldest first
		if v != i {
			t.Fatalf("eviction %d took decision %d, not the oldest", i, v)
		}
	}
	if p.take(fmt.Sprintf("rl-%048d", 1999), now) == nil {
		t.Fatal("the newest decision was evicted")
	}
	// A taken decision's bytes stay in its chunk's arena until its slot
	// is the oldest and is freed: they still count.
	if after := p.stats(); after.Bytes != st.Bytes || after.Waiting != st.Waiting-1 {
		t.Fatalf("after a take: %d bytes counted (was %d), %d waiting (was %d)", after.Bytes, st.Bytes, after.Waiting, st.Waiting)
	}
	p.flush()
	if b := p.stats().Bytes; b != 0 {
		t.Fatalf("an empty store counts %d bytes", b)
	}
}
