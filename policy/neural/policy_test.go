package neural_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/policy/neural"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The synthetic problem: 8-dim one-hot contexts (intercept, task, long
// prompt, night) and three arms; "a" is good (0.9) when task⊕long⊕night
// is odd, "b" when it is even, "c" is a 0.6 generalist — the parity of
// tasks-nonlinear in miniature.
var arms = []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}}

func context8(c int) []float64 {
	x := make([]float64, 8)
	x[0] = 1
	x[1+c&1] = 1
	x[3+(c>>1)&1] = 1
	x[5+(c>>2)&1] = 1
	return x
}

func truth(c, arm int) float64 {
	odd := (c&1)^((c>>1)&1)^((c>>2)&1) == 1
	switch {
	case arm == 2:
		return 0.6
	case (arm == 0) == odd:
		return 0.9
	}
	return 0.4
}

func best(c int) int {
	b := 0
	for a := 1; a < 3; a++ {
		if truth(c, a) > truth(c, b) {
			b = a
		}
	}
	return b
}

func small(t testing.TB, extra string) *neural.NeuralLinear {
	t.Helper()
	spec := "neural-linear=hidden:16x8;retrain:50;retrain_max:100;steps:40;batch:32;lr:0.01;seed:7"
	if extra != "" {
		spec += ";" + extra
	}
	p, err := registry().NewFromString(spec)
	require.NoError(t, err)
	return p.(*neural.NeuralLinear)
}

// drive runs n online steps of the synthetic problem on p, returning the
// choices.
func drive(t testing.TB, p policy.Policy, rng *rand.Rand, n int) []int {
	t.Helper()
	probs := make([]float64, len(arms))
	var out []int
	for i := 0; i < n; i++ {
		c := rng.IntN(8)
		f := decision.Features{Vector: context8(c)}
		k, err := p.Select(context.Background(), &f, arms, probs)
		require.NoError(t, err)
		require.InDelta(t, 1, probs[0]+probs[1]+probs[2], 1e-12)
		if nl, bare := p.(*neural.NeuralLinear); bare && nl.Options().Draws == 1 {
			require.Equal(t, 1.0, probs[k], "propensity of the chosen arm (1/0 given the draw)")
		} else {
			require.Greater(t, probs[k], 0.0)
		}
		out = append(out, k)
		require.NoError(t, p.Update(&f, arms, k, truth(c, k)+0.1*rng.NormFloat64()))
	}
	return out
}

