package offline_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/offline"
)

var testBase = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// logRecord is request i: a clean single-attempt success (so the
// recomputed reward is the plain reward), its quality unknown.
func logRecord(rng *rand.Rand, i int) decision.Record {
	cands := arms("gpt-small", "gpt-large", "claude")
	chosen := rng.IntN(len(cands))
	ts := testBase.Add(time.Duration(i) * time.Minute)
	return decision.Record{
		Time:    ts,
		Request: decision.Request{ID: fmt.Sprintf("req-%d", i), Features: decision.Features{Task: "chat", PromptTokens: 100 + i}},
		Decision: decision.Decision{Policy: "thompson", PolicyVersion: "1", Reason: decision.ReasonPolicy,
			Candidates: cands, Probs: []float64{0.2, 0.3, 0.5}, Chosen: chosen},
		Outcome: decision.Outcome{
			Arm: cands[chosen].ID, Status: decision.StatusOK,
			Latency:  time.Duration(rng.Int64N(int64(3 * time.Second))).Truncate(time.Microsecond),
			TokensIn: 100 + i, TokensOut: rng.IntN(500), Cost: rng.Float64() / 100,
			Attempts: []decision.Attempt{{Arm: cands[chosen].ID, Status: decision.StatusOK, Latency: time.Second}},
		},
		Reward:       rng.Float64(),
		RewardSource: decision.RewardImmediate,
	}
}

