package experiments

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smallSpec is 2 policies × 2 scenarios × 3 seeds of a few thousand
// requests: seconds under -race.
func smallSpec(t *testing.T) *Spec {
	t.Helper()
	s, err := ParseSpec([]byte(`
name: small
policies: [random, {label: TS, spec: thompson}]
scenarios: [steady, tasks]
seeds: [11, 12, 13]
requests: 2500
`), "")
	require.NoError(t, err)
	return s
}

func zeroWallClock(r *sim.Result) *sim.Result {
	c := *r
	c.DecisionsPerSecond = 0
	return &c
}

// TestRunEqualsIndependentRuns: every cell is exactly the sim.Run a user
// would make by hand with the same scenario, seed, policy seed and encoder.
func TestRunEqualsIndependentRuns(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	res, err := Run(context.Background(), smallSpec(t), Opts{Registry: reg, Parallel: 2})
	require.NoError(t, err)
	require.Len(t, res.Cells, 12)
	i := 0
	for _, scName := range []string{"steady", "tasks"} {
		for _, p := range []struct{ label, spec string }{{"random", "random"}, {"TS", "thompson"}} {
			for _, seed := range []uint64{11, 12, 13} {
				c := res.Cells[i]
				i++
				require.Equal(t, scName, c.Scenario)
				require.Equal(t, p.label, c.Policy)
				require.Equal(t, seed, c.Seed)
				assert.Equal(t, sim.PolicySeed(seed), c.PolicySeed)

				sc, err := sim.LoadScenario(scName)
				require.NoError(t, err)
				pol, err := reg.NewFromString(p.spec + "=seed:" + strconv.FormatUint(sim.PolicySeed(seed), 10))
				require.NoError(t, err)
				enc, err := DefaultEncoder(sc)
				require.NoError(t, err)
				want, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: pol, Seed: seed, Requests: 2500, Encoder: enc})
				require.NoError(t, err)
				assert.Equal(t, zeroWallClock(want), zeroWallClock(c.Result), "cell %s/%s/%d", scName, p.label, seed)
			}
		}
	}
}

// TestRunParallelismInvariant: one worker or many, the same numbers.
func TestRunParallelismInvariant(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	var calls []int
	one, err := Run(context.Background(), smallSpec(t), Opts{Registry: reg, Parallel: 1, Progress: func(done, total int) {
		assert.Equal(t, 12, total)
		calls = append(calls, done)
	}})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, calls, "progress")
	many, err := Run(context.Background(), smallSpec(t), Opts{Registry: reg, Parallel: 5})
	require.NoError(t, err)
	require.Len(t, many.Cells, len(one.Cells))
	for i := range one.Cells {
		a, b := one.Cells[i], many.Cells[i]
		a.Result, b.Result = zeroWallClock(a.Result), zeroWallClock(b.Result)
		assert.Equal(t, a, b, "cell %d", i)
	}
	assert.Equal(t, 1, one.Workers)
	assert.Equal(t, 5, many.Workers)
}

// TestRunCommonRandomNumbers: on one seed both policies see the same
// oracle (same requests, same latent draws) — what makes the comparison
// paired — while different seeds differ. (Equal up to summation rounding:
// the oracle is summed in completion order, which depends on the policy.)
func TestRunCommonRandomNumbers(t *testing.T) {
	res := smallResults(t)
	steadyRandom, steadyTS := res.Cells[0:3], res.Cells[3:6]
	for i := range 3 {
		assert.InDelta(t, steadyRandom[i].Result.OracleMeanReward, steadyTS[i].Result.OracleMeanReward, 1e-12, "seed %d", steadyRandom[i].Seed)
	}
	assert.Greater(t, abs(steadyRandom[0].Result.OracleMeanReward-steadyRandom[1].Result.OracleMeanReward), 1e-6, "seeds differ")
}