func TestOnlineLearnsParity(t *testing.T) {
	for _, explore := range []string{"thompson", "ucb"} {
		t.Run(explore, func(t *testing.T) {
			p := small(t, "explore:"+explore)
			rng := rand.New(rand.NewPCG(1, 1))
			drive(t, p, rng, 1500)
			st := p.Stats()
			assert.GreaterOrEqual(t, st.Rounds, 5, "training rounds at 50, 150, 250, ...")
			assert.Less(t, st.Last.LossAfter, 0.03, "last round's loss (noise variance 0.01)")
			for c := 0; c < 8; c++ {
				f := decision.Features{Vector: context8(c)}
				bestID, bestM := "", math.Inf(-1)
				for _, a := range arms {
					m, sd, err := p.Predict(&f, a.ID)
					require.NoError(t, err)
					require.False(t, math.IsNaN(sd))
					if m > bestM {
						bestID, bestM = a.ID, m
					}
				}
				assert.Equal(t, arms[best(c)].ID, bestID, "context %d: greedy arm", c)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a := drive(t, small(t, ""), rand.New(rand.NewPCG(2, 2)), 400)
	b := drive(t, small(t, ""), rand.New(rand.NewPCG(2, 2)), 400)
	assert.Equal(t, a, b, "same seed, same stream: same choices, training rounds included")
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, extra := range []string{"explore:thompson", "explore:ucb", "noise:learn;draws:3"} {
		t.Run(extra, func(t *testing.T) {
			p := small(t, extra)
			drive(t, p, rand.New(rand.NewPCG(3, 3)), 320)
			var buf bytes.Buffer
			require.NoError(t, p.Snapshot(&buf))
			saved := buf.String()
			q, err := policy.Load(registry(), strings.NewReader(saved))
			require.NoError(t, err)
			require.IsType(t, p, q)
			assert.Equal(t, p.Version(), policy.VersionOf(q))
			// Both continue identically, through further training rounds.
			a := drive(t, p, rand.New(rand.NewPCG(4, 4)), 300)
			b := drive(t, q, rand.New(rand.NewPCG(4, 4)), 300)
			assert.Equal(t, a, b)
			var pa, qa bytes.Buffer
			require.NoError(t, p.Snapshot(&pa))
			require.NoError(t, q.(*neural.NeuralLinear).Snapshot(&qa))
			assert.Equal(t, pa.String(), qa.String(), "snapshots after the same history")
			assert.Greater(t, p.Stats().Rounds, 3)
		})
	}
}

func TestRestoreRejects(t *testing.T) {
	p := small(t, "")
	drive(t, p, rand.New(rand.NewPCG(5, 5)), 120)
	var buf bytes.Buffer
	require.NoError(t, p.Snapshot(&buf))
	good := buf.String()
	for _, tc := range []struct{ name, old, new string }{
		{"format", `"format":"routelab/policy-snapshot"`, `"format":"other"`},
		{"version", `"version":1`, `"version":2`},
		{"policy", `"policy":"neural-linear"`, `"policy":"linucb"`},
		{"params", `"lambda":"1"`, `"lambda":"2"`},
		{"unknown field", `"rounds":`, `"bogus":1,"rounds":`},
		{"trailing data", "}\n", "}{}\n"},
		{"bad rng", `"rng":"`, `"rng":"AA`},
		{"inverse", `"a_inv":[`, `"a_inv":[7`},
		{"nan", `"w":[`, `"w":[NaN,`},
		{"net size", `"in":8,"out":16`, `"in":8,"out":17`},
		{"buffer arm", `"arm":0`, `"arm":9`},
		{"schedule", `"since_train":`, `"since_train":-`},
		{"truncated", good[len(good)/2:], ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Contains(t, good, tc.old)
			bad := strings.Replace(good, tc.old, tc.new, 1)
			err := p.Restore(strings.NewReader(bad))
			require.Error(t, err)
			assert.True(t, errors.Is(err, policy.ErrSnapshot), "error %v wraps ErrSnapshot", err)
			var after bytes.Buffer
			require.NoError(t, p.Snapshot(&after))
			assert.Equal(t, good, after.String(), "a failed Restore changes nothing")
		})
	}
	q := small(t, "")
	require.NoError(t, q.Restore(strings.NewReader(good)))
}

func TestBadInput(t *testing.T) {
	p := small(t, "dim:8")
	probs := make([]float64, 3)
	ctx := context.Background()
	good := context8(3)
	nan := context8(3)
	nan[2] = math.NaN()
	huge := context8(3)
	huge[0] = 1e7
	for _, tc := range []struct {
		name  string
		f     *decision.Features
		cands []decision.Arm
		probs []float64
		want  error
	}{
		{"no features", nil, arms, probs, policy.ErrBadVector},
		{"no vector", &decision.Features{}, arms, probs, policy.ErrBadVector},
		{"short vector", &decision.Features{Vector: good[:7]}, arms, probs, policy.ErrBadVector},
		{"NaN", &decision.Features{Vector: nan}, arms, probs, policy.ErrBadVector},
		{"huge", &decision.Features{Vector: huge}, arms, probs, policy.ErrBadVector},
		{"no candidates", &decision.Features{Vector: good}, nil, probs, policy.ErrNoCandidates},
		{"short probs", &decision.Features{Vector: good}, arms, probs[:2], policy.ErrProbsTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Select(ctx, tc.f, tc.cands, tc.probs)
			assert.ErrorIs(t, err, tc.want)
			if tc.name != "short probs" {
				assert.ErrorIs(t, p.Update(tc.f, tc.cands, 0, 0.5), tc.want)
			}
		})
	}
	f := &decision.Features{Vector: good}
	assert.ErrorIs(t, p.Update(f, arms, 3, 0.5), policy.ErrBadChosen)
	assert.ErrorIs(t, p.Update(f, arms, -1, 0.5), policy.ErrBadChosen)
	assert.ErrorIs(t, p.Update(f, arms, 0, math.NaN()), policy.ErrBadReward)
	assert.ErrorIs(t, p.Update(f, arms, 0, math.Inf(1)), policy.ErrBadReward)
	assert.Equal(t, int64(0), p.Stats().Seen, "rejected updates leave no trace")
	_, err := p.Train(ctx)
	assert.Error(t, err, "nothing to train on")

	for _, spec := range []string{
		"neural-linear=hidden:64,32", "neural-linear=hidden:0", "neural-linear=explore:greedy", "neural-linear=scale:-1",
		"neural-linear=lambda:0x", "neural-linear=retrain:10;retrain_max:5", "neural-linear=steps:-1",
		"neural-linear=lr:-1", "neural-linear=buffer:-3", "neural-linear=dim:5000", "neural-linear=alpha:1", "neural-linear=l2:NaN",
	} {
		_, err := registry().NewFromString(spec)
		assert.Error(t, err, spec)
	}
}

func TestConcurrent(t *testing.T) {
	p := small(t, "")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			probs := make([]float64, 3)
			for i := 0; i < 150; i++ {
				c := rng.IntN(8)
				f := decision.Features{Vector: context8(c)}
				k, err := p.Select(context.Background(), &f, arms, probs)
				if !assert.NoError(t, err) {
					return
				}
				assert.NoError(t, p.Update(&f, arms, k, truth(c, k)))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			var buf bytes.Buffer
			assert.NoError(t, p.Snapshot(&buf))
			_ = p.Version()
			_ = p.Stats()
		}
	}()
	wg.Wait()
	st := p.Stats()
	assert.Equal(t, int64(600), st.Seen)
	assert.GreaterOrEqual(t, st.Rounds, 2, "rounds ran while others selected and updated")
}

// logs builds n logged decisions of the synthetic problem from a logger
// that plays the generalist "c" with probability 0.8 and "a", "b" with 0.1
// each, so a and b are seen mostly where the logger happened to explore.
func logs(n int, seed uint64) []decision.Record {
	rng := rand.New(rand.NewPCG(seed, seed))
	out := make([]decision.Record, n)
	probs := []float64{0.1, 0.1, 0.8}
	for i := range out {
		c := rng.IntN(8)
		u, k := rng.Float64(), 0
		for k < 2 && u >= probs[k] {
			u -= probs[k]
			k++
		}
		out[i] = decision.Record{
			Request:  decision.Request{ID: fmt.Sprint("r", i), Features: decision.Features{Vector: context8(c)}},
			Decision: decision.Decision{Candidates: arms, Probs: probs, Chosen: k},
			Reward:   truth(c, k) + 0.1*rng.NormFloat64(),
		}
	}
	return out
}

type records []decision.Record

func (r records) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	for i := range r {
		if err := fn(&r[i]); err != nil {
			return err
		}
	}
	return nil
}

