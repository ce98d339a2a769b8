package route

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
)

// copyHeld is what the pending store kept of a record before entries
// were stored compactly: decoding an entry must give exactly this.
func copyHeld(rec *decision.Record, now time.Time, deferred bool) held {
	d := held{id: rec.Request.ID, at: now, features: rec.Request.Features, decision: rec.Decision, outcome: rec.Outcome, reward: rec.Reward, deferred: deferred}
	d.features.Vector = append([]float64(nil), rec.Request.Features.Vector...)
	d.features.Tags = append([]string(nil), rec.Request.Features.Tags...)
	d.decision.Candidates = append([]decision.Arm(nil), rec.Decision.Candidates...)
	d.decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	d.outcome.Attempts = nil
	if len(rec.Outcome.Attempts) > 1 {
		d.outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
	}
	return d
}

func TestPendingEntryRoundTrip(t *testing.T) {
	cat := []decision.Arm{
		{ID: "a", Provider: "p", PriceIn: 0.001, PriceOut: 0.002, ContextWindow: 1000, Quality: 0.5},
		{ID: "b", Provider: "q", PriceIn: 0.002, PriceOut: 0.004},
	}
	full := func() *decision.Record {
		r := pendingRecord(7)
		r.Request.Features.Tenant = "acme"
		r.Request.Features.Tags = []string{"env=prod", "tier=gold"}
		r.Request.Features.Vector = []float64{1, -0.5, 0, 3e300, 0, 0, 0, 0, math.Copysign(0, -1), 0, 1, 0}
		r.Request.Features.Time = time.Date(2026, 12, 4, 10, 0, 0, 123, time.FixedZone("x", 3600))
		r.Decision.Candidates = []decision.Arm{cat[1], cat[0]}
		r.Decision.Candidates[0].LatencyMS, r.Decision.Candidates[1].ErrorRate = 12.5, 0.25
		r.Decision.Probs, r.Decision.Chosen = []float64{0.25, 0.75}, 1
		r.Decision.Shadow = decision.Shadow{Policy: "ucb1", Arm: "b", Prob: 0.9, LoggedProb: 0.1, LoggedProbKnown: true}
		r.Outcome = decision.Outcome{Arm: "b", Status: decision.StatusTimeout, Latency: -time.Millisecond, TTFT: 3 * time.Second, TokensIn: 1 << 40,
			TokensOut: -1, Cost: 0.125, Quality: 0.875, QualityKnown: true,
			Attempts: []decision.Attempt{{Arm: "a", Status: decision.StatusError, Latency: time.Second}, {Arm: "b", Status: decision.StatusTimeout, Fallback: 1}}}
		r.Reward = 0.375
		return r
	}
	tests := []struct {
		name string
		edit func(r *decision.Record)
	}{
		{"every field", func(*decision.Record) {}},
		{"one attempt, no shadow, no tags", func(r *decision.Record) {
			r.Outcome.Attempts = r.Outcome.Attempts[:1]
			r.Decision.Shadow = decision.Shadow{}
			r.Request.Features.Tags = nil
		}},
		{"empty record", func(r *decision.Record) { *r = decision.Record{Request: decision.Request{ID: "x"}} }},
		{"empty slices", func(r *decision.Record) {
			r.Request.Features.Tags, r.Request.Features.Vector = []string{}, []float64{}
			r.Decision.Candidates, r.Decision.Probs = []decision.Arm{}, []float64{}
		}},
		{"candidate not in the catalogue", func(r *decision.Record) { r.Decision.Candidates[0].ID = "z" }},
		{"catalogue id, other price", func(r *decision.Record) { r.Decision.Candidates[1].PriceIn = 9 }},
		{"catalogue id, other provider", func(r *decision.Record) { r.Decision.Candidates[1].Provider = "other" }},
	}
	for _, withCat := range []bool{true, false} {
		p := newPendingStore(time.Hour, 4, 0, nil, nil)
		if withCat {
			p.catalogue, p.index = cat, map[string]int{"a": 0, "b": 1}
		}
		scratch := new(held) // reused, as expiry does
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := full()
				tt.edit(rec)
				now := time.Unix(1700000000, 5)
				var e entry
				nums := p.encode(&e, rec, now, true, nil)
				want := copyHeld(rec, now, true)
				got := new(held)
				p.decode(got, &e, nums)
				assert.Equal(t, want, *got, "catalogue %v", withCat)
				p.decode(scratch, &e, nums)
				assert.Equal(t, want, *scratch, "catalogue %v, reused held", withCat)
			})
		}
	}
}

// TestPendingEntryInternFull fills the intern table: strings past its
// bound are kept in the entry's extra and still decode exactly.
func TestPendingEntryInternFull(t *testing.T) {
	p := newPendingStore(time.Hour, 4, 0, nil, nil)
	for i := range maxInterned {
		assert.NotEqual(t, uint16(noString), p.strings.index(fmt.Sprint("task-", i)))
	}
	assert.Equal(t, uint16(noString), p.strings.index("one more"), "the table is full")
	rec := pendingRecord(1)
	rec.Request.Features.Task = "a task never seen"
	now := time.Unix(1700000000, 0)
	var e entry
	nums := p.encode(&e, rec, now, false, nil)
	assert.NotNil(t, e.extra, "the overflowing string goes to extra")
	var got held
	p.decode(&got, &e, nums)
	assert.Equal(t, copyHeld(rec, now, false), got)
}

// TestPendingEntryTenantFlood: tenants have an intern table of their own;
// past its bound a tenant is kept in the entry's bytes, and the other
// strings are still interned.
func TestPendingEntryTenantFlood(t *testing.T) {
	p := newPendingStore(time.Hour, 10, 0, nil, nil)
	now := time.Unix(1700000000, 0)
	for i := range maxInterned {
		rec := pendingRecord(i)
		rec.Request.Features.Tenant = fmt.Sprint("tenant-", i)
		p.put(rec, now, false)
	}
	rec := pendingRecord(1)
	rec.Request.Features.Tenant = "one tenant too many"
	rec.Request.Features.Task = "a new task"
	var e entry
	nums := p.encode(&e, rec, now, true, nil)
	assert.Equal(t, uint16(noString), e.tenant, "the tenant table is full")
	assert.NotEqual(t, uint16(noString), e.strs[sTask], "tenants do not fill the other table")
	assert.True(t, e.extra == nil || e.extra.strs == nil, "no string overflowed")
	var got held
	p.decode(&got, &e, nums)
	assert.Equal(t, copyHeld(rec, now, true), got)

	rec.Request.ID = "flooded"
	p.put(rec, now, true)
	for i := range 3 * pendingChunk { // its chunk's blocks given back and reused
		r := pendingRecord(i)
		r.Request.Features.Tenant = fmt.Sprint("later-", i)
		p.put(r, now, false)
		if i == 5 {
			h := p.take("flooded", now)
			if assert.NotNil(t, h) {
				assert.Equal(t, "one tenant too many", h.features.Tenant)
			}
		}
	}
}
