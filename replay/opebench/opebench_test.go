package opebench_test

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/replay/opebench"
	"github.com/routelab/routelab/sim"
)

// TestCoverageAgainstSimulatorTruth: on `tasks`, logged by ε-greedy
// (ε = 0.2), the nominal 95% intervals of every estimator that reports one
// cover the simulator's true value of a trained, frozen linucb and of
// random. By default 20 repetitions of 1500 requests with a bar of 0.75: for a true
// coverage of 0.95, fewer than 15 hits in 20 has probability 3e-4. With
// ROUTELAB_COVERAGE_REPS=100 (make test-long) the bar is the 0.90;
// measured (100 × 3000 requests): 0.91–0.98 for every estimator with an
// interval, and replay — whose uniform-logging assumption fails here —
// reports none (its biased value covered the truth 10% of the time when
// it had one). At 1000 requests DM's ridge model is still biased for
// linucb's rarely logged arms (coverage 0.65 measured): the bar needs n.
func TestCoverageAgainstSimulatorTruth(t *testing.T) {
	reps, requests, boot, bar := 20, 1500, 100, 0.75
	if s := os.Getenv("ROUTELAB_COVERAGE_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("ROUTELAB_COVERAGE_REPS=%q: want a positive integer", s)
		}
		reps, requests, boot, bar = n, 3000, 100, 0.90
	} else if testing.Short() || raceEnabled {
		// Single-goroutine statistics: the race detector adds nothing but a
		// 20× slowdown. make test-long runs the 100-repetition version.
		t.Skip("statistical run: skipped under -short and -race; see make test-long")
	}
	sc, err := sim.LoadScenario("tasks")
	if err != nil {
		t.Fatal(err)
	}
	res, err := opebench.Run(context.Background(), opebench.Opts{
		Scenario: sc, Registry: policy.NewBuiltinRegistry(), Targets: []string{"random", "linucb"},
		Seeds: reps, Requests: requests, Eval: replay.Opts{Bootstrap: boot},
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range res.Rows {
		seen[r.Target] = true
		cov := math.NaN()
		if r.Coverage != nil {
			cov = *r.Coverage
		}
		t.Logf("%-7s %-12s truth %.4f bias %+.4f rmse %.4f coverage %.2f (%d intervals)", r.Target, r.Estimator, r.Truth, r.Bias, r.RMSE, cov, r.Intervals)
		if r.N != reps {
			t.Errorf("%s/%s: %d estimates, want %d", r.Target, r.Estimator, r.N, reps)
		}
		if r.Estimator == replay.Replay {
			if r.Intervals != 0 {
				t.Errorf("%s/replay: %d intervals on an ε-greedy log, want none", r.Target, r.Intervals)
			}
			continue
		}
		if r.Intervals != reps {
			t.Errorf("%s/%s: %d intervals, want %d", r.Target, r.Estimator, r.Intervals, reps)
		}
		if cov < bar {
			t.Errorf("%s/%s: coverage %.2f below %.2f over %d repetitions", r.Target, r.Estimator, cov, bar, reps)
		}
		// The unbiased estimators' mean error is within 4 standard errors
		// of zero (RMSE ≈ their standard deviation).
		switch r.Estimator {
		case replay.IPS, replay.DR, replay.OnPolicy:
			if se := r.RMSE / math.Sqrt(float64(reps)); math.Abs(r.Bias) > 4*se {
				t.Errorf("%s/%s: bias %+.4f beyond 4 standard errors (%.4f)", r.Target, r.Estimator, r.Bias, se)
			}
		}
	}
	for _, want := range []string{replay.LoggedPolicy, "random", "linucb"} {
		if !seen[want] {
			t.Errorf("no rows for %s", want)
		}
	}
}

func TestOptsErrors(t *testing.T) {
	sc, err := sim.LoadScenario("steady")
	if err != nil {
		t.Fatal(err)
	}
	reg := policy.NewBuiltinRegistry()
	for name, o := range map[string]opebench.Opts{
		"no scenario":   {Registry: reg},
		"no registry":   {Scenario: sc},
		"bad logger":    {Scenario: sc, Registry: reg, Logger: "nope", Seeds: 1, Requests: 10},
		"bad target":    {Scenario: sc, Registry: reg, Targets: []string{"nope"}, Seeds: 1, Requests: 10},
		"no intervals":  {Scenario: sc, Registry: reg, Eval: replay.Opts{Bootstrap: -1}},
		"negative runs": {Scenario: sc, Registry: reg, Seeds: -1},
	} {
		if _, err := opebench.Run(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