func TestFitFromLogs(t *testing.T) {
	log := records(logs(4000, 11))
	for _, w := range []neural.Weighting{neural.IPS, neural.DR, neural.Unweighted} {
		t.Run(w.String(), func(t *testing.T) {
			p := small(t, "explore:ucb")
			st, err := offline.FitNeural(context.Background(), p, log, neural.FitOpts{Weighting: w, Epochs: 4})
			require.NoError(t, err)
			assert.Equal(t, 4000, st.Rows)
			assert.Equal(t, []string{"a", "b", "c"}, st.Arms)
			assert.InDelta(t, 10, st.MaxWeight, 1e-12)
			assert.InDelta(t, 3, st.MeanWeight, 0.1, "E[1/μ] = K under the logger")
			assert.Zero(t, st.Clipped)
			if w == neural.Unweighted {
				assert.InDelta(t, 4000, st.ESS, 1e-6)
			} else {
				// Weights 10,10,1.25 in proportions .1,.1,.8: ESS = n·3²/21.25.
				assert.InDelta(t, 4000*9/21.25, st.ESS, 150)
			}
			t.Logf("%s: loss %.4f → %.4f (IPS stage %.4f → %.4f), ESS %.0f", w, st.Final.LossBefore, st.Final.LossAfter, st.IPS.LossBefore, st.IPS.LossAfter, st.ESS)
			var mse float64
			for c := 0; c < 8; c++ {
				f := decision.Features{Vector: context8(c)}
				for a := range arms {
					m, _, err := p.Predict(&f, arms[a].ID)
					require.NoError(t, err)
					mse += (m - truth(c, a)) * (m - truth(c, a)) / 24
				}
				probs := make([]float64, 3)
				k, err := p.Select(context.Background(), &f, arms, probs)
				require.NoError(t, err)
				assert.Equal(t, best(c), k, "context %d: the fitted policy serves the best arm", c)
			}
			assert.Less(t, mse, 0.005, "posterior means vs the true rewards over all 24 (context, arm) cells")
			assert.Equal(t, 1, p.Stats().Rounds)
			// It keeps learning online.
			drive(t, p, rand.New(rand.NewPCG(1, 2)), 60)
			assert.Equal(t, int64(4060), p.Stats().Seen)
		})
	}
}

func TestFitRejectsBadRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(r *decision.Record)
	}{
		{"no vector", func(r *decision.Record) { r.Request.Features.Vector = nil }},
		{"probs", func(r *decision.Record) { r.Decision.Probs = r.Decision.Probs[:2] }},
		{"zero propensity", func(r *decision.Record) { r.Decision.Probs = []float64{0, 0, 1}; r.Decision.Chosen = 0 }},
		{"chosen", func(r *decision.Record) { r.Decision.Chosen = 5 }},
		{"reward", func(r *decision.Record) { r.Reward = math.NaN() }},
		{"dims", func(r *decision.Record) { r.Request.Features.Vector = make([]float64, 9) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := logs(50, 1)
			tc.mod(&log[17])
			p := small(t, "")
			_, err := offline.FitNeural(context.Background(), p, records(log), neural.FitOpts{})
			require.ErrorIs(t, err, neural.ErrBadRecord)
			assert.Contains(t, err.Error(), `17 (request "r17")`)
			assert.Zero(t, p.Stats().Rounds)
		})
	}
	p := small(t, "")
	_, err := offline.FitNeural(context.Background(), p, records(nil), neural.FitOpts{})
	assert.Error(t, err, "empty log")
	_, err = offline.FitNeural(context.Background(), p, records(logs(10, 1)), neural.FitOpts{Clip: 0.5})
	assert.Error(t, err, "clip below 1")
}

func TestAsyncTraining(t *testing.T) {
	p := small(t, "async:true")
	rng := rand.New(rand.NewPCG(1, 1))
	// Traffic here is far faster than training; pause between bursts so
	// that rounds finish, as they would under real request rates.
	for i := 0; i < 15; i++ {
		drive(t, p, rng, 100)
		require.NoError(t, p.Wait(context.Background()))
	}
	st := p.Stats()
	assert.GreaterOrEqual(t, st.Rounds, 3, "background rounds completed")
	assert.Zero(t, st.TrainErrors)
	assert.NoError(t, st.LastError)
	hits := 0
	for c := 0; c < 8; c++ {
		f := decision.Features{Vector: context8(c)}
		bestID, bestM := "", math.Inf(-1)
		for _, a := range arms {
			m, _, err := p.Predict(&f, a.ID)
			require.NoError(t, err)
			if m > bestM {
				bestID, bestM = a.ID, m
			}
		}
		if bestID == arms[best(c)].ID {
			hits++
		}
	}
	assert.Equal(t, 8, hits, "greedy arm right in every context")
	// Snapshots of async policies record the flag.
	var buf bytes.Buffer
	require.NoError(t, p.Snapshot(&buf))
	assert.Contains(t, buf.String(), `"async":"true"`)
}

