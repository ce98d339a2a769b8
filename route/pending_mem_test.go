package route

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
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
	p := newPendingStore(time.Hour, n, nil, nil)
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
	per := float64(after-before) / n
	t.Logf("pending store: %.0f bytes per decision held (%d held, %.1f MiB)", per, p.stats().Waiting, float64(after-before)/(1<<20))
	runtime.KeepAlive(p)
	runtime.KeepAlive(recs)
}
