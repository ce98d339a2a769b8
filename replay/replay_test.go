package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/routelab/routelab/replay"
)

// fixed is a target policy with the same probabilities on every request,
// keyed by arm id (arms it does not list get 0). It chooses its most
// probable arm. The probabilities are renormalised over the candidates
// offered, unless raw is set (to play a buggy target). It fails on the arm
// fail, to play an unknown-arm error.
type fixed struct {
	probs map[string]float64
	fail  string
	raw   bool
}

func (*fixed) Name() string { return "fixed" }

func (p *fixed) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	best, sum := 0, 0.0
	for i, c := range cands {
		if c.ID == p.fail {
			return 0, fmt.Errorf("unknown arm %q", c.ID)
		}
		probs[i] = p.probs[c.ID]
		sum += probs[i]
		if probs[i] > probs[best] {
			best = i
		}
	}
	if !p.raw && sum > 0 {
		for i := range cands {
			probs[i] /= sum
		}
	}
	return best, nil
}

func (*fixed) Update(*decision.Features, []decision.Arm, int, float64) error {
	return errors.New("a frozen target must not be updated")
}

func arms(ids ...string) []decision.Arm { return synthlog.MakeArms(ids...) }

func rec(id string, probs []float64, chosen int, reward float64) decision.Record {
	return synthlog.Rec(id, probs, chosen, reward)
}

// tinyLog: two arms a, b; two rows logged uniformly, two with μ = (¼, ¾).
func tinyLog() replay.Records { return synthlog.TinyLog() }

// constModel predicts q̂(a) = 0.4 and q̂(b) = 0.2 on every request.
var constModel = replay.ModelFunc(func(rec *decision.Record, q []float64) error {
	for i, c := range rec.Decision.Candidates {
		q[i] = map[string]float64{"a": 0.4, "b": 0.2}[c.ID]
	}
	return nil
})

// targetRows checks that the first result is the logging policy's own
// value (the mean logged reward, want) and returns the others.
func targetRows(t *testing.T, res []replay.Result, want float64) []replay.Result {
	t.Helper()
	require.NotEmpty(t, res)
	assert.Equal(t, replay.LoggedPolicy, res[0].Policy)
	assert.Equal(t, replay.OnPolicy, res[0].Estimator)
	assert.InDelta(t, want, res[0].Value, 1e-12, "on-policy value")
	return res[1:]
}

func byEstimator(res []replay.Result) map[replay.Estimator]replay.Result {
	out := map[replay.Estimator]replay.Result{}
	for _, r := range res {
		out[r.Estimator] = r
	}
	return out
}

