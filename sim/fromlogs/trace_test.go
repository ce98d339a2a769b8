package fromlogs_test

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
	"github.com/routelab/routelab/sim/fromlogs"
)

func newSpec(t testing.TB, spec string, seed uint64) policy.Policy {
	t.Helper()
	sp, err := policy.ParseSpec(spec)
	require.NoError(t, err)
	if _, ok := sp.Params["seed"]; !ok {
		sp.Params["seed"] = strconv.FormatUint(sim.PolicySeed(seed), 10)
	}
	p, err := policy.NewBuiltinRegistry().New(sp)
	require.NoError(t, err)
	return p
}

// logRun runs spec on sc and returns its result and its log (in
// completion order, as a decision log is written).
func logRun(t testing.TB, sc *sim.Scenario, spec string, seed uint64, n int, enc policy.Encoder) (*sim.Result, replay.Records) {
	t.Helper()
	sink := &collect{}
	res, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: newSpec(t, spec, seed), Seed: seed, Requests: n, Sink: sink, Encoder: enc})
	require.NoError(t, err)
	for i := range sink.Recs {
		sink.Recs[i].Request.Features.Vector = nil // the sink does not own it
	}
	return res, replay.Records(sink.Recs)
}

func taskEncoder(t testing.TB, sc *sim.Scenario) policy.Encoder {
	t.Helper()
	enc, err := policy.NewEncoder(policy.EncoderSpec{Intercept: true, Tasks: sc.Tasks(), TokenBuckets: policy.DefaultTokenBuckets, HourBuckets: 4, TenantBuckets: policy.DefaultTenantBuckets})
	require.NoError(t, err)
	return enc
}

// The trace of a log holds the logged requests in arrival order: the same
// count, times, tasks, tenants and lengths as the run that wrote the log.
func TestBuildTraceReproducesArrivals(t *testing.T) {
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	const n = 3000
	res, recs := logRun(t, sc, "thompson", 2, n, nil)
	byID := map[string]*decision.Record{}
	for i := range recs {
		byID[recs[i].Request.ID] = &recs[i]
	}
	tr, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{})
	require.NoError(t, err)
	require.Equal(t, n, tr.Len())
	assert.False(t, tr.First().Before(sc.StartTime()))
	tasks := map[string]int{}
	for task, r := range res.Tasks {
		tasks[task] = r.Requests
	}
	assert.Equal(t, tasks, tr.Tasks(), "task mix")
	assert.Len(t, tr.Tenants(), 2, "acme and globex")

	view, err := tr.Since(sc.StartTime())
	require.NoError(t, err)
	var req sim.TraceRequest
	for i := range n {
		req = sim.TraceRequest{}
		view.Request(i, &req)
		want := byID["r"+strconv.Itoa(i)] // the simulator's ids are in arrival order
		require.NotNil(t, want)
		f := &want.Request.Features
		require.Equal(t, f.Time.Sub(sc.StartTime()), req.At, "request %d arrival", i)
		require.Equal(t, [3]any{f.Task, f.Tenant, f.PromptTokens}, [3]any{req.Features.Task, req.Features.Tenant, req.Features.PromptTokens}, "request %d", i)
		require.Equal(t, want.Outcome.TokensOut, req.CompletionTokens, "request %d completion", i)
	}

	// Tenants may be renamed (e.g. from their logged hashes).
	tr2, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{Tenants: map[string]string{"acme": "ACME"}})
	require.NoError(t, err)
	assert.Equal(t, tr.Tenants()["acme"], tr2.Tenants()["ACME"])
	assert.Equal(t, tr.Tenants()["globex"], tr2.Tenants()["globex"])
	assert.Equal(t, tr.Tenants()["globex"], tr2.RequestsOutside([]string{"ACME"}), "globex is outside")
	assert.Zero(t, tr2.RequestsOutside([]string{"ACME", "globex"}))

	// Logged hashes map back to the names with the logger's salt.
	hashed := append(replay.Records(nil), recs...)
	for i := range hashed {
		hashed[i].Request.Features.Tenant = decisionlog.HashTenant("pepper", hashed[i].Request.Features.Tenant)
	}
	tr3, err := fromlogs.BuildTrace(context.Background(), hashed, fromlogs.TraceOpts{Tenants: fromlogs.HashedTenants("pepper", sc.Tenants())})
	require.NoError(t, err)
	assert.Equal(t, tr.Tenants(), tr3.Tenants())
	assert.Nil(t, fromlogs.HashedTenants("pepper", nil))
}

