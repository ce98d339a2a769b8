package replay_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/internal/synthlog"
	"github.com/routelab/routelab/replay"
)

// The synthetic world is package internal/synthlog's; these names keep
// the tests short.
var (
	synthTasks = synthlog.Tasks
	synthArms  = synthlog.Arms
	synthMean  = synthlog.Mean
)

type (
	taskPolicy  = synthlog.TaskPolicy
	synthSource = synthlog.Source
)

func taskIndex(task string) int           { return synthlog.TaskIndex(task) }
func loggerTable() [3][4]float64          { return synthlog.LoggerTable() }
func oracleTable() [3][4]float64          { return synthlog.OracleTable() }
func softTable() [3][4]float64            { return synthlog.SoftTable() }
func trueValue(tab [3][4]float64) float64 { return synthlog.TrueValue(tab) }

// synthLog materialises a synthetic log (for tests that want a slice).
func synthLog(t testing.TB, n int64, seed uint64) replay.Records {
	var out replay.Records
	require.NoError(t, synthSource{N: n, Seed: seed}.Scan(context.Background(), func(r *decision.Record) error {
		c := *r
		c.Decision.Probs = append([]float64(nil), r.Decision.Probs...)
		out = append(out, c)
		return nil
	}))
	return out
}

func synthTargets(seed uint64) []replay.Target {
	return []replay.Target{
		{Name: "oracle", Policy: &taskPolicy{Label: "oracle", Table: oracleTable(), Rng: rand.New(rand.NewPCG(seed, 1))}},
		{Name: "soft", Policy: &taskPolicy{Label: "soft", Table: softTable(), Rng: rand.New(rand.NewPCG(seed, 2))}},
	}
}

var synthTruth = map[string]float64{"oracle": trueValue(oracleTable()), "soft": trueValue(softTable()), replay.LoggedPolicy: trueValue(loggerTable())}

// TestSyntheticAccuracy: 100k rows logged ε-greedily; with Open Bandit
// Pipeline's defaults (clip = τ = ∞, λ = 0: clipped-ips = ips, switch-dr =
// dr, dr-os = dm) every estimator but replay lands near the exact value of
// both targets, and the logged row near the logger's own value. The reward
// model is the default ridge (cross-fitted, two folds) on the one-hot task
// vector, or the task means without one.
//
// Tolerances are three standard errors, read off the 95% intervals of this
// run (half-width/1.96, relative): ips/snips ≈ 1.0% → 3%; the model-based
// ones ≈ 0.65% → 2%; the logger's mean reward ≈ 0.27% → 1%. Measured
// errors (seed 7): at most 0.47% (oracle ips), 0.31% (soft dm), 0.06%.
// The other settings of clip/τ/λ are exercised by TestBootstrapCoverage.
func TestSyntheticAccuracy(t *testing.T) {
	t.Parallel() // long under -race: overlap with the other statistical tests
	for _, vector := range []bool{true, false} {
		t.Run(fmt.Sprintf("vector=%v", vector), func(t *testing.T) {
			res, err := replay.Evaluate(context.Background(), synthSource{N: 100_000, Seed: 7, Vector: vector}, synthTargets(3), replay.Opts{Bootstrap: -1})
			require.NoError(t, err)
			for _, r := range res {
				truth := synthTruth[r.Policy]
				rel := (r.Value - truth) / truth
				t.Logf("%-6s %-11s value %.4f truth %.4f rel.err %+.2f%% ess %.0f", r.Policy, r.Estimator, r.Value, truth, 100*rel, r.ESS)
				switch r.Estimator {
				case replay.OnPolicy:
					assert.Less(t, math.Abs(rel), 0.01, "logged value: relative error %.4f", rel)
					continue
				case replay.DR, replay.SNDR, replay.DM, replay.SwitchDR, replay.DROS:
					assert.Less(t, math.Abs(rel), 0.02, "%s/%s: relative error %.4f", r.Policy, r.Estimator, rel)
				case replay.Replay:
					// Logged non-uniformly: replay is biased, and says so.
					assert.Contains(t, fmt.Sprint(r.Warnings), "non-uniformly")
				default:
					assert.Less(t, math.Abs(rel), 0.03, "%s/%s: relative error %.4f", r.Policy, r.Estimator, rel)
				}
				assert.InDelta(t, 1, r.MeanWeight, 0.02, "mean importance weight")
				assert.EqualValues(t, 100_000, r.N)
			}
		})
	}
}

func uniformTable() (tab [3][4]float64) {
	for t := range tab {
		for a := range tab[t] {
			tab[t][a] = 0.25
		}
	}
	return tab
}

// clippedValue is the estimand of clipped IPS with cap c, E[min(w, c)·r]
// under the logger: below the value wherever a weight exceeds c.
func clippedValue(tab [3][4]float64, c float64) float64 {
	mu := loggerTable()
	v := 0.0
	for t := range tab {
		for a := range tab[t] {
			v += mu[t][a] * math.Min(tab[t][a]/mu[t][a], c) * synthMean[t][a] / 3
		}
	}
	return v
}