// TestPairedDetectsThompsonOverRandom: on steady Thompson sampling beats
// uniform random by a wide margin (≈ 0.98 vs 0.92 of the oracle); five
// seeds of 3000 requests must call it significantly better on reward/oracle
// and regret, and the baseline has no comparison with itself.
func TestPairedDetectsThompsonOverRandom(t *testing.T) {
	s, err := ParseSpec([]byte(`
name: ts-vs-random
policies: [random, thompson]
scenarios: [steady]
seeds: {count: 5}
requests: 3000
metrics: [oracle_ratio, regret, mean_reward]
`), "")
	require.NoError(t, err)
	res, err := Run(context.Background(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	a, err := Analyze(res)
	require.NoError(t, err)
	for _, m := range []string{"oracle_ratio", "regret", "mean_reward"} {
		c, ok := a.Comparison("steady", "thompson", m)
		require.True(t, ok, m)
		assert.Equal(t, Better, c.Verdict, "%s: Δ %v [%v, %v]", m, c.Diff.Mean, c.Diff.Lo, c.Diff.Hi)
	}
	c, _ := a.Comparison("steady", "thompson", "regret")
	assert.Negative(t, c.Diff.Hi, "regret difference interval below 0")
	_, ok := a.Comparison("steady", "random", "regret")
	assert.False(t, ok, "no comparison of the baseline with itself")
	assert.Equal(t, "thompson", a.Best("steady"))

	// The paired interval is narrower than the unpaired one would be.
	ts, _ := a.Summary("steady", "thompson", "mean_reward")
	rnd, _ := a.Summary("steady", "random", "mean_reward")
	cm, _ := a.Comparison("steady", "thompson", "mean_reward")
	assert.Less(t, cm.Diff.SD, ts.SD+rnd.SD)
}

// TestBonferroni: with the correction, the comparisons of three policies
// with the baseline use 1 − 0.05/2 = 97.5% intervals, exactly Compare's at
// that level.
func TestBonferroni(t *testing.T) {
	s, err := ParseSpec([]byte(`
name: bonf
policies: [random, thompson, ucb1]
scenarios: [steady]
seeds: {count: 4}
requests: 1500
metrics: [regret]
report: {correction: bonferroni}
`), "")
	require.NoError(t, err)
	res, err := Run(context.Background(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	a, err := Analyze(res)
	require.NoError(t, err)
	assert.InDelta(t, 0.975, a.ComparisonLevel, 1e-12)
	m, _ := MetricByName("regret")
	want, err := Compare(values(res.Cells[4:8], m), values(res.Cells[0:4], m), 0.975, false)
	require.NoError(t, err)
	got, ok := a.Comparison("steady", "thompson", "regret")
	require.True(t, ok)
	assert.Equal(t, want, got.Paired)
	plain, err := Compare(values(res.Cells[4:8], m), values(res.Cells[0:4], m), 0.95, false)
	require.NoError(t, err)
	assert.Greater(t, got.Diff.HalfWidth(), plain.Diff.HalfWidth(), "corrected intervals are wider")
	sm, _ := a.Summary("steady", "thompson", "regret")
	assert.Equal(t, 0.95, sm.Level, "summaries keep the stated level")
}

func TestRunErrors(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	_, err := Run(context.Background(), smallSpec(t), Opts{})
	assert.ErrorContains(t, err, "no policy registry")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Run(ctx, smallSpec(t), Opts{Registry: reg})
	assert.ErrorIs(t, err, context.Canceled)

	// Cancelled mid-run, from the progress callback after the first cell.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, err = Run(ctx, smallSpec(t), Opts{Registry: reg, Parallel: 1, Progress: func(done, _ int) {
		if done == 1 {
			cancel()
		}
	}})
	assert.ErrorIs(t, err, context.Canceled)

	boom := errors.New("boom")
	_, err = Run(context.Background(), smallSpec(t), Opts{Registry: reg, Parallel: 2, Encoder: func(sc *sim.Scenario) (policy.Encoder, error) {
		if sc.Name == "tasks" {
			return nil, boom
		}
		return DefaultEncoder(sc)
	}})
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), `scenario "tasks"`, "the error names the cell")
}

func BenchmarkRunSmall(b *testing.B) {
	reg := policy.NewBuiltinRegistry()
	for b.Loop() {
		s, err := ParseSpec([]byte(`
name: bench
policies: [random, thompson]
scenarios: [steady]
seeds: {count: 4}
requests: 2000
`), "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Run(context.Background(), s, Opts{Registry: reg}); err != nil {
			b.Fatal(fmt.Errorf("run: %w", err))
		}
	}
	b.ReportAllocs()
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