// metricsClose asserts that a re-simulation's headline metrics are within
// the stated tolerances of the original run's.
func metricsClose(t *testing.T, label string, want, got *sim.Result) {
	t.Helper()
	assert.Equal(t, want.Requests, got.Requests, label)
	assert.InDelta(t, want.MeanReward, got.MeanReward, 0.005, "%s: mean reward", label)
	assert.InDelta(t, want.ExpectedMeanReward, got.ExpectedMeanReward, 0.005, "%s: expected mean reward", label)
	assert.InDelta(t, want.OracleMeanReward, got.OracleMeanReward, 0.005, "%s: oracle mean reward", label)
	assert.InDelta(t, want.FailureRate, got.FailureRate, 0.005, "%s: failure rate", label)
	assert.InEpsilon(t, want.LatencyP50MS, got.LatencyP50MS, 0.02, "%s: latency p50", label)
	assert.InEpsilon(t, want.LatencyP99MS, got.LatencyP99MS, 0.05, "%s: latency p99", label)
	assert.InEpsilon(t, want.CostTotal, got.CostTotal, 0.02, "%s: cost", label)
	for arm, s := range want.ArmShares {
		assert.InDelta(t, s, got.ArmShares[arm], 0.02, "%s: share of %s", label, arm)
	}
	for task, w := range want.Tasks {
		assert.Equal(t, w.Requests, got.Tasks[task].Requests, "%s: requests of task %s", label, task)
	}
}

// Re-simulating a log of scenario S with the policy that wrote it and S's
// providers gives the original run's metrics, within the tolerances of
// metricsClose: on outage (an outage window, errors), ratelimit (429
// storms) and tasks (a contextual policy). The log does not know the
// completion length of failed requests, which are drawn anew, so a
// learning policy's path can drift from the original: a deterministic,
// tie-prone learner such as ucb1 then ends up anywhere in its own
// seed-to-seed spread (on ratelimit, 8k requests, swift's share ranged
// 0.16–0.23 over three seeds), which is why it is not in this table.
func TestResimulateReproducesTheRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scenario, spec string
		n              int
	}{
		{"outage", "thompson", 8_000},
		{"ratelimit", "thompson", 8_000},
		{"ratelimit", "random", 8_000},
		{"tasks", "linucb", 5_000},
	} {
		t.Run(tc.scenario+"/"+tc.spec, func(t *testing.T) {
			sc, err := sim.LoadScenario(tc.scenario)
			require.NoError(t, err)
			enc := taskEncoder(t, sc)
			orig, recs := logRun(t, sc, tc.spec, 6, tc.n, enc)
			tr, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{})
			require.NoError(t, err)
			res, err := fromlogs.Resimulate(context.Background(), tr, sc,
				[]replay.Target{{Name: tc.spec + "-again", Policy: newSpec(t, tc.spec, 6)}},
				fromlogs.ResimulateOpts{Seed: 6, Encoder: enc})
			require.NoError(t, err)
			require.Len(t, res, 1)
			got := res[0]
			assert.Equal(t, tc.spec+"-again", got.Policy)
			assert.Equal(t, tc.scenario, got.Scenario)
			t.Logf("%s/%s: mean reward %.4f → %.4f, failure %.4f → %.4f, p50 %.1f → %.1f ms, p99 %.1f → %.1f ms, cost %.4f → %.4f",
				tc.scenario, tc.spec, orig.MeanReward, got.MeanReward, orig.FailureRate, got.FailureRate,
				orig.LatencyP50MS, got.LatencyP50MS, orig.LatencyP99MS, got.LatencyP99MS, orig.CostTotal, got.CostTotal)
			metricsClose(t, tc.scenario, orig, got)
		})
	}
}

