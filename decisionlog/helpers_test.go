package decisionlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/require"
)

var testBase = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// genRecord builds a varied record i; times advance by step from testBase,
// at microsecond precision (the stored precision).
func genRecord(rng *rand.Rand, i int, step time.Duration) decision.Record {
	arms := []string{"gpt-small", "gpt-large", "claude", "llama"}
	k := 1 + rng.IntN(len(arms))
	cands := make([]decision.Arm, k)
	probs := make([]float64, k)
	sum := 0.0
	for j := range k {
		cands[j] = decision.Arm{ID: arms[j]}
		probs[j] = rng.Float64() + 0.01
		sum += probs[j]
	}
	for j := range probs {
		probs[j] /= sum
	}
	chosen := rng.IntN(k)
	ts := testBase.Add(time.Duration(i) * step).Truncate(time.Microsecond)
	rec := decision.Record{
		Time: ts,
		Request: decision.Request{
			ID: fmt.Sprintf("req-%d", i),
			Features: decision.Features{
				Tenant:       []string{"", "acme", "globex"}[i%3],
				Task:         []string{"chat", "code", "math", ""}[i%4],
				PromptTokens: rng.IntN(5000),
			},
		},
		Decision: decision.Decision{
			Policy: "thompson", PolicyVersion: "v3", Reason: decision.ReasonPolicy,
			Candidates: cands, Probs: probs, Chosen: chosen,
		},
		Outcome: decision.Outcome{
			Arm:       arms[chosen],
			Status:    decision.Status(rng.IntN(4)),
			Latency:   time.Duration(rng.Int64N(int64(5 * time.Second))),
			TTFT:      time.Duration(rng.Int64N(int64(time.Second))),
			TokensIn:  rng.IntN(4000),
			TokensOut: rng.IntN(2000),
			Cost:      rng.Float64() / 100,
		},
		Reward:       rng.Float64(),
		RewardSource: decision.RewardImmediate,
	}
	if i%5 != 0 {
		rec.Request.Features.Time = ts.Add(-rec.Outcome.Latency).Truncate(time.Microsecond)
	}
	if i%2 == 0 {
		rec.Request.Features.Tags = []string{"env=prod", fmt.Sprintf("n=%d", i%7)}
	}
	if i%3 == 0 {
		rec.Request.Features.Vector = []float64{1, rng.Float64(), -rng.Float64()}
	}
	if i%4 == 0 {
		rec.Decision.Shadow = decision.Shadow{Policy: "ucb1", Arm: arms[rng.IntN(k)], Prob: rng.Float64()}
		if i%3 != 0 { // some rows from before the column existed: unknown
			rec.Decision.Shadow.LoggedProb, rec.Decision.Shadow.LoggedProbKnown = rng.Float64(), true
		}
	}
	if i%3 == 1 {
		rec.Outcome.Quality, rec.Outcome.QualityKnown = rng.Float64(), true
	}
	if i%7 == 0 {
		rec.Decision.Reason = decision.ReasonForced
		rec.Request.Forced = arms[chosen]
	}
	n := 1 + rng.IntN(3)
	for j := range n {
		rec.Outcome.Attempts = append(rec.Outcome.Attempts, decision.Attempt{
			Arm: arms[(chosen+j)%len(arms)], Status: decision.Status(rng.IntN(4)),
			Latency: time.Duration(rng.Int64N(int64(3 * time.Second))), Fallback: j,
		})
	}
	return rec
}

// expectRead is what a record looks like after a round trip: the tenant is
// hashed and candidates keep only their ID.
func expectRead(rec decision.Record, salt string) decision.Record {
	rec.Request.Features.Tenant = HashTenant(salt, rec.Request.Features.Tenant)
	return rec
}

func readAll(t testing.TB, o ReaderOpts) ([]decision.Record, []error) {
	t.Helper()
	var recs []decision.Record
	var errs []error
	for rec, err := range NewReader(o).Records(context.Background()) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs, errs
}

func mustWriter(t testing.TB, o WriterOpts) *Writer {
	t.Helper()
	w, err := NewWriter(o)
	require.NoError(t, err)
	return w
}
