package decisionlog

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFeedbackValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Feedback
		want string
	}{
		{"no id", Feedback{HasReward: true}, "empty request id"},
		{"no value", Feedback{RequestID: "a"}, "neither reward nor quality"},
		{"nan reward", Feedback{RequestID: "a", HasReward: true, Reward: nan()}, "not finite"},
		{"quality above 1", Feedback{RequestID: "a", HasQuality: true, Quality: 1.5}, "outside [0,1]"},
		{"ok", Feedback{RequestID: "a", HasQuality: true, Quality: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

// TestFeedbackJoin covers the join rule: quality recomputes the reward,
// an explicit reward wins, late feedback is ignored, duplicates resolve to
// the latest, unknown ids are counted, missing feedback keeps the logged
// reward or gets the default.
func TestFeedbackJoin(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock})
	const n = 8
	recs := make([]decision.Record, n)
	for i := range n {
		recs[i] = genRecord(rng, i, time.Minute)
		// Clean single-attempt successes so RewardFor is the plain reward.
		recs[i].Outcome.Status = decision.StatusOK
		recs[i].Outcome.Attempts = recs[i].Outcome.Attempts[:1]
		recs[i].Outcome.Attempts[0].Status = decision.StatusOK
		recs[i].Outcome.QualityKnown, recs[i].Outcome.Quality = false, 0
		w.Log(&recs[i])
	}
	require.NoError(t, w.Close())

	fw, err := NewFeedbackWriter(WriterOpts{Root: root, Full: FullBlock})
	require.NoError(t, err)
	at := func(i int, d time.Duration) time.Time { return recs[i].Time.Add(d) }
	fbs := []Feedback{
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
	for i := range fbs {
		require.NoError(t, fw.Log(&fbs[i]))
	}
	require.NoError(t, fw.Close())

	def := 0.25
	r := NewReader(ReaderOpts{Paths: []string{root}, Feedback: true, JoinWindow: time.Hour, DefaultReward: &def})
	var got []decision.Record
	for rec, err := range r.Records(t.Context()) {
		require.NoError(t, err)
		got = append(got, rec)
	}
	require.Len(t, got, n)

	o0 := recs[0].Outcome
	o0.Quality, o0.QualityKnown = 0.9, true
	want0 := RewardFor(decision.Reward{}, &recs[0].Decision, &o0)
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

	assert.Equal(t, JoinStats{
		FeedbackRows: int64(len(fbs)), FeedbackIDs: 7, Duplicates: 4,
		Applied: 4, Late: 1, Defaulted: 4, Unknown: 2,
	}, r.JoinStats())

	t.Run("no default keeps the logged reward", func(t *testing.T) {
		got, errs := readAll(t, ReaderOpts{Paths: []string{root}, Feedback: true, JoinWindow: time.Hour})
		require.Empty(t, errs)
		require.Len(t, got, n)
		assert.Equal(t, recs[2].Reward, got[2].Reward)
		assert.Equal(t, decision.RewardImmediate, got[2].RewardSource)
	})
	t.Run("no window accepts late feedback", func(t *testing.T) {
		got, errs := readAll(t, ReaderOpts{Paths: []string{root}, Feedback: true})
		require.Empty(t, errs)
		assert.Equal(t, 0.99, got[2].Reward)
		assert.Equal(t, 0.0, got[3].Reward, "req-3: the 3h-late event is now the latest")
	})
	t.Run("feedback off reads decisions as logged", func(t *testing.T) {
		got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
		require.Empty(t, errs)
		for i := range got {
			assert.Equal(t, expectRead(recs[i], ""), got[i])
		}
	})
}

func TestRewardForFallback(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	rec := genRecord(rng, 1, 0)
	d := &rec.Decision
	rec.Outcome.Attempts = []decision.Attempt{
		{Arm: d.Arm().ID, Status: decision.StatusTimeout, Latency: time.Second},
		{Arm: "other", Status: decision.StatusOK, Latency: 500 * time.Millisecond, Fallback: 1},
	}
	rec.Outcome.Status = decision.StatusOK
	rec.Outcome.Quality, rec.Outcome.QualityKnown = 1, true
	rw := decision.DefaultReward()
	assert.Equal(t, rw.Terms(0, 0, time.Second, 1), RewardFor(decision.Reward{}, d, &rec.Outcome), "chosen arm failed: failure reward")
	rec.Outcome.Attempts = rec.Outcome.Attempts[1:]
	assert.Equal(t, rw.Of(&rec.Outcome), RewardFor(decision.Reward{}, d, &rec.Outcome))
}
