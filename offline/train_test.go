package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
)

// armMeans reads the per-arm statistics out of a policy snapshot (the
// documented format: state.arms[] with id, n, sum).
func armMeans(t *testing.T, p policy.Policy) (map[string]float64, float64) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, p.(policy.Snapshotter).Snapshot(&buf))
	var snap struct {
		State struct {
			Arms []struct {
				ID  string  `json:"id"`
				N   float64 `json:"n"`
				Sum float64 `json:"sum"`
			} `json:"arms"`
		} `json:"state"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &snap))
	means := map[string]float64{}
	total := 0.0
	for _, a := range snap.State.Arms {
		means[a.ID] = a.Sum / a.N
		total += a.N
	}
	return means, total
}

// TestTrainIPSWeighting: the synthetic logger plays each arm mostly on one
// task, so unweighted arm means are biased towards that task; the
// IPS-weighted warm start recovers the population means (the average over
// the three equally likely tasks) and keeps the counts at the row count.
func TestTrainIPSWeighting(t *testing.T) {
	const n = 60_000
	src := synthSource{N: n, Seed: 5}
	reg := policy.NewBuiltinRegistry()
	weighted, err := reg.NewFromString("epsilon-greedy=epsilon:0.1;seed:1")
	require.NoError(t, err)
	st, err := offline.Train(context.Background(), src, weighted, offline.TrainOpts{Seed: 1})
	require.NoError(t, err)
	assert.EqualValues(t, n, st.Rows)
	assert.Equal(t, 4, st.Arms)
	assert.InDelta(t, n, float64(st.Updates), 0.01*n, "normalised weights keep the update count near the row count")

	plain, err := reg.NewFromString("epsilon-greedy=epsilon:0.1;seed:1")
	require.NoError(t, err)
	_, err = offline.Train(context.Background(), src, plain, offline.TrainOpts{Unweighted: true})
	require.NoError(t, err)

	wMeans, wTotal := armMeans(t, weighted)
	pMeans, pTotal := armMeans(t, plain)
	assert.InDelta(t, float64(st.Updates), wTotal, 0)
	assert.InDelta(t, n, pTotal, 0)
	for a := range synthArms {
		id := synthArms[a].ID
		pop := (synthMean[0][a] + synthMean[1][a] + synthMean[2][a]) / 3
		t.Logf("%s population mean %.3f  ips-weighted %.3f  unweighted %.3f", id, pop, wMeans[id], pMeans[id])
		assert.InDelta(t, pop, wMeans[id], 0.02, "%s: weighted mean", id)
	}
	// m0 is logged mostly on chat (0.6), where it is at its best: the
	// unweighted mean is far above the population mean 0.367.
	assert.Greater(t, pMeans["m0"]-0.367, 0.1, "unweighted m0 mean %.3f should be biased", pMeans["m0"])
}

// TestTrainContextual: a greedy ridge policy warm-started from the
// ε-greedy log learns the best arm of every task; evaluated frozen with DR
// on a fresh log it is worth the oracle's value.
func TestTrainContextual(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	p, err := reg.NewFromString("egreedy-ridge=epsilon:0;seed:1")
	require.NoError(t, err)
	_, err = offline.Train(context.Background(), synthSource{N: 30_000, Seed: 8, Vector: true}, p, offline.TrainOpts{Seed: 2})
	require.NoError(t, err)
	probs := make([]float64, 4)
	for ti, task := range synthTasks {
		vec := make([]float64, 3)
		vec[ti] = 1
		c, err := p.Select(context.Background(), &decision.Features{Task: task, Vector: vec}, synthArms, probs)
		require.NoError(t, err)
		best := oracleTable()[ti]
		assert.Equal(t, 1.0, best[c], "task %s: trained policy chose %s", task, synthArms[c].ID)
	}
	res, err := replay.Evaluate(context.Background(), synthSource{N: 30_000, Seed: 9, Vector: true}, []replay.Target{{Policy: p}},
		replay.Opts{Estimators: []replay.Estimator{replay.DR}, Bootstrap: -1})
	require.NoError(t, err)
	assert.InDelta(t, synthTruth["oracle"], res[len(res)-1].Value, 0.02*synthTruth["oracle"])
}

func TestTrainErrors(t *testing.T) {
	p := policy.NewRandom(policy.RandomOpts{Seed: 1})
	_, err := offline.Train(context.Background(), replay.Records{}, p, offline.TrainOpts{})
	assert.ErrorContains(t, err, "no rows")
	_, err = offline.Train(context.Background(), tinyLog(), nil, offline.TrainOpts{})
	assert.ErrorContains(t, err, "nil policy")
	_, err = offline.Train(context.Background(), tinyLog(), p, offline.TrainOpts{Clip: -1})
	assert.ErrorContains(t, err, "clip")
	bad := append(tinyLog(), rec("bad", []float64{0, 1}, 0, 1))
	_, err = offline.Train(context.Background(), bad, p, offline.TrainOpts{})
	assert.ErrorIs(t, err, replay.ErrZeroPropensity)
	// A policy whose Update rejects the row: the error names the row.
	th, err := policy.NewBuiltinRegistry().NewFromString("thompson")
	require.NoError(t, err)
	r := rec("too-big", []float64{0.5, 0.5}, 0, 1.5)
	_, err = offline.Train(context.Background(), replay.Records{r}, th, offline.TrainOpts{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `request "too-big"`)
}