// TestHandComputedStochastic checks every estimator on tinyLog against
// values worked out by hand for the target π = (0.8, 0.2):
//
//	weights w = π(a_i)/μ(a_i) = 0.8/0.5, 0.2/0.5, 0.8/0.25, 0.2/0.75
//	          = 1.6, 0.4, 3.2, 0.2667      Σw = 82/15 = 5.4667
//	rewards r = 1, 0, 0.5, 1               Σw·r = 1.6 + 1.6 + 0.2667 = 52/15
//	replay    = Σπ(a_i)·r / Σπ(a_i) = (0.8 + 0 + 0.4 + 0.2) / 2.0 = 0.7
//	ips       = (52/15)/4 = 0.8667
//	clipped   = (1.6 + 2·0.5 + 0.2667)/4 = 0.7167          (clip 2)
//	snips     = (52/15)/(82/15) = 26/41 = 0.63415
//	dm        = 0.8·0.4 + 0.2·0.2 = 0.36 on every row
//	residuals r − q̂(a_i) = 0.6, −0.2, 0.1, 0.8
//	w·res     = 0.96, −0.08, 0.32, 0.2133  Σ = 1.41333
//	dr        = 0.36 + 1.41333/4 = 0.71333
//	sndr      = 0.36 + 1.41333/5.46667 = 0.61854
//	switch-dr = 0.36 + (1.41333 − 0.32)/4 = 0.63333       (τ 2 drops w = 3.2)
//	dr-os     = 0.36 + Σ w/(w²+1)·res /4                   (λ 1)
//	          = 0.36 + (0.44944·0.6 − 0.34483·0.2 + 0.28470·0.1 + 0.24896·0.8)/4 = 0.46708
//	ess(w)    = 5.46667² / (1.6² + 0.4² + 3.2² + 0.2667²) = 2.29332
func TestHandComputedStochastic(t *testing.T) {
	target := &fixed{probs: map[string]float64{"a": 0.8, "b": 0.2}}
	res, err := replay.Evaluate(context.Background(), tinyLog(), []replay.Target{{Policy: target}}, replay.Opts{
		Clip: 2, Tau: 2, Lambda: 1, Folds: 1, Bootstrap: -1,
		Model: func() replay.RewardModel { return constModel },
	})
	require.NoError(t, err)
	res = targetRows(t, res, 2.5/4)
	require.Len(t, res, len(replay.AllEstimators()))
	want := map[replay.Estimator]float64{
		replay.Replay: 0.7, replay.IPS: 0.8666666667, replay.ClippedIPS: 0.7166666667,
		replay.SNIPS: 0.6341463415, replay.DM: 0.36, replay.DR: 0.7133333333,
		replay.SNDR: 0.6185365854, replay.SwitchDR: 0.6333333333, replay.DROS: 0.4670843199,
	}
	got := byEstimator(res)
	for e, v := range want {
		r := got[e]
		assert.InDelta(t, v, r.Value, 1e-9, "%s value: got %v want %v", e, r.Value, v)
		assert.Equal(t, "fixed", r.Policy)
		assert.EqualValues(t, 4, r.N)
		assert.InDelta(t, 3.2, r.MaxWeight, 1e-12)
		assert.InDelta(t, 82.0/60, r.MeanWeight, 1e-12)
		assert.True(t, math.IsNaN(r.CILow) && math.IsNaN(r.CIHigh), "%s: no bootstrap asked, got CI [%v, %v]", e, r.CILow, r.CIHigh)
	}
	assert.InDelta(t, 2.2933151432, got[replay.IPS].ESS, 1e-9)
	assert.InDelta(t, 2.6806282723, got[replay.ClippedIPS].ESS, 1e-9) // (1.6+.4+2+.2667)²/(2.56+.16+4+.0711)
	assert.InDelta(t, 3.8009293414, got[replay.DROS].ESS, 1e-9)
	assert.InDelta(t, 2.9411764706, got[replay.Replay].ESS, 1e-9) // 2²/(.64+.04+.64+.04)
	assert.InDelta(t, 4, got[replay.DM].ESS, 0)
	// Rows 3 and 4 were not logged uniformly: replay must say it is biased.
	assert.Contains(t, fmt.Sprint(got[replay.Replay].Warnings), "non-uniformly")
	assert.NotContains(t, fmt.Sprint(got[replay.IPS].Warnings), "non-uniformly")
}

// TestHandComputedDeterministic: the target always plays a, so π = (1, 0):
//
//	replay keeps rows 1 and 3 (logged a): (1 + 0.5)/2 = 0.75
//	w = 2, 0, 4, 0: ips = (2·1 + 4·0.5)/4 = 1; snips = 4/6 = 0.6667
//	dr = 0.4 + (2·0.6 + 4·0.1)/4 = 0.8
func TestHandComputedDeterministic(t *testing.T) {
	target := &fixed{probs: map[string]float64{"a": 1}}
	res, err := replay.Evaluate(context.Background(), tinyLog(), []replay.Target{{Name: "always-a", Policy: target}}, replay.Opts{
		Estimators: []replay.Estimator{replay.Replay, replay.IPS, replay.SNIPS, replay.DR},
		Folds:      1, Bootstrap: -1,
		Model: func() replay.RewardModel { return constModel },
	})
	require.NoError(t, err)
	res = targetRows(t, res, 2.5/4)
	require.Len(t, res, 4)
	got := byEstimator(res)
	assert.InDelta(t, 0.75, got[replay.Replay].Value, 1e-12)
	assert.InDelta(t, 2, got[replay.Replay].ESS, 1e-12, "replay's ESS of a deterministic target is the number of matches")
	assert.InDelta(t, 1.0, got[replay.IPS].Value, 1e-12)
	assert.InDelta(t, 4.0/6, got[replay.SNIPS].Value, 1e-12)
	assert.InDelta(t, 0.8, got[replay.DR].Value, 1e-12)
	assert.Equal(t, "always-a", res[0].Policy)
	assert.Equal(t, []replay.Estimator{replay.Replay, replay.IPS, replay.SNIPS, replay.DR},
		[]replay.Estimator{res[0].Estimator, res[1].Estimator, res[2].Estimator, res[3].Estimator}, "results keep the requested order")
}

