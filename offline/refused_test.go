package offline_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/offline"
)

// TestRefusedRowsRoundTripAndAreSkipped: a refused request (status
// refused, no candidates, chosen -1, the code as reason) round-trips
// through the decision log, is counted by Inspect, and is skipped by the
// learning reader (counted in JoinStats.Refused) — it holds no decision.
func TestRefusedRowsRoundTripAndAreSkipped(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 3))
	refused := decision.Record{
		Time:     testBase.Add(30 * time.Second),
		Request:  decision.Request{ID: "req-refused", Features: decision.Features{Tenant: "t", Task: "chat"}},
		Decision: decision.Decision{Policy: "thompson", PolicyVersion: "1", Reason: "no_model_available", Chosen: -1},
		Outcome:  decision.Outcome{Status: decision.StatusRefused},
	}
	recs := []decision.Record{logRecord(rng, 0), refused, logRecord(rng, 1)}
	writeLogs(t, root, recs, nil)

	var raw []decision.Record
	for rec, err := range decisionlog.NewReader(decisionlog.ReaderOpts{Paths: []string{root}}).Records(context.Background()) {
		require.NoError(t, err)
		raw = append(raw, rec)
	}
	require.Len(t, raw, 3, "storage keeps every row")
	var got *decision.Record
	for i := range raw {
		if raw[i].Request.ID == "req-refused" {
			got = &raw[i]
		}
	}
	require.NotNil(t, got)
	assert.Equal(t, decision.StatusRefused, got.Outcome.Status)
	assert.Equal(t, "no_model_available", got.Decision.Reason)
	assert.Empty(t, got.Decision.Candidates)
	assert.Equal(t, -1, got.Decision.Chosen)

	s, err := decisionlog.Inspect(context.Background(), root)
	require.NoError(t, err)
	assert.Equal(t, int64(3), s.Rows)
	assert.Equal(t, map[string]int64{"no_model_available": 1}, s.Refused)
	var armRows int64
	for _, n := range s.Arms {
		armRows += n
	}
	assert.Equal(t, int64(2), armRows, "refused rows choose no arm")

	learn, st := readAll(t, offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: []string{root}}, Feedback: true})
	assert.Len(t, learn, 2)
	assert.Equal(t, int64(1), st.Refused)
	for _, r := range learn {
		assert.NotEqual(t, "req-refused", r.Request.ID)
	}
}
