package replay_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
)

func taskRec(task string, cands []decision.Arm, chosen int, reward float64) *decision.Record {
	return &decision.Record{
		Request:  decision.Request{Features: decision.Features{Task: task}},
		Decision: decision.Decision{Candidates: cands, Probs: make([]float64, len(cands)), Chosen: chosen},
		Reward:   reward,
	}
}

// TestRidgeTaskMode, by hand with λ = 1. Arm a: task x rewards 1 and 0,
// task y reward 1 (mean 2/3). Arm b: task x reward 0 (mean 0). All rows:
// mean 2/4.
//
//	q̂(a, x) = (1 + 1·2/3)/(2 + 1) = 5/9
//	q̂(a, y) = (1 + 2/3)/(1 + 1)   = 5/6
//	q̂(a, z) = 2/3                  (task unseen: the arm's mean)
//	q̂(b, x) = (0 + 0)/(1 + 1)      = 0
//	q̂(c, ·) = 1/2                  (arm unseen: the mean of all rows)
func TestRidgeTaskMode(t *testing.T) {
	ab := arms("a", "b")
	m := &replay.Ridge{}
	for _, r := range []*decision.Record{
		taskRec("x", ab, 0, 1), taskRec("x", ab, 0, 0), taskRec("y", ab, 0, 1), taskRec("x", ab, 1, 0),
	} {
		require.NoError(t, m.Observe(r))
	}
	require.NoError(t, m.Fit())
	abc := arms("a", "b", "c")
	q := make([]float64, 3)
	require.NoError(t, m.Predict(taskRec("x", abc, 0, 0), q))
	assert.InDeltaSlice(t, []float64{5.0 / 9, 0, 0.5}, q, 1e-12)
	require.NoError(t, m.Predict(taskRec("y", abc, 0, 0), q))
	assert.InDelta(t, 5.0/6, q[0], 1e-12)
	require.NoError(t, m.Predict(taskRec("z", abc, 0, 0), q))
	assert.InDelta(t, 2.0/3, q[0], 1e-12)
}

// TestRidgeVectorMode: noiseless rewards r = 0.2 + 0.5·x₁ − 0.3·x₂ on arm
// a; with a negligible penalty the fit recovers the plane exactly, and the
// intercept is not shrunk.
func TestRidgeVectorMode(t *testing.T) {
	a := arms("a")
	m := &replay.Ridge{Lambda: 1e-9}
	pts := [][]float64{{0, 0}, {1, 0}, {0, 1}, {2, 3}, {-1, 4}}
	for _, x := range pts {
		r := taskRec("", a, 0, 0.2+0.5*x[0]-0.3*x[1])
		r.Request.Features.Vector = x
		require.NoError(t, m.Observe(r))
	}
	require.NoError(t, m.Fit())
	r := taskRec("", a, 0, 0)
	r.Request.Features.Vector = []float64{10, -2}
	q := make([]float64, 1)
	require.NoError(t, m.Predict(r, q))
	assert.InDelta(t, 0.2+5+0.6, q[0], 1e-6)

	// A large penalty shrinks the slopes towards 0 but keeps the intercept
	// fitting the mean: prediction at the mean point is the mean reward.
	big := &replay.Ridge{Lambda: 1e9}
	var mean [2]float64
	var meanR float64
	for _, x := range pts {
		r := taskRec("", a, 0, 0.2+0.5*x[0]-0.3*x[1])
		r.Request.Features.Vector = x
		require.NoError(t, big.Observe(r))
		mean[0] += x[0] / 5
		mean[1] += x[1] / 5
		meanR += r.Reward / 5
	}
	require.NoError(t, big.Fit())
	r.Request.Features.Vector = []float64{100, 100}
	require.NoError(t, big.Predict(r, q))
	assert.InDelta(t, meanR, q[0], 1e-3, "slopes shrunk to ~0")
}

func TestRidgeErrors(t *testing.T) {
	a := arms("a")
	m := &replay.Ridge{}
	r := taskRec("", a, 0, 1)
	r.Request.Features.Vector = []float64{1, 2}
	require.NoError(t, m.Observe(r))
	r2 := taskRec("", a, 0, 1)
	r2.Request.Features.Vector = []float64{1}
	assert.ErrorContains(t, m.Observe(r2), "feature vector of length 1")
	assert.ErrorContains(t, m.Observe(taskRec("x", a, 0, 1)), "mixed logs")
	r3 := taskRec("", a, 0, 1)
	r3.Request.Features.Vector = []float64{math.Inf(1), 0}
	assert.ErrorContains(t, m.Observe(r3), "feature 0 is +Inf")
	assert.ErrorContains(t, m.Predict(r, make([]float64, 1)), "before Fit")
	require.NoError(t, m.Fit())
	assert.ErrorContains(t, m.Observe(r), "after Fit")
	assert.ErrorContains(t, m.Predict(r2, make([]float64, 1)), "trained on 2")
}

func TestOBPWriter(t *testing.T) {
	var buf bytes.Buffer
	w := replay.NewOBPWriter(&buf, 0)
	target := &fixed{probs: map[string]float64{"a": 0.8, "b": 0.2}}
	// Row 1 offers only b: action 1 with pi (0, 1) and q (0, 0.2).
	log := append(tinyLog()[:2], decision.Record{
		Request:  decision.Request{ID: "only-b"},
		Decision: decision.Decision{Candidates: arms("b"), Probs: []float64{1}},
		Reward:   0.25,
	})
	_, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: target}, {Policy: target}}, replay.Opts{
		Estimators: []replay.Estimator{replay.DR}, Folds: 1, Bootstrap: -1, Observer: w,
		Model: func() replay.RewardModel { return constModel },
	})
	require.NoError(t, err)
	require.NoError(t, w.Flush())
	want := `# routelab replay rows (Open Bandit Pipeline inputs); actions:
# action 0 = "a"
# action 1 = "b"
action,reward,pscore,pi_0,pi_1,q_0,q_1
0,1,0.5,0.8,0.2,0.4,0.2
1,0,0.5,0.8,0.2,0.4,0.2
1,0.25,1,0,1,0,0.2
`
	assert.Equal(t, want, buf.String(), "only target 0's rows, one per logged row")
	assert.Equal(t, 4, strings.Count(buf.String(), "\n")-3)
}