func writeLogs(t *testing.T, root string, recs []decision.Record, fbs []decisionlog.Feedback) {
	t.Helper()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	for i := range recs {
		w.Log(&recs[i])
	}
	require.NoError(t, w.Close())
	fw, err := decisionlog.NewFeedbackWriter(decisionlog.WriterOpts{Root: root, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	for i := range fbs {
		require.NoError(t, fw.Log(&fbs[i]))
	}
	require.NoError(t, fw.Close())
}

func readAll(t *testing.T, o offline.ReaderOpts) ([]decision.Record, offline.JoinStats) {
	t.Helper()
	r := offline.NewReader(o)
	var got []decision.Record
	for rec, err := range r.Records(context.Background()) {
		require.NoError(t, err)
		got = append(got, rec)
	}
	return got, r.JoinStats()
}

// TestFeedbackJoin covers the join rule: quality recomputes the reward,
// an explicit reward wins, late feedback is ignored, duplicates resolve to
// the latest, unknown ids are counted, missing feedback keeps the logged
// reward or gets the default.
func TestFeedbackJoin(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	const n = 8
	recs := make([]decision.Record, n)
	for i := range n {
		recs[i] = logRecord(rng, i)
	}
	at := func(i int, d time.Duration) time.Time { return recs[i].Time.Add(d) }
	fbs := []decisionlog.Feedback{
		// req-0: quality only → reward recomputed.
		{RequestID: "req-0", Time: at(0, time.Minute), Quality: 0.9, HasQuality: true, Source: "judge"},
		// req-1: explicit reward.
		{RequestID: "req-1", Time: at(1, time.Minute), Reward: 0.123, HasReward: true, Source: "user"},
		// req-2: late only (window 1h).
		{RequestID: "req-2", Time: at(2, 2*time.Hour), Reward: 0.99, HasReward: true},
		// req-3: duplicates; the latest in the window wins, a later late one is ignored.
		{RequestID: "req-3", Time: at(3, 10*time.Minute), Reward: 0.7, HasReward: true},
		{RequestID: "req-3", Time: at(3, 30*time.Minute), Reward: 0.4, HasReward: true},
		{RequestID: "req-3", Time: at(3, 5*time.Minute), Reward: 0.1, HasReward: true},
		{RequestID: "req-3", Time: at(3, 3*time.Hour), Reward: 0.0, HasReward: true},
		// req-4: equal timestamps: the last written wins.
		{RequestID: "req-4", Time: at(4, time.Minute), Reward: 0.2, HasReward: true},
		{RequestID: "req-4", Time: at(4, time.Minute), Reward: 0.8, HasReward: true},
		// unknown ids.
		{RequestID: "nope-1", Time: at(0, 0), Reward: 1, HasReward: true},
		{RequestID: "nope-2", Time: at(0, 0), Quality: 1, HasQuality: true},
	}
	writeLogs(t, root, recs, fbs)
	log := decisionlog.ReaderOpts{Paths: []string{root}}

	def := 0.25
	got, stats := readAll(t, offline.ReaderOpts{Log: log, Feedback: true, JoinWindow: time.Hour, DefaultReward: &def})
	require.Len(t, got, n)

	o0 := recs[0].Outcome
	o0.Quality, o0.QualityKnown = 0.9, true
	want0 := decision.DefaultReward().Of(&o0) // a clean success: ForDecision is Of
	assert.InDelta(t, want0, got[0].Reward, 1e-12, "req-0 recomputed from quality")
	assert.NotEqual(t, recs[0].Reward, got[0].Reward)
	assert.True(t, got[0].Outcome.QualityKnown)
	assert.Equal(t, 0.9, got[0].Outcome.Quality)
	assert.Equal(t, decision.RewardDelayed, got[0].RewardSource)

	assert.Equal(t, 0.123, got[1].Reward)
	assert.Equal(t, decision.RewardDelayed, got[1].RewardSource)

	assert.Equal(t, def, got[2].Reward, "req-2: late feedback ignored, default applies")
	assert.Equal(t, decision.RewardDefault, got[2].RewardSource)

	assert.Equal(t, 0.4, got[3].Reward, "req-3: latest within window")
	assert.Equal(t, 0.8, got[4].Reward, "req-4: tie goes to the last written")

	for i := 5; i < n; i++ {
		assert.Equal(t, def, got[i].Reward, "req-%d: no feedback, default", i)
		assert.Equal(t, decision.RewardDefault, got[i].RewardSource)
	}

	assert.Equal(t, offline.JoinStats{
		FeedbackRows: int64(len(fbs)), FeedbackIDs: 7, Duplicates: 4,
		Applied: 4, Late: 1, Defaulted: 4, Unknown: 2,
	}, stats)

	t.Run("custom reward recomputes with it", func(t *testing.T) {
		rw := decision.DefaultReward()
		rw.Quality, rw.Cost = 1, 0.5
		got, _ := readAll(t, offline.ReaderOpts{Log: log, Feedback: true, Reward: rw})
		assert.InDelta(t, rw.ForDecision(&recs[0].Decision, &o0), got[0].Reward, 1e-12)
		assert.NotEqual(t, want0, got[0].Reward)
	})
	t.Run("no default keeps the logged reward", func(t *testing.T) {
		got, _ := readAll(t, offline.ReaderOpts{Log: log, Feedback: true, JoinWindow: time.Hour})
		require.Len(t, got, n)
		assert.Equal(t, recs[2].Reward, got[2].Reward)
		assert.Equal(t, decision.RewardImmediate, got[2].RewardSource)
	})
	t.Run("no window accepts late feedback", func(t *testing.T) {
		got, _ := readAll(t, offline.ReaderOpts{Log: log, Feedback: true})
		assert.Equal(t, 0.99, got[2].Reward)
		assert.Equal(t, 0.0, got[3].Reward, "req-3: the 3h-late event is now the latest")
	})
	t.Run("feedback off reads decisions as stored", func(t *testing.T) {
		got, stats := readAll(t, offline.ReaderOpts{Log: log})
		var want []decision.Record
		for rec, err := range decisionlog.NewReader(log).Records(context.Background()) {
			require.NoError(t, err)
			want = append(want, rec)
		}
		assert.Equal(t, want, got)
		assert.Equal(t, offline.JoinStats{}, stats)
	})
}

// TestJoinRecomputesChosenArmReward: feedback with a quality on a decision
// whose chosen arm timed out and a fallback answered credits the chosen
// arm the failure reward (decision.Reward.ForDecision), not the fallback's
// outcome.
func TestJoinRecomputesChosenArmReward(t *testing.T) {
	root := t.TempDir()
	rec := logRecord(rand.New(rand.NewPCG(6, 6)), 0)
	rec.Outcome.Arm = "other"
	rec.Outcome.Attempts = []decision.Attempt{
		{Arm: rec.Decision.Arm().ID, Status: decision.StatusTimeout, Latency: time.Second},
		{Arm: "other", Status: decision.StatusOK, Latency: 500 * time.Millisecond, Fallback: 1},
	}
	writeLogs(t, root, []decision.Record{rec}, []decisionlog.Feedback{{RequestID: rec.Request.ID, Time: rec.Time, Quality: 1, HasQuality: true}})
	got, _ := readAll(t, offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: []string{root}}, Feedback: true})
	require.Len(t, got, 1)
	rw := decision.DefaultReward()
	assert.Equal(t, rw.Terms(0, 0, time.Second, 1), got[0].Reward, "chosen arm failed: failure reward")
	assert.NotEqual(t, rw.Of(&got[0].Outcome), got[0].Reward, "not the fallback's reward")
}

func TestReaderOptsErrors(t *testing.T) {
	inf := math.Inf(1)
	x := decisionlog.ReaderOpts{Paths: []string{"x"}}
	tests := []struct {
		name string
		o    offline.ReaderOpts
		want string
	}{
		{"no paths", offline.ReaderOpts{Feedback: true}, "paths"},
		{"negative window", offline.ReaderOpts{Log: x, JoinWindow: -time.Second}, "join_window"},
		{"infinite default", offline.ReaderOpts{Log: x, DefaultReward: &inf}, "default_reward"},
		{"bad reward", offline.ReaderOpts{Log: x, Reward: decision.Reward{Quality: -1}}, "quality"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []error
			n := 0
			for _, err := range offline.NewReader(tt.o).Records(context.Background()) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				n++
			}
			assert.Zero(t, n)
			require.Len(t, errs, 1)
			assert.ErrorContains(t, errs[0], tt.want)
		})
	}
}