// A target that never agrees with the logger leaves self-normalised
// estimators undefined: NaN with a warning, and null in JSON.
func TestUndefinedIsNaNAndNull(t *testing.T) {
	log := replay.Records{rec("r1", []float64{1, 0}, 0, 1)}
	target := &fixed{probs: map[string]float64{"b": 1}}
	res, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: target}}, replay.Opts{
		Estimators: []replay.Estimator{replay.SNIPS, replay.IPS}, Bootstrap: -1, AllowMissingSupport: true,
	})
	require.NoError(t, err)
	res = targetRows(t, res, 1)
	assert.True(t, math.IsNaN(res[0].Value))
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "undefined")
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "missing support")
	assert.Equal(t, 0.0, res[1].Value, "ips of a target the log never supports is 0, with a warning")
	b, err := json.Marshal(res[0])
	require.NoError(t, err)
	assert.Contains(t, string(b), `"value":null`)
	assert.Contains(t, string(b), `"estimator":"snips"`)
}

// Missing support is an error naming the share of rows, unless allowed;
// allowed, it is a warning on every estimate.
func TestMissingSupport(t *testing.T) {
	// A deterministic logger (always a); the target is uniform: half of its
	// mass is on b, which the logger never plays. Kish's ESS of the constant
	// weight 0.5 is n: only the mean weight shows the shortfall.
	// 20 rows so logged, then 10 logged uniformly: weights 0.5 ×20, 1 ×10.
	var log replay.Records
	for i := range 30 {
		probs := []float64{1, 0}
		if i >= 20 {
			probs = []float64{0.5, 0.5}
		}
		log = append(log, rec(fmt.Sprint("r", i), probs, 0, float64(i%2)))
	}
	target := &fixed{probs: map[string]float64{"a": 0.5, "b": 0.5}}
	opts := replay.Opts{Estimators: []replay.Estimator{replay.IPS}, Bootstrap: -1}
	_, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: target}}, opts)
	require.ErrorIs(t, err, replay.ErrMissingSupport)
	assert.ErrorContains(t, err, "on 20 of 30 rows (66.7%)")

	opts.AllowMissingSupport = true
	res, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: target}}, opts)
	require.NoError(t, err)
	res = targetRows(t, res, 0.5)
	require.Len(t, res, 1)
	assert.InDelta(t, 400.0/15, res[0].ESS, 1e-9, "Kish ESS (Σw)²/Σw² = 20²/15: 89% of n, though a third of the mass is unseen")
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "missing support: on 20 of 30 rows")
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "33.3% of its total mass")
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "mean importance weight 0.6667")
}