// Policies rank on re-simulated traffic as they do in the simulator: the
// log of a random router is re-simulated under several policies, which
// must come out in the order (and near the values) of their own simulator
// runs on the same seed — on tasks (nothing fails) and on outage (where
// the log lacks the completion lengths of the random router's failures).
func TestResimulateKeepsTheRanking(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		scenario    string
		n           int
		specs       []string
		best, worst string
	}{
		{"tasks", 5000, []string{"random", "epsilon-greedy", "thompson", "linucb"}, "linucb", "random"},
		{"outage", 8000, []string{"random", "epsilon-greedy=epsilon:0.3", "d-thompson", "sw-ucb"}, "", "random"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			sc, err := sim.LoadScenario(tc.scenario)
			require.NoError(t, err)
			enc := taskEncoder(t, sc)
			const seed = 8
			_, recs := logRun(t, sc, "random", seed, tc.n, enc)
			tr, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{})
			require.NoError(t, err)
			var targets []replay.Target
			orig := map[string]*sim.Result{}
			for _, s := range tc.specs {
				targets = append(targets, replay.Target{Name: s, Policy: newSpec(t, s, seed)})
				r, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: newSpec(t, s, seed), Seed: seed, Requests: tc.n, Encoder: enc})
				require.NoError(t, err)
				orig[s] = r
			}
			res, err := fromlogs.Resimulate(context.Background(), tr, sc, targets, fromlogs.ResimulateOpts{Seed: seed, Encoder: enc})
			require.NoError(t, err)
			got := map[string]*sim.Result{}
			for _, r := range res {
				got[r.Policy] = r
				t.Logf("%-28s sim %.4f  resimulated %.4f", r.Policy, orig[r.Policy].ExpectedMeanReward, r.ExpectedMeanReward)
				assert.InDelta(t, orig[r.Policy].ExpectedMeanReward, r.ExpectedMeanReward, 0.005, r.Policy)
			}
			// Every pair the simulator separates by more than twice the
			// tolerance keeps its order (closer pairs are a tie).
			pairs := 0
			for _, a := range tc.specs {
				for _, b := range tc.specs {
					if orig[a].ExpectedMeanReward-orig[b].ExpectedMeanReward > 0.01 {
						pairs++
						assert.Greater(t, got[a].ExpectedMeanReward, got[b].ExpectedMeanReward, "%s ranks above %s", a, b)
					}
				}
			}
			assert.GreaterOrEqual(t, pairs, len(tc.specs)*(len(tc.specs)-1)/2-1, "all pairs but at most one are separated")
			want := append([]string(nil), tc.specs...)
			sort.SliceStable(want, func(i, j int) bool { return orig[want[i]].ExpectedMeanReward > orig[want[j]].ExpectedMeanReward })
			if tc.best != "" {
				assert.Equal(t, tc.best, want[0])
			}
			assert.Equal(t, tc.worst, want[len(want)-1])
		})
	}
}

// Providers fitted by Calibrate serve the logged requests: the run has the
// logged count and task mix, starts at the first logged request, and its
// metrics are near the original run's.
func TestResimulateOnCalibratedProviders(t *testing.T) {
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	orig, recs := logRun(t, sc, "random", 3, 6000, nil)
	cal, err := fromlogs.Calibrate(context.Background(), recs, fromlogs.CalibrateOpts{Seed: 3})
	require.NoError(t, err)
	tr, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{})
	require.NoError(t, err)
	res, err := fromlogs.Resimulate(context.Background(), tr, cal.Scenario,
		[]replay.Target{{Policy: newSpec(t, "random", 3)}}, fromlogs.ResimulateOpts{Seed: 3})
	require.NoError(t, err)
	got := res[0]
	assert.Equal(t, "random", got.Policy)
	for task, w := range orig.Tasks {
		assert.Equal(t, w.Requests, got.Tasks[task].Requests, "task %s", task)
	}
	t.Logf("calibrated: mean reward %.4f → %.4f, p50 %.1f → %.1f ms", orig.MeanReward, got.MeanReward, orig.LatencyP50MS, got.LatencyP50MS)
	assert.InDelta(t, orig.MeanReward, got.MeanReward, 0.02)
	assert.InEpsilon(t, orig.LatencyP50MS, got.LatencyP50MS, 0.1)
}