// coverageReps is the number of repetitions of TestBootstrapCoverage:
// ROUTELAB_COVERAGE_REPS (the acceptance run uses 100), else 20.
func coverageReps(t *testing.T) int {
	if s := os.Getenv("ROUTELAB_COVERAGE_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "ROUTELAB_COVERAGE_REPS")
		return n
	}
	return 20
}

// TestBootstrapCoverage: over seeded repetitions of 2,000 rows logged
// ε-greedily (ε = 0.3, weights up to 13.3), the nominal 95% intervals of
// every estimator but replay (biased on a non-uniform log, and it says so)
// cover the exact value, for a deterministic target (the per-task best
// arm, all of whose choices the logger makes with probability 0.075) and
// the uniform one, both with OBP's defaults and with clip, τ and λ that
// bite (5, 5, 10). Clipped IPS with a finite cap is biased by design: its
// interval is checked against what it estimates, E[min(w, 5)·r].
//
// The reward model is refitted in every resample; with it held fixed the
// dm, switch-dr and dr-os intervals covered 5–76% of the time.
//
// ROUTELAB_COVERAGE_REPS=100 go test -run BootstrapCoverage -v ./replay
// is the acceptance run (≥ 90% for every estimator, all six
// configurations, two of them 60,000-row logs that take the grouped
// bootstrap (measured there 0.91–0.95); measured 0.90–0.98, the lowest being ips and clipped-ips
// of the deterministic target, whose weights are 13.3 or 0). To keep
// make test (with -race) fast, the default is 20 repetitions of the
// configuration with biting clip/τ/λ on vector features; there the
// binomial standard error at the measured worst coverage 0.90 is
// √(.9·.1/20) = 6.7%, so the bar is 75% (2.2 standard errors below it,
// while the pre-fix 5–76% coverages of dm/switch-dr/dr-os fail it).
func TestBootstrapCoverage(t *testing.T) {
	t.Parallel() // long under -race: overlap with the other statistical tests
	reps := coverageReps(t)
	bar, full := 0.90, reps >= 100
	if !full {
		bar = 0.75
	}
	ests := []replay.Estimator{replay.IPS, replay.ClippedIPS, replay.SNIPS, replay.DM, replay.DR, replay.SNDR, replay.SwitchDR, replay.DROS}
	configs := []struct {
		name string
		opts replay.Opts
		clip float64
	}{
		{"obp-defaults", replay.Opts{}, math.Inf(1)},
		{"clip5-tau5-lambda10", replay.Opts{Clip: 5, Tau: 5, Lambda: 10}, 5},
	}
	tables := map[string][3][4]float64{"oracle": oracleTable(), "uniform": uniformTable()}
	type run struct {
		vector bool
		rows   int64
	}
	// 60,000 rows with vectors take the grouped bootstrap (ridge refitted
	// from per-group sufficient statistics); 2,000 rows resample rows.
	runs := []run{{false, 2000}, {true, 2000}, {true, 60_000}}
	for _, cf := range configs {
		for _, rn := range runs {
			vector := rn.vector
			if !full && (cf.clip != 5 || !vector || rn.rows > 2000) {
				continue
			}
			t.Run(fmt.Sprintf("%s/vector=%v/rows=%d", cf.name, vector, rn.rows), func(t *testing.T) {
				covered := map[string]int{}
				for rep := 0; rep < reps; rep++ {
					targets := []replay.Target{
						{Name: "oracle", Policy: &taskPolicy{Label: "oracle", Table: oracleTable(), Rng: rand.New(rand.NewPCG(uint64(rep), 1))}},
						{Name: "uniform", Policy: &taskPolicy{Label: "uniform", Table: uniformTable(), Rng: rand.New(rand.NewPCG(uint64(rep), 2))}},
					}
					o := cf.opts
					o.Estimators, o.Seed = ests, uint64(rep)
					res, err := replay.Evaluate(context.Background(), synthSource{N: rn.rows, Seed: uint64(1000 + rep), Vector: vector}, targets, o)
					require.NoError(t, err)
					for _, r := range res {
						truth := synthTruth[r.Policy]
						if r.Policy != replay.LoggedPolicy {
							truth = trueValue(tables[r.Policy])
						}
						if r.Estimator == replay.ClippedIPS {
							truth = clippedValue(tables[r.Policy], cf.clip)
						}
						if r.CILow <= truth && truth <= r.CIHigh {
							covered[r.Policy+"/"+string(r.Estimator)]++
						}
					}
				}
				keys := []string{replay.LoggedPolicy + "/" + string(replay.OnPolicy)}
				for _, p := range []string{"oracle", "uniform"} {
					for _, e := range ests {
						keys = append(keys, p+"/"+string(e))
					}
				}
				for _, k := range keys {
					cov := float64(covered[k]) / float64(reps)
					t.Logf("coverage %-20s %.2f (%d reps)", k, cov, reps)
					assert.GreaterOrEqual(t, cov, bar, "%s: coverage %.2f", k, cov)
				}
			})
		}
	}
}