func TestBadRows(t *testing.T) {
	base := func() decision.Record { return rec("bad", []float64{0.5, 0.5}, 0, 1) }
	cases := []struct {
		name string
		mod  func(r *decision.Record)
		want error
		msg  string
	}{
		{"no propensities", func(r *decision.Record) { r.Decision.Probs = nil }, replay.ErrMissingPropensity, "none logged"},
		{"too few propensities", func(r *decision.Record) { r.Decision.Probs = []float64{1} }, replay.ErrMissingPropensity, "1 propensities for 2"},
		{"zero on chosen", func(r *decision.Record) { r.Decision.Probs = []float64{0, 1} }, replay.ErrZeroPropensity, `arm "a"`},
		{"denormal on chosen", func(r *decision.Record) { r.Decision.Probs = []float64{1e-300, 1} }, replay.ErrZeroPropensity, "1e-300"},
		{"sum not one", func(r *decision.Record) { r.Decision.Probs = []float64{0.5, 0.6} }, replay.ErrBadPropensity, "sum to"},
		{"negative", func(r *decision.Record) { r.Decision.Probs = []float64{1.5, -0.5} }, replay.ErrBadPropensity, "probability"},
		{"NaN propensity", func(r *decision.Record) { r.Decision.Probs = []float64{math.NaN(), 0.5} }, replay.ErrBadPropensity, "NaN"},
		{"NaN reward", func(r *decision.Record) { r.Reward = math.NaN() }, replay.ErrBadRow, "reward NaN"},
		{"chosen out of range", func(r *decision.Record) { r.Decision.Chosen = 2 }, replay.ErrBadRow, "chosen index 2"},
		{"no candidates", func(r *decision.Record) { r.Decision.Candidates = nil }, replay.ErrBadRow, "no candidates"},
		{"duplicate arm", func(r *decision.Record) { r.Decision.Candidates = arms("a", "a") }, replay.ErrBadRow, "listed twice"},
	}
	target := &fixed{probs: map[string]float64{"a": 0.5, "b": 0.5}}
	for _, tc := range cases {
		for _, est := range []replay.Estimator{replay.IPS, replay.DR} { // one pass and two passes
			t.Run(tc.name+"/"+string(est), func(t *testing.T) {
				log := tinyLog()
				r := base()
				tc.mod(&r)
				log = append(log, r)
				_, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: target}}, replay.Opts{Estimators: []replay.Estimator{est}, Folds: 1})
				require.Error(t, err)
				assert.ErrorIs(t, err, tc.want)
				assert.Contains(t, err.Error(), `row 4 (request "bad")`)
				assert.Contains(t, err.Error(), tc.msg)
			})
		}
	}
}

func TestTargetFailsOnUnknownArm(t *testing.T) {
	target := &fixed{probs: map[string]float64{"a": 1}, fail: "b"}
	_, err := replay.Evaluate(context.Background(), tinyLog(), []replay.Target{{Policy: target}}, replay.Opts{Bootstrap: -1, Estimators: []replay.Estimator{replay.IPS}})
	require.Error(t, err)
	assert.ErrorIs(t, err, replay.ErrTarget)
	assert.Contains(t, err.Error(), `unknown arm "b"`)
	assert.Contains(t, err.Error(), "row 0")
}

func TestTargetWithBadPropensities(t *testing.T) {
	target := &fixed{probs: map[string]float64{"a": 0.7, "b": 0.7}, raw: true}
	_, err := replay.Evaluate(context.Background(), tinyLog(), []replay.Target{{Policy: target}}, replay.Opts{Bootstrap: -1})
	require.Error(t, err)
	assert.ErrorIs(t, err, replay.ErrTarget)
	assert.ErrorIs(t, err, replay.ErrBadPropensity)
}

