package offline_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy/neural"
	"github.com/routelab/routelab/replay"
)

// interceptOnly serves the synthetic log with a constant feature vector
// [1]: the task, which drives both the logger's choice and the reward, is
// hidden from the regression, so only the propensities can undo the
// logger's bias.
type interceptOnly struct{ synthSource }

func (s interceptOnly) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	one := []float64{1}
	return s.synthSource.Scan(ctx, func(rec *decision.Record) error {
		rec.Request.Features.Vector = one
		return fn(rec)
	})
}

// TestFitRouterCorrectsLoggerBias: the synthetic logger plays each arm
// mostly on one task, so an unweighted (direct-method) fit of each arm's
// mean reward on a constant feature learns the mean on the logger's
// favourite task; IPS and DR recover the population means (the average of
// the arm's means over the three equally likely tasks).
func TestFitRouterCorrectsLoggerBias(t *testing.T) {
	src := interceptOnly{synthSource{N: 60_000, Seed: 11}}
	truth := map[string]float64{}
	for a, arm := range synthArms {
		for task := range synthTasks {
			truth[arm.ID] += synthMean[task][a] / 3
		}
	}
	f := []float64{1}
	ctx := context.Background()
	biased := 0.0
	for _, wt := range []neural.Weighting{neural.Unweighted, neural.IPS, neural.DR} {
		p, st, err := offline.FitRouter(ctx, src, offline.RouterOpts{Weighting: wt, L2: 1e-9})
		require.NoError(t, err, wt)
		assert.Equal(t, 60_000, st.Rows)
		assert.Equal(t, []string{"m0", "m1", "m2", "m3"}, st.Arms)
		for _, arm := range synthArms {
			q, c, ok := p.Score(&decision.Features{Vector: f}, arm.ID)
			require.True(t, ok)
			assert.Zero(t, c, "the synthetic log has no cost")
			err := math.Abs(q - truth[arm.ID])
			t.Logf("%s %s: fitted %.4f, population mean %.4f", wt, arm.ID, q, truth[arm.ID])
			if wt == neural.Unweighted {
				biased = max(biased, err)
				continue
			}
			assert.Less(t, err, 0.02, "%s recovers %s's population mean", wt, arm.ID)
		}
	}
	assert.Greater(t, biased, 0.1, "the unweighted fit is biased (the test would not tell otherwise)")
}

// TestFitRouterContextual: with the task in the vector (one-hot), every
// weighting fits each arm's mean per task, and the router then picks the
// best arm of every task.
func TestFitRouterContextual(t *testing.T) {
	src := synthSource{N: 30_000, Seed: 12, Vector: true}
	for name, wt := range offline.RouterLearners {
		p, _, err := offline.FitRouter(context.Background(), src, offline.RouterOpts{Weighting: wt, L2: 1e-6})
		require.NoError(t, err)
		for task := range synthTasks {
			x := make([]float64, 3)
			x[task] = 1
			f := &decision.Features{Vector: x}
			for a, arm := range synthArms {
				q, _, _ := p.Score(f, arm.ID)
				assert.InDelta(t, synthMean[task][a], q, 0.05, "%s: %s on task %d", name, arm.ID, task)
			}
			probs := make([]float64, len(synthArms))
			c, err := p.Select(context.Background(), f, synthArms, probs)
			require.NoError(t, err)
			best := 0
			for a := range synthArms {
				if synthMean[task][a] > synthMean[task][best] {
					best = a
				}
			}
			assert.Equal(t, best, c, "%s picks the best arm of task %d", name, task)
		}
	}
}

// TestFitRouterBadInput: every unusable log is an error naming the row.
func TestFitRouterBadInput(t *testing.T) {
	withVec := func(r decision.Record, x ...float64) decision.Record {
		r.Request.Features.Vector = x
		return r
	}
	good := withVec(rec("ok", []float64{0.5, 0.5}, 0, 1), 1)
	tests := []struct {
		name string
		log  replay.Records
		opts offline.RouterOpts
		want error
		msg  string
	}{
		{"zero propensity", replay.Records{good, withVec(rec("z", []float64{0, 1}, 0, 1), 1)}, offline.RouterOpts{},
			replay.ErrZeroPropensity, `row 1 (request "z")`},
		{"missing propensities", replay.Records{withVec(rec("m", nil, 0, 1), 1)}, offline.RouterOpts{},
			replay.ErrMissingPropensity, `row 0 (request "m")`},
		{"arm outside the catalogue", replay.Records{good}, offline.RouterOpts{Catalogue: []string{"a", "c"}},
			offline.ErrBadLog, `candidate arm "b" is not in the catalogue [a c]`},
		{"no vector", replay.Records{rec("nv", []float64{0.5, 0.5}, 0, 1)}, offline.RouterOpts{},
			offline.ErrBadLog, "no feature vector"},
		{"vector lengths differ", replay.Records{good, withVec(rec("l", []float64{0.5, 0.5}, 0, 1), 1, 0)}, offline.RouterOpts{},
			offline.ErrBadLog, "feature vector of 2 slots, earlier rows have 1"},
		{"non-finite vector", replay.Records{withVec(rec("n", []float64{0.5, 0.5}, 0, 1), math.NaN())}, offline.RouterOpts{},
			offline.ErrBadLog, "Vector[0] = NaN"},
		{"empty log", replay.Records{}, offline.RouterOpts{}, offline.ErrBadLog, "no rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := offline.FitRouter(context.Background(), tc.log, tc.opts)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "%v does not wrap %v", err, tc.want)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	for _, o := range []offline.RouterOpts{{L2: -1}, {L2: math.Inf(1)}, {Clip: -1}, {Weighting: 7}} {
		_, _, err := offline.FitRouter(context.Background(), replay.Records{good}, o)
		assert.Error(t, err, "%+v", o)
	}
	// A catalogue arm no row chose is reported and left out.
	_, st, err := offline.FitRouter(context.Background(), replay.Records{good}, offline.RouterOpts{Catalogue: []string{"a", "b", "c"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, st.Arms)
	assert.Equal(t, []string{"b", "c"}, st.Unfitted)
}