func TestAnchorClock(t *testing.T) {
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	_, recs := logRun(t, sc, "random", 1, 200, nil)
	tr, err := fromlogs.BuildTrace(context.Background(), recs, fromlogs.TraceOpts{})
	require.NoError(t, err)
	var first sim.TraceRequest

	// Logs of a run of the scenario: its own clock.
	run, view, err := tr.Anchor(sc, fromlogs.ClockAuto)
	require.NoError(t, err)
	assert.Equal(t, sc.StartTime(), run.StartTime())
	view.Request(0, &first)
	assert.Equal(t, tr.First().Sub(sc.StartTime()), first.At)

	// The logs' clock: the run starts at the first request.
	run, view, err = tr.Anchor(sc, fromlogs.ClockLogs)
	require.NoError(t, err)
	assert.Equal(t, tr.First(), run.StartTime())
	first = sim.TraceRequest{}
	view.Request(0, &first)
	assert.Zero(t, first.At)
	assert.Equal(t, sc.StartTime(), must(sim.LoadScenario("tasks")).StartTime(), "the caller's scenario is not modified")

	// Logs from before the scenario's start: auto takes the logs' clock;
	// insisting on the scenario's is an error.
	late := *sc
	late.Start = "2027-01-01T00:00:00Z"
	run, _, err = tr.Anchor(&late, fromlogs.ClockAuto)
	require.NoError(t, err)
	assert.Equal(t, tr.First(), run.StartTime())
	_, _, err = tr.Anchor(&late, fromlogs.ClockScenario)
	assert.ErrorContains(t, err, "is before the start")

	for _, s := range []string{"auto", "scenario", "logs", ""} {
		c, err := fromlogs.ParseClock(s)
		require.NoError(t, err)
		if s != "" {
			assert.Equal(t, s, c.String())
		}
	}
	_, err = fromlogs.ParseClock("wall")
	assert.ErrorContains(t, err, "want auto, scenario or logs")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestTraceBadInput(t *testing.T) {
	ctx := context.Background()
	tasks, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	steady, err := sim.LoadScenario("steady")
	require.NoError(t, err)
	_, recs := logRun(t, tasks, "random", 1, 300, nil)

	_, err = fromlogs.BuildTrace(ctx, replay.Records{}, fromlogs.TraceOpts{})
	assert.ErrorContains(t, err, "the log holds no decisions")

	timeless := append(replay.Records(nil), recs[:3]...)
	timeless[1].Time, timeless[1].Request.Features.Time = time.Time{}, time.Time{}
	_, err = fromlogs.BuildTrace(ctx, timeless, fromlogs.TraceOpts{})
	assert.ErrorIs(t, err, replay.ErrBadRow)
	assert.ErrorContains(t, err, "row 1")

	_, err = fromlogs.BuildTrace(ctx, recs, fromlogs.TraceOpts{MaxRows: 100})
	assert.ErrorIs(t, err, fromlogs.ErrTraceTooLong)

	tr, err := fromlogs.BuildTrace(ctx, recs, fromlogs.TraceOpts{})
	require.NoError(t, err)
	target := []replay.Target{{Policy: policy.NewRandom(policy.RandomOpts{Seed: 1})}}
	// Logs of tasks do not fit steady's task table.
	_, err = fromlogs.Resimulate(ctx, tr, steady, target, fromlogs.ResimulateOpts{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `scenario "steady" does not serve the logged task types "math" (`)
	assert.Contains(t, err.Error(), "(its tasks: chat, code, summarize)")
	_, err = fromlogs.Resimulate(ctx, tr, tasks, target, fromlogs.ResimulateOpts{Requests: 301})
	assert.ErrorContains(t, err, "requests 301 outside [0, 300]")
	_, err = fromlogs.Resimulate(ctx, tr, tasks, nil, fromlogs.ResimulateOpts{})
	assert.ErrorContains(t, err, "no target policy")

	// Rows without a task are the default task, which tasks lacks.
	untasked := append(replay.Records(nil), recs[:5]...)
	untasked[2].Request.Features.Task = ""
	tr2, err := fromlogs.BuildTrace(ctx, untasked, fromlogs.TraceOpts{})
	require.NoError(t, err)
	_, err = fromlogs.Resimulate(ctx, tr2, tasks, target, fromlogs.ResimulateOpts{})
	assert.ErrorContains(t, err, `(none, i.e. "general") (1 requests)`)

	// The zero Trace is empty, not a panic.
	_, err = fromlogs.Resimulate(ctx, &fromlogs.Trace{}, tasks, target, fromlogs.ResimulateOpts{})
	assert.ErrorContains(t, err, "the trace is empty")

	// A cancelled context stops the read.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = fromlogs.BuildTrace(cctx, recs, fromlogs.TraceOpts{})
	assert.True(t, errors.Is(err, context.Canceled), "got %v", err)
	assert.True(t, strings.HasPrefix(err.Error(), "build trace"))
}

// Requests the caller forced to a model stay forced in the re-simulation
// (unless RouteForced); a scenario without that model is an error.
func TestTraceForcedRequests(t *testing.T) {
	ctx := context.Background()
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	_, recs := logRun(t, sc, "random", 1, 400, nil)
	forced := append(replay.Records(nil), recs...)
	for i := range forced {
		if i%4 == 0 {
			forced[i].Request.Forced = "coder"
		}
	}
	tr, err := fromlogs.BuildTrace(ctx, forced, fromlogs.TraceOpts{})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"coder": 100}, tr.Forced())
	res, err := fromlogs.Resimulate(ctx, tr, sc, []replay.Target{{Policy: newSpec(t, "linucb", 1)}}, fromlogs.ResimulateOpts{Seed: 1, Encoder: taskEncoder(t, sc)})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res[0].ArmShares["coder"], 0.25, "a quarter of the requests are forced to coder")

	routed, err := fromlogs.BuildTrace(ctx, forced, fromlogs.TraceOpts{RouteForced: true})
	require.NoError(t, err)
	assert.Empty(t, routed.Forced())

	renamed := *sc
	renamed.Providers = append([]sim.Provider(nil), sc.Providers...)
	renamed.Providers[1].Name = "coder-v2"
	_, err = fromlogs.Resimulate(ctx, tr, &renamed, []replay.Target{{Policy: newSpec(t, "random", 1)}}, fromlogs.ResimulateOpts{Seed: 1})
	assert.ErrorContains(t, err, `has no provider for the models logged requests were forced to: "coder" (100 requests)`)
	_, err = fromlogs.Resimulate(ctx, routed, &renamed, []replay.Target{{Policy: newSpec(t, "random", 1)}}, fromlogs.ResimulateOpts{Seed: 1})
	assert.NoError(t, err, "routed by the policy, the renamed provider is fine")
}