func TestOptionErrors(t *testing.T) {
	target := []replay.Target{{Policy: &fixed{probs: map[string]float64{"a": 1}}}}
	cases := []struct {
		name string
		o    replay.Opts
		msg  string
	}{
		{"negative clip", replay.Opts{Clip: -1}, "option clip"},
		{"NaN tau", replay.Opts{Tau: math.NaN()}, "option tau"},
		{"level 1", replay.Opts{Level: 1}, "option level"},
		{"unknown estimator", replay.Opts{Estimators: []replay.Estimator{"magic"}}, `estimator "magic"`},
		{"negative folds", replay.Opts{Folds: -1}, "option folds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := replay.Evaluate(context.Background(), tinyLog(), target, tc.o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := replay.Evaluate(context.Background(), tinyLog(), nil, replay.Opts{})
	assert.ErrorContains(t, err, "no target")
	_, err = replay.Evaluate(context.Background(), replay.Records{}, target, replay.Opts{Estimators: []replay.Estimator{replay.IPS}})
	assert.ErrorContains(t, err, "no rows")
}

func TestCrossFittingNeedsTwoFolds(t *testing.T) {
	// One row can only sit in one fold: the other fold's model has nothing
	// to learn from, which must be an error, not a silent prediction of 0.
	log := replay.Records{rec("only", []float64{0.5, 0.5}, 0, 1)}
	target := []replay.Target{{Policy: &fixed{probs: map[string]float64{"a": 1}}}}
	_, err := replay.Evaluate(context.Background(), log, target, replay.Opts{Estimators: []replay.Estimator{replay.DR}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Folds 1")
	_, err = replay.Evaluate(context.Background(), log, target, replay.Opts{Estimators: []replay.Estimator{replay.DR}, Folds: 1})
	assert.NoError(t, err)
}

func TestSourceMustRepeat(t *testing.T) {
	// A source that yields fewer rows on the second pass (a log directory
	// that changed under the evaluator) is an error.
	calls := 0
	src := replay.SourceFunc(func(ctx context.Context, fn func(*decision.Record) error) error {
		calls++
		log := tinyLog()
		if calls > 1 {
			log = log[:3]
		}
		return log.Scan(ctx, fn)
	})
	target := []replay.Target{{Policy: &fixed{probs: map[string]float64{"a": 1}}}}
	_, err := replay.Evaluate(context.Background(), src, target, replay.Opts{Folds: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "second pass")
}

func TestBootstrapDeterministicAndBracketing(t *testing.T) {
	log := synthLog(t, 3000, 11)
	target := []replay.Target{{Policy: &fixed{probs: map[string]float64{"m0": 0.1, "m1": 0.2, "m2": 0.3, "m3": 0.4}}}}
	run := func(seed uint64) []replay.Result {
		res, err := replay.Evaluate(context.Background(), log, target, replay.Opts{Seed: seed})
		require.NoError(t, err)
		return res
	}
	a, b, c := run(1), run(1), run(2)
	for i := range a {
		if a[i].Estimator == replay.Replay {
			// synthLog's logger is not uniform: replay reports no interval.
			assert.True(t, math.IsNaN(a[i].CILow) && math.IsNaN(a[i].CIHigh), "replay on a non-uniform log has no interval")
			assert.Contains(t, a[i].Interval, "none")
			continue
		}
		assert.Equal(t, a[i].CILow, b[i].CILow, "same seed, same interval")
		assert.Equal(t, a[i].CIHigh, b[i].CIHigh)
		assert.NotEqual(t, a[i].CILow, c[i].CILow, "%s: another seed, another resample", a[i].Estimator)
		assert.Less(t, a[i].CILow, a[i].Value, a[i].Estimator)
		assert.Greater(t, a[i].CIHigh, a[i].Value, a[i].Estimator)
		assert.Less(t, a[i].CIHigh-a[i].CILow, 0.2, "%s: interval [%v,%v] too wide for 3000 rows", a[i].Estimator, a[i].CILow, a[i].CIHigh)
	}
}

func TestParseEstimators(t *testing.T) {
	all, err := replay.ParseEstimators("all")
	require.NoError(t, err)
	assert.Equal(t, replay.AllEstimators(), all)
	got, err := replay.ParseEstimators(" IPS, dr ,sndr")
	require.NoError(t, err)
	assert.Equal(t, []replay.Estimator{replay.IPS, replay.DR, replay.SNDR}, got)
	for _, bad := range []string{"ips,magic", "ips,ips", ",,"} {
		_, err := replay.ParseEstimators(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzParseEstimators(f *testing.F) {
	for _, s := range []string{"all", "ips,snips,dr", "", "dr-os,,switch-dr", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		es, err := replay.ParseEstimators(s)
		if err != nil {
			return
		}
		require.NotEmpty(t, es)
		seen := map[replay.Estimator]bool{}
		for _, e := range es {
			require.False(t, seen[e], "duplicate %q", e)
			seen[e] = true
		}
	})
}

// FuzzEvaluateRow: whatever a logged row holds, Evaluate returns an error
// or finite estimates — never a panic, never a silent NaN without warning,
// never an interval outside [0,1] or an estimate outside it unflagged.
func FuzzEvaluateRow(f *testing.F) {
	f.Add(0.5, 0.5, 0, 1.0, 0.8)
	f.Add(0.0, 1.0, 0, 1.0, 0.5)
	f.Add(1.0, 0.0, 1, 0.3, 1.0)
	f.Add(math.NaN(), 0.5, 0, 0.0, 0.2)
	f.Add(0.3, 0.7, 5, math.Inf(1), 0.0)
	f.Add(1e-320, 1.0, 0, 0.0, 1.0)
	f.Add(1e-300, 1.0, 0, 1e300, 1.0)
	f.Add(0.5, 0.5, 0, 1e308, 0.5)
	f.Fuzz(func(t *testing.T, p0, p1 float64, chosen int, reward, target float64) {
		if math.IsNaN(target) || target < 0 || target > 1 {
			target = 0.5
		}
		log := append(tinyLog(), rec("fuzz", []float64{p0, p1}, chosen, reward))
		pol := &fixed{probs: map[string]float64{"a": target, "b": 1 - target}}
		res, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: pol}}, replay.Opts{Folds: 1, Bootstrap: 5})
		if !(reward >= 0 && reward <= 1) {
			// A reward outside [0,1] (1e308 made ips infinite) is rejected,
			// naming the row (the fifth, index 4).
			require.ErrorIs(t, err, replay.ErrBadRow, "reward %v accepted", reward)
			require.ErrorContains(t, err, "row 4 ")
			return
		}
		if err != nil {
			return
		}
		for _, r := range res {
			if math.IsNaN(r.Value) {
				require.Contains(t, fmt.Sprint(r.Warnings), "undefined", "%s: NaN without a warning", r.Estimator)
				continue
			}
			require.False(t, math.IsInf(r.Value, 0), "%s: infinite value", r.Estimator)
			if !math.IsNaN(r.CILow) {
				require.True(t, r.CILow >= 0 && r.CIHigh <= 1, "%s: interval [%v, %v] outside [0,1]", r.Estimator, r.CILow, r.CIHigh)
			}
			if r.Value < 0 || r.Value > 1 {
				require.Contains(t, fmt.Sprint(r.Warnings), "outside the reward range", "%s: %v unflagged", r.Estimator, r.Value)
			}
		}
	})
}

// An estimate above the reward range is flagged and its interval cut to
// [0,1]: one row logged a with μ = 0.25 (w = 4 for "always a"), reward 1,
// and one row that logged b: ips = 4/2 = 2.
func TestOutsideRewardRange(t *testing.T) {
	log := replay.Records{
		rec("r1", []float64{0.25, 0.75}, 0, 1),
		rec("r2", []float64{0.25, 0.75}, 1, 1),
	}
	res, err := replay.Evaluate(context.Background(), log, []replay.Target{{Policy: &fixed{probs: map[string]float64{"a": 1}}}},
		replay.Opts{Estimators: []replay.Estimator{replay.IPS}, Folds: 1, Bootstrap: 50})
	require.NoError(t, err)
	res = targetRows(t, res, 1)
	assert.InDelta(t, 2, res[0].Value, 1e-12)
	assert.Contains(t, fmt.Sprint(res[0].Warnings), "outside the reward range")
	assert.True(t, res[0].CIClipped, "interval [%v, %v] not flagged", res[0].CILow, res[0].CIHigh)
	assert.LessOrEqual(t, res[0].CIHigh, 1.0)
	assert.GreaterOrEqual(t, res[0].CILow, 0.0)
	assert.Contains(t, res[0].Interval, "poisson bootstrap")
}

// Tune picks clip, τ and λ by estimated MSE and says which. The MSE
// criterion measures bias against the unbiased estimate (ips for the clip,
// dr for τ and λ), so a tuned estimate must stay within three of its
// standard errors (read off its own bootstrap interval, (high − low)/3.92;
// 0.006–0.012 here) of that estimate on the same sample. Distance to the
// truth is the coverage test's business: this seed's sample sits 2–4
// standard errors below it for every estimator, the logger's mean too.
func TestTune(t *testing.T) {
	src := synthSource{N: 20_000, Seed: 5, Vector: true}
	res, err := replay.Evaluate(context.Background(), src, synthTargets(4),
		replay.Opts{Estimators: []replay.Estimator{replay.ClippedIPS, replay.SwitchDR, replay.DROS}, Tune: true, Bootstrap: 100})
	require.NoError(t, err)
	ref, err := replay.Evaluate(context.Background(), src, synthTargets(4),
		replay.Opts{Estimators: []replay.Estimator{replay.IPS, replay.DR}, Bootstrap: -1})
	require.NoError(t, err)
	refs := map[string]float64{}
	for _, r := range ref[1:] {
		refs[r.Policy+"/"+string(r.Estimator)] = r.Value
	}
	res = res[1:]
	require.Len(t, res, 6)
	prefix := map[replay.Estimator]string{replay.ClippedIPS: "clip=", replay.SwitchDR: "tau=", replay.DROS: "lambda="}
	for _, r := range res {
		want := refs[r.Policy+"/dr"]
		if r.Estimator == replay.ClippedIPS {
			want = refs[r.Policy+"/ips"]
		}
		se := (r.CIHigh - r.CILow) / 3.92
		t.Logf("%-6s %-11s %-12s value %.4f unbiased %.4f se %.4f truth %.4f", r.Policy, r.Estimator, r.Param, r.Value, want, se, synthTruth[r.Policy])
		assert.True(t, r.Tuned, "%s/%s", r.Policy, r.Estimator)
		assert.True(t, strings.HasPrefix(r.Param, prefix[r.Estimator]), "%s/%s: param %q", r.Policy, r.Estimator, r.Param)
		assert.InDelta(t, want, r.Value, 3*se, "%s/%s", r.Policy, r.Estimator)
	}
	_, err = replay.Evaluate(context.Background(), tinyLog(), []replay.Target{{Policy: &fixed{probs: map[string]float64{"a": 1}}}},
		replay.Opts{Tune: true, TuneGrid: []float64{-1}, Folds: 1})
	assert.ErrorContains(t, err, "option tune grid")
}

// Segments partition the rows: their counts add up to the whole log, and
// the row-weighted average of their on-policy and ips values is the
// overall one (both are means over rows).
func TestSegments(t *testing.T) {
	res, err := replay.Evaluate(context.Background(), synthSource{N: 3000, Seed: 2}, synthTargets(1)[:1],
		replay.Opts{Estimators: []replay.Estimator{replay.IPS}, Bootstrap: 20,
			Segment: func(r *decision.Record) string { return r.Request.Features.Task }})
	require.NoError(t, err)
	require.Len(t, res, 2*(1+len(synthTasks)), "overall block, then one per task")
	assert.Empty(t, res[0].Segment)
	var n int64
	var sumLogged, sumIPS float64
	segs := []string{}
	for i := 2; i < len(res); i += 2 {
		lg, ips := res[i], res[i+1]
		require.Equal(t, replay.LoggedPolicy, lg.Policy, "each block starts with the logger")
		assert.Equal(t, lg.Segment, ips.Segment)
		assert.Equal(t, lg.N, ips.N)
		segs = append(segs, lg.Segment)
		n += lg.N
		sumLogged += lg.Value * float64(lg.N)
		sumIPS += ips.Value * float64(ips.N)
		assert.LessOrEqual(t, ips.CILow, ips.CIHigh)
	}
	assert.Equal(t, []string{"chat", "code", "math"}, segs, "sorted")
	assert.EqualValues(t, 3000, n)
	assert.InDelta(t, res[0].Value, sumLogged/float64(n), 1e-12)
	assert.InDelta(t, res[1].Value, sumIPS/float64(n), 1e-12)
}
