package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/sim"
)

// simWithLog is "routelab sim --json --log DIR": the run's result and its
// decision log.
func simWithLog(t *testing.T, scenario, spec string, seed uint64, n int) (*sim.Result, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: dir, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, runSim(context.Background(), simFlags{scenario: scenario, policy: spec, seed: seed, requests: n, json: true}, w, &out))
	require.NoError(t, w.Close())
	var res sim.Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	return &res, dir
}

func resimFlags(dir, policies string, seed uint64) replayFlags {
	return replayFlags{logs: []string{dir}, policies: policies, seed: seed, resimulate: true, json: true,
		estimators: "all", level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2, traffic: "logged", clock: "auto"}
}

func resimulate(t *testing.T, fl replayFlags) []*sim.Result {
	t.Helper()
	var out, errOut bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut), errOut.String())
	var res []*sim.Result
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	return res
}

// The issue's loop: "routelab sim --log" of scenario S, then "routelab
// replay --resimulate" of that log with the same policy, seed and
// --scenario S, gives the original run's metrics back: the log stores
// times to the microsecond, tenants as hashes (recognised again), and no
// completion length for failed requests. Tolerances: mean, expected and
// oracle reward and failure rate within 0.005, latency p50 within 2% and
// p99 within 5%, cost within 2%, arm shares within 0.02, task counts equal.
func TestResimulateReproducesSimLog(t *testing.T) {
	for _, tc := range []struct {
		scenario, spec string
		n              int
	}{
		{"tasks", "linucb", 4000},
		{"outage", "thompson", 10000},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			orig, dir := simWithLog(t, tc.scenario, tc.spec, 4, tc.n)
			fl := resimFlags(dir, tc.spec, 4)
			fl.scenario = tc.scenario
			res := resimulate(t, fl)
			require.Len(t, res, 1)
			got := res[0]
			t.Logf("%s/%s: mean reward %.4f → %.4f, failure %.4f → %.4f, p50 %.1f → %.1f ms, p99 %.1f → %.1f ms, cost %.4f → %.4f",
				tc.scenario, tc.spec, orig.MeanReward, got.MeanReward, orig.FailureRate, got.FailureRate,
				orig.LatencyP50MS, got.LatencyP50MS, orig.LatencyP99MS, got.LatencyP99MS, orig.CostTotal, got.CostTotal)
			assert.Equal(t, tc.spec, got.Policy)
			assert.Equal(t, tc.scenario+"+logged-traffic", got.Scenario)
			assert.Equal(t, orig.Requests, got.Requests)
			assert.InDelta(t, orig.MeanReward, got.MeanReward, 0.005, "mean reward")
			assert.InDelta(t, orig.ExpectedMeanReward, got.ExpectedMeanReward, 0.005, "expected mean reward")
			assert.InDelta(t, orig.OracleMeanReward, got.OracleMeanReward, 0.005, "oracle mean reward")
			assert.InDelta(t, orig.FailureRate, got.FailureRate, 0.005, "failure rate")
			assert.InEpsilon(t, orig.LatencyP50MS, got.LatencyP50MS, 0.02, "p50")
			assert.InEpsilon(t, orig.LatencyP99MS, got.LatencyP99MS, 0.05, "p99")
			assert.InEpsilon(t, orig.CostTotal, got.CostTotal, 0.02, "cost")
			for arm, s := range orig.ArmShares {
				assert.InDelta(t, s, got.ArmShares[arm], 0.02, "share of %s", arm)
			}
			for task, r := range orig.Tasks {
				assert.Equal(t, r.Requests, got.Tasks[task].Requests, "requests of task %s", task)
			}
			assert.InDelta(t, orig.Windows[1].StartSeconds, got.Windows[1].StartSeconds, 1e-5, "arrivals at the logged times")
		})
	}
}