// FuzzRestore: whatever the bytes, Restore returns (an error or nil) and
// never panics, and a failed Restore leaves the policy as it was.
func FuzzRestore(f *testing.F) {
	p := small(f, "")
	drive(f, p, rand.New(rand.NewPCG(6, 6)), 60)
	var buf bytes.Buffer
	require.NoError(f, p.Snapshot(&buf))
	good := buf.String()
	f.Add(good)
	f.Add(strings.Replace(good, `"a_inv":[`, `"a_inv":[1e308,`, 1))
	f.Add(strings.Replace(good, `"arm":0`, `"arm":-1`, 1))
	f.Add(`{"format":"routelab/policy-snapshot","version":1,"policy":"neural-linear","params":{},"state":{}}`)
	// A fresh policy's snapshot is the same every time: take it once, so
	// an execution costs one construction and one Restore. (Each seed is
	// a ~19 KB JSON document, and most mutations of it reach new coverage
	// in the JSON and float parsers; the fuzzer then spends up to
	// -fuzzminimizetime minimising each, which is what looked like a
	// stalled worker in issue 14, finding 10. Nothing hangs or crashes.)
	var fresh bytes.Buffer
	require.NoError(f, small(f, "").Snapshot(&fresh))
	before := fresh.String()
	f.Fuzz(func(t *testing.T, s string) {
		q := small(t, "")
		if err := q.Restore(strings.NewReader(s)); err != nil {
			var after bytes.Buffer
			require.NoError(t, q.Snapshot(&after))
			require.Equal(t, before, after.String())
			return
		}
		// A restored policy must serve.
		probs := make([]float64, 3)
		fv := decision.Features{Vector: context8(1)}
		if _, err := q.Select(context.Background(), &fv, arms, probs); err != nil {
			require.ErrorIs(t, err, policy.ErrBadVector)
		}
	})
}

// TestFloorSnapshotRoundTrip: a floor-wrapped NeuralLinear (the way to log
// it for off-policy evaluation) saves and loads with its parameters.
func TestFloorSnapshotRoundTrip(t *testing.T) {
	p, err := registry().NewFromString("neural-linear=hidden:16x8;retrain:50;retrain_max:100;steps:40;lr:0.01;seed:7;floor:0.1")
	require.NoError(t, err)
	require.IsType(t, &policy.Floor{}, p)
	drive(t, p, rand.New(rand.NewPCG(8, 8)), 200)
	path := t.TempDir() + "/nl.json"
	require.NoError(t, policy.SaveFile(p, path))
	q, err := policy.LoadFile(registry(), path)
	require.NoError(t, err)
	assert.Equal(t, policy.VersionOf(p), policy.VersionOf(q))
	probs, probsQ := make([]float64, 3), make([]float64, 3)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 200; i++ {
		c := rng.IntN(8)
		f := decision.Features{Vector: context8(c)}
		k, err := p.Select(context.Background(), &f, arms, probs)
		require.NoError(t, err)
		kq, err := q.Select(context.Background(), &f, arms, probsQ)
		require.NoError(t, err)
		require.Equal(t, k, kq, "decision %d", i)
		require.Equal(t, probs, probsQ, "propensities %d", i)
		assert.GreaterOrEqual(t, probs[0], 0.1/3-1e-12, "floor")
		r := truth(c, k)
		require.NoError(t, p.Update(&f, arms, k, r))
		require.NoError(t, q.Update(&f, arms, k, r))
	}
}