// Several policies on one log: one result each, in order, ranked as their
// own simulator runs rank on the same seed; table output with notes.
func TestResimulateSeveralPoliciesAndTable(t *testing.T) {
	_, dir := simWithLog(t, "tasks", "random", 2, 6000)
	origReward := map[string]float64{}
	for _, spec := range []string{"random", "linucb"} {
		r, _ := simWithLog(t, "tasks", spec, 2, 6000)
		origReward[spec] = r.ExpectedMeanReward
	}
	fl := resimFlags(dir, "random,linucb", 2)
	fl.scenario = "tasks"
	res := resimulate(t, fl)
	require.Len(t, res, 2)
	assert.Equal(t, "random", res[0].Policy)
	assert.Equal(t, "linucb", res[1].Policy)
	for _, r := range res {
		assert.InDelta(t, origReward[r.Policy], r.ExpectedMeanReward, 0.005, r.Policy)
	}
	assert.Greater(t, res[1].ExpectedMeanReward, res[0].ExpectedMeanReward+0.05, "linucb beats random on tasks")

	// Calibrated providers (no --scenario), table output.
	fl = resimFlags(dir, "random", 2)
	fl.json = false
	var out bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}))
	s := out.String()
	assert.Contains(t, s, "calibrated+logged-traffic")
	assert.Contains(t, s, "note: traffic: 6000 of the 6000 logged requests")
	assert.Contains(t, s, "note: providers fitted to the logs")
	assert.Contains(t, s, "mean reward")

	// --traffic fitted keeps the old mode.
	fl.traffic, fl.requests, fl.json = "fitted", 1000, true
	res = resimulate(t, fl)
	assert.Equal(t, 1000, res[0].Requests)
	assert.Equal(t, "resimulated", res[0].Scenario)

	// --requests takes the first N logged requests.
	fl = resimFlags(dir, "random", 2)
	fl.scenario, fl.requests = "tasks", 500
	res = resimulate(t, fl)
	assert.Equal(t, 500, res[0].Requests)
}

func TestResimulateBadInput(t *testing.T) {
	_, dir := simWithLog(t, "tasks", "random", 1, 300)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*replayFlags)
		want string
	}{
		{"unknown task for the scenario", func(f *replayFlags) { f.scenario = "steady" }, `scenario "steady+logged-traffic" does not serve the logged task types "math" (`},
		{"bad traffic", func(f *replayFlags) { f.traffic = "wild" }, `--traffic "wild": want logged or fitted`},
		{"bad clock", func(f *replayFlags) { f.clock = "wall" }, "--clock: clock \"wall\""},
		{"clock with fitted", func(f *replayFlags) { f.traffic, f.clock = "fitted", "logs" }, "--clock goes with --traffic logged"},
		{"too many requests", func(f *replayFlags) { f.scenario, f.requests = "tasks", 301 }, "--requests 301: the logs hold 300 requests"},
		{"scenario clock before the logs", func(f *replayFlags) {
			f.scenario, f.clock = writeLateScenario(t), "scenario"
		}, "is before the start"},
		{"no resimulate", func(f *replayFlags) { f.resimulate, f.clock = false, "logs" }, "--traffic, --clock, --tenant-salt and --route-forced go with --resimulate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fl := resimFlags(dir, "random", 1)
			tc.edit(&fl)
			err := runReplay(ctx, fl, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	// A log directory without decisions.
	empty := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(empty, "decisions"), 0o755))
	fl := resimFlags(empty, "random", 1)
	fl.scenario = "tasks"
	err := runReplay(ctx, fl, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no decisions")
}

// writeLateScenario writes the tasks scenario starting a year after its
// logs were written.
func writeLateScenario(t *testing.T) string {
	t.Helper()
	b, err := sim.BuiltinScenarioYAML("tasks")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "late.yaml")
	require.NoError(t, os.WriteFile(path, append(b, []byte("start: 2027-01-05T00:00:00Z\n")...), 0o644))
	return path
}

// With the wrong tenant salt the scenario's tenants are not recognised:
// the run goes on (no tenant modifier applies) and says so.
func TestResimulateWarnsOnUnknownTenants(t *testing.T) {
	_, dir := simWithLog(t, "tasks", "random", 1, 300)
	fl := resimFlags(dir, "random", 1)
	fl.scenario, fl.tenantSalt = "tasks", "not-the-writers-salt"
	var out, errOut bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut))
	assert.Contains(t, errOut.String(), "warning: 300 requests have a tenant scenario tasks does not list (wrong --tenant-salt?)")
	fl.json = false
	out.Reset()
	require.NoError(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "note: 300 requests have a tenant")
	// The right (empty) salt recognises them.
	fl.tenantSalt = ""
	out.Reset()
	require.NoError(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}))
	assert.NotContains(t, out.String(), "have a tenant")
}