func TestTrainNow(t *testing.T) {
	p, err := neural.NewNeuralLinear(neural.Opts{Hidden: []int{16, 8}, Retrain: 100000, Steps: 40, Batch: 32, LR: 0.01, Seed: 7})
	require.NoError(t, err)
	drive(t, p, rand.New(rand.NewPCG(10, 10)), 400)
	require.Zero(t, p.Stats().Rounds, "the schedule has not come")
	st, err := p.Train(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 400, st.Rows)
	assert.Equal(t, 40, st.Steps)
	assert.Less(t, st.LossAfter, st.LossBefore)
	assert.Equal(t, 1, p.Stats().Rounds)
	assert.Equal(t, "1.r1", p.Version())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Train(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, p.Stats().Rounds, "a cancelled round installs nothing")
	assert.Equal(t, 1, p.Stats().TrainErrors)
}

// interleaved is a log source that, half-way through, lets the policy
// serve online traffic — as a fit of a serving policy sees.
type interleaved struct {
	log    records
	during func()
}

func (s interleaved) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	for i := range s.log {
		if i == len(s.log)/2 {
			s.during()
		}
		if err := fn(&s.log[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestFitKeepsOnlineRows: rewards that arrive while Fit runs (including
// for an arm the log never saw) follow the logged rows in the buffer.
func TestFitKeepsOnlineRows(t *testing.T) {
	p := small(t, "")
	drive(t, p, rand.New(rand.NewPCG(12, 12)), 20)
	newArm := []decision.Arm{{ID: "a"}, {ID: "d"}}
	src := interleaved{log: records(logs(300, 13)), during: func() {
		f := decision.Features{Vector: context8(5)}
		for i := 0; i < 7; i++ {
			require.NoError(t, p.Update(&f, newArm, i%2, 0.3))
		}
	}}
	_, err := offline.FitNeural(context.Background(), p, src, neural.FitOpts{Epochs: 1})
	require.NoError(t, err)
	st := p.Stats()
	assert.Equal(t, int64(20+7+300), st.Seen)
	assert.Equal(t, 307, st.Buffered, "the log's rows, then the 7 online ones; the 20 before the fit are replaced")
	assert.Equal(t, []string{"a", "b", "c", "d"}, st.Arms)
	m, _, err := p.Predict(&decision.Features{Vector: context8(5)}, "d")
	require.NoError(t, err)
	assert.InDelta(t, 0.3, m, 0.15, "arm d learnt from its online rewards only")
}

// TestThompsonDraws: with draws M > 1 the propensities are shares of M
// wins, the played arm has positive propensity, and over many Selects of
// one context each arm is played as often as its reported propensity says.
func TestThompsonDraws(t *testing.T) {
	p := small(t, "draws:50")
	drive(t, p, rand.New(rand.NewPCG(14, 14)), 30) // still uncertain
	f := decision.Features{Vector: context8(6)}
	probs := make([]float64, 3)
	var sumP [3]float64
	var plays [3]int
	const n = 4000
	for i := 0; i < n; i++ {
		k, err := p.Select(context.Background(), &f, arms, probs)
		require.NoError(t, err)
		require.Greater(t, probs[k], 0.0)
		var s float64
		for j, q := range probs {
			s += q
			assert.InDelta(t, math.Round(q*50)/50, q, 1e-12, "multiples of 1/M")
			sumP[j] += q / n
		}
		require.InDelta(t, 1, s, 1e-12)
		plays[k]++
	}
	for j := range arms {
		freq := float64(plays[j]) / n
		// Binomial sd at most 0.008 for n = 4000; 4 sd.
		assert.InDelta(t, sumP[j], freq, 0.032, "arm %s: mean propensity vs play frequency", arms[j].ID)
	}
	t.Logf("mean propensities %.3f, play frequencies %v/%d", sumP, plays, n)
	_, err := registry().NewFromString("neural-linear=explore:ucb;draws:5")
	assert.Error(t, err, "draws only for thompson")
}
