package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parquet-go/parquet-go"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// writeSimLogs logs n decisions of the tasks scenario, routed by ε-greedy
// (ε 0.3), through the decision-log writer into a fresh directory.
func writeSimLogs(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: dir, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	logger, err := policy.NewEpsilonGreedy(policy.EpsilonGreedyOpts{Epsilon: 0.3, Seed: 9})
	require.NoError(t, err)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: logger, Seed: 3, Requests: n, Sink: w})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return dir
}

func TestReplayCommand(t *testing.T) {
	dir := writeSimLogs(t, 5000)
	export := filepath.Join(t.TempDir(), "rows.csv")
	var out, errOut bytes.Buffer
	fl := replayFlags{
		logs: []string{dir}, policies: "random,epsilon-greedy=epsilon:0.5", estimators: "ips,snips,dr",
		bootstrap: 50, level: 0.95, seed: 1, clip: 10, tau: 10, lambda: 100, folds: 2, feedback: true, json: true,
		exportRows: export, frozen: true, // epsilon-greedy learns: evaluated untrained on purpose
	}
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut))
	var res []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	require.Len(t, res, 7)
	assert.Equal(t, "logged", res[0]["policy"], "the logger's own value comes first")
	assert.Equal(t, "on-policy", res[0]["estimator"])
	res = res[1:]
	for _, r := range res {
		for _, k := range []string{"policy", "estimator", "value", "ci_low", "ci_high", "ess", "n", "interval", "max_weight", "share_weight_over_10"} {
			assert.Contains(t, r, k)
		}
		assert.EqualValues(t, 5000, r["n"])
		v := r["value"].(float64)
		assert.True(t, v > 0.3 && v < 1, "%v/%v value %v", r["policy"], r["estimator"], v)
		assert.LessOrEqual(t, r["ci_low"].(float64), r["ci_high"].(float64))
	}
	assert.Equal(t, "random", res[0]["policy"])
	assert.Equal(t, "epsilon-greedy=epsilon:0.5", res[3]["policy"])

	// One export per target; the header maps the five arms.
	for _, name := range []string{"rows.random.csv", "rows.epsilon-greedy_epsilon_0.5.csv"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(export), name))
		require.NoError(t, err, name)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		require.Len(t, lines, 1+5+1+5000, name)
		assert.Equal(t, `# action 0 = "chatty"`, lines[1])
		assert.Equal(t, "action,reward,pscore,pi_0,pi_1,pi_2,pi_3,pi_4,q_0,q_1,q_2,q_3,q_4", lines[6])
		assert.Len(t, strings.Split(lines[7], ","), 13)
	}
	_, err := os.Stat(export)
	assert.True(t, os.IsNotExist(err), "with two targets there is no un-suffixed file")

	// The exported rows are enough to recompute the estimates outside
	// routelab, as Open Bandit Pipeline would: DR = mean(Σ_a π_a q_a +
	// π_action/pscore · (reward − q_action)), IPS = mean(π_action/pscore · reward).
	b, err := os.ReadFile(filepath.Join(filepath.Dir(export), "rows.random.csv"))
	require.NoError(t, err)
	var dr, ips float64
	var n int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[7:] {
		var v []float64
		for _, f := range strings.Split(line, ",") {
			x, err := strconv.ParseFloat(f, 64)
			require.NoError(t, err)
			v = append(v, x)
		}
		a, r, ps, pi, q := int(v[0]), v[1], v[2], v[3:8], v[8:13]
		for j := range pi {
			dr += pi[j] * q[j]
		}
		dr += pi[a] / ps * (r - q[a])
		ips += pi[a] / ps * r
		n++
	}
	assert.InDelta(t, res[2]["value"].(float64), dr/float64(n), 1e-9, "dr from the exported rows")
	assert.InDelta(t, res[0]["value"].(float64), ips/float64(n), 1e-9, "ips from the exported rows")

	// The table form.
	out.Reset()
	fl.json, fl.exportRows, fl.policies = false, "", "random"
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut))
	t.Log("\n" + out.String())
	assert.Contains(t, out.String(), "POLICY")
	assert.Contains(t, out.String(), "CI_LOW")
	assert.Contains(t, out.String(), "MAX_W")
	assert.Contains(t, out.String(), "intervals: poisson bootstrap")
	lines := strings.Split(out.String(), "\n")
	assert.True(t, strings.HasPrefix(lines[1], "logged"), "first row is the logger's value: %q", lines[1])
	assert.Equal(t, 6, strings.Count(strings.TrimSpace(out.String()), "\n")+1-countWarnings(out.String()), out.String())
}

func countWarnings(s string) int {
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.HasPrefix(l, "warning:") || l == "" {
			n++
		}
	}
	return n
}

// A greedy logger (ε = 0) never plays most arms: evaluating the uniform
// policy on its log is an error naming the share of rows, unless
// --allow-missing-support; then the table says so.
func TestReplayMissingSupport(t *testing.T) {
	dir := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: dir, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	sc, err := sim.LoadScenario("tasks")
	require.NoError(t, err)
	logger, err := policy.NewEpsilonGreedy(policy.EpsilonGreedyOpts{Epsilon: 0, Seed: 9})
	require.NoError(t, err)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: logger, Seed: 3, Requests: 300, Sink: w})
	require.NoError(t, err)
	require.NoError(t, w.Close())

	fl := replayFlags{logs: []string{dir}, policies: "random", estimators: "ips,snips", bootstrap: 20, level: 0.95, clip: 10, tau: 10, folds: 2, feedback: true}
	err = runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing support: on 300 of 300 rows (100%)")
	assert.Contains(t, err.Error(), "--allow-missing-support")

	fl.allowMiss, fl.by = true, "task"
	var out bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}))
	t.Log("\n" + out.String())
	assert.Contains(t, out.String(), "SEGMENT")
	assert.Contains(t, out.String(), "task=")
	assert.Contains(t, out.String(), "warning: random: missing support")
	assert.Contains(t, out.String(), "mean importance weight")
}

func TestReplayCommandErrors(t *testing.T) {
	dir := t.TempDir()
	base := replayFlags{logs: []string{dir}, policies: "random", estimators: "all", bootstrap: 10, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2}
	cases := []struct {
		name string
		mod  func(f *replayFlags)
		msg  string
	}{
		{"no logs", func(f *replayFlags) { f.logs = nil }, "--logs"},
		{"missing dir", func(f *replayFlags) { f.logs = []string{filepath.Join(dir, "nope")} }, "--logs"},
		{"no policy", func(f *replayFlags) { f.policies = " " }, "--policy"},
		{"unknown policy", func(f *replayFlags) { f.policies = "magic" }, `unknown policy "magic"`},
		{"bad params", func(f *replayFlags) { f.policies = "epsilon-greedy=epsilon:2" }, "epsilon"},
		{"twice", func(f *replayFlags) { f.policies = "random,random" }, "named twice"},
		{"unknown estimator", func(f *replayFlags) { f.estimators = "ips,nope" }, "--estimators"},
		{"negative bootstrap", func(f *replayFlags) { f.bootstrap = -1 }, "--bootstrap"},
		{"bad level", func(f *replayFlags) { f.level = 1.5 }, "--level"},
		{"bad clip", func(f *replayFlags) { f.clip = 0 }, "--clip"},
		{"negative lambda", func(f *replayFlags) { f.lambda = -1 }, "--lambda"},
		{"bad by", func(f *replayFlags) { f.by = "model" }, "--by"},
		{"learning policy, not frozen", func(f *replayFlags) { f.policies = "linucb" }, "--frozen"},
		{"bad folds", func(f *replayFlags) { f.folds = 0 }, "--folds"},
		{"bad from", func(f *replayFlags) { f.from = "yesterday" }, "--from"},
		{"empty log", func(f *replayFlags) {}, "no rows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fl := base
			tc.mod(&fl)
			err := runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestReplayCorruptFile(t *testing.T) {
	dir := writeSimLogs(t, 500)
	bad := filepath.Join(dir, "decisions", "dt=2026-01-05", "hour=00", "zz-corrupt.parquet")
	require.NoError(t, os.MkdirAll(filepath.Dir(bad), 0o755))
	require.NoError(t, os.WriteFile(bad, []byte("PAR1 this is not parquet"), 0o644))
	fl := replayFlags{logs: []string{dir}, policies: "random", estimators: "ips", bootstrap: 0, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2}
	err := runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "zz-corrupt.parquet")

	fl.skipBad = true
	var out, errOut bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut))
	assert.Contains(t, errOut.String(), "skipping log file")
	assert.Contains(t, out.String(), "500")
}

func TestTrainThenReplaySnapshot(t *testing.T) {
	dir := writeSimLogs(t, 4000)
	snap := filepath.Join(t.TempDir(), "eg.json")
	var out bytes.Buffer
	fl := trainFlags{logs: []string{dir}, policy: "epsilon-greedy=epsilon:0.05;seed:3", out: snap, seed: 1, feedback: true}
	require.NoError(t, runTrain(context.Background(), fl, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "trained epsilon-greedy on 4000 rows (importance-weighted")
	_, err := os.Stat(snap)
	require.NoError(t, err)

	// Continue from the snapshot, unweighted, into a second file.
	snap2 := filepath.Join(t.TempDir(), "eg2.json")
	out.Reset()
	require.NoError(t, runTrain(context.Background(), trainFlags{logs: []string{dir}, init: snap, out: snap2, unweighted: true, feedback: true}, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "4000 rows (unweighted: 4000 updates")

	out.Reset()
	rf := replayFlags{logs: []string{dir}, snapshots: []string{snap}, estimators: "snips,dr", bootstrap: 20, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2, json: true}
	require.NoError(t, runReplay(context.Background(), rf, &out, &bytes.Buffer{}))
	var res []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &res))
	require.Len(t, res, 3)
	assert.Equal(t, "epsilon-greedy@eg.json", res[1]["policy"])
}

func TestTrainCommandErrors(t *testing.T) {
	dir := writeSimLogs(t, 100)
	base := trainFlags{logs: []string{dir}, policy: "thompson", out: filepath.Join(t.TempDir(), "x.json")}
	cases := []struct {
		name string
		mod  func(f *trainFlags)
		msg  string
	}{
		{"no logs", func(f *trainFlags) { f.logs = nil }, "--logs"},
		{"no out", func(f *trainFlags) { f.out = "" }, "--out"},
		{"neither", func(f *trainFlags) { f.policy = "" }, "exactly one"},
		{"both", func(f *trainFlags) { f.init = "x.json" }, "exactly one"},
		{"unknown policy", func(f *trainFlags) { f.policy = "magic" }, `unknown policy "magic"`},
		{"bad clip", func(f *trainFlags) { f.clip = -2 }, "--clip"},
		{"missing init", func(f *trainFlags) { f.policy, f.init = "", "/nonexistent/snap.json" }, "--init"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fl := base
			tc.mod(&fl)
			err := runTrain(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestCalibrateCommand(t *testing.T) {
	dir := writeSimLogs(t, 3000)
	out := filepath.Join(t.TempDir(), "fitted.yaml")
	var buf bytes.Buffer
	require.NoError(t, runCalibrate(context.Background(), calibrateFlags{logs: []string{dir}, out: out, seed: 1, feedback: true}, &buf, &bytes.Buffer{}))
	t.Log("\n" + buf.String())
	assert.Contains(t, buf.String(), `scenario "fitted" written`)
	assert.Contains(t, buf.String(), "KS_LATENCY")
	// Every KS distance comes with a verdict.
	verdicts := regexp.MustCompile(`\d\.\d{4} (good|close|poor) fit`).FindAllString(buf.String(), -1)
	assert.Len(t, verdicts, 10, "a verdict per arm for latency and TTFT")
	// The file holds no float noise: at most 6 significant digits.
	y, err := os.ReadFile(out)
	require.NoError(t, err)
	for _, num := range regexp.MustCompile(`[0-9]*\.[0-9]+(e-?[0-9]+)?`).FindAllString(string(y), -1) {
		digits := strings.TrimLeft(strings.ReplaceAll(strings.SplitN(num, "e", 2)[0], ".", ""), "0")
		assert.LessOrEqual(t, len(digits), 6, "%s has more than 6 significant digits", num)
	}
	for _, arm := range []string{"chatty", "coder", "mathlete", "summarizer", "generalist"} {
		assert.Contains(t, buf.String(), arm)
	}
	// The written scenario loads and runs.
	sc, err := sim.LoadScenario(out)
	require.NoError(t, err)
	assert.Equal(t, "fitted", sc.Name)
	assert.Len(t, sc.Providers, 5)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: policy.NewRandom(policy.RandomOpts{Seed: 1}), Seed: 1, Requests: 500})
	require.NoError(t, err)

	err = runCalibrate(context.Background(), calibrateFlags{logs: []string{dir}}, &buf, &bytes.Buffer{})
	assert.ErrorContains(t, err, "--out")
	err = runCalibrate(context.Background(), calibrateFlags{out: out}, &buf, &bytes.Buffer{})
	assert.ErrorContains(t, err, "--logs")
}

func TestReplayResimulate(t *testing.T) {
	dir := writeSimLogs(t, 3000)
	base := replayFlags{logs: []string{dir}, policies: "random,thompson", seed: 5, resimulate: true, requests: 2000, json: true,
		estimators: "all", level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2}
	var out bytes.Buffer
	require.NoError(t, runReplay(context.Background(), base, &out, &bytes.Buffer{}))
	var res []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	require.Len(t, res, 2)
	assert.Equal(t, "random", res[0]["policy"])
	assert.Equal(t, "thompson", res[1]["policy"])
	for _, r := range res {
		assert.EqualValues(t, 2000, r["requests"])
		assert.Contains(t, r, "latency_p99_ms")
		assert.Contains(t, r, "arm_shares")
		assert.Len(t, r["arm_shares"], 5)
	}
	// The same seed gives the same run.
	var again bytes.Buffer
	require.NoError(t, runReplay(context.Background(), base, &again, &bytes.Buffer{}))
	var res2 []map[string]any
	require.NoError(t, json.Unmarshal(again.Bytes(), &res2))
	assert.Equal(t, res[1]["mean_reward"], res2[1]["mean_reward"])

	// Providers from a scenario, traffic from the logs; table output.
	fl := base
	fl.scenario, fl.json, fl.policies = "tasks", false, "random"
	out.Reset()
	require.NoError(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "tasks+logged-traffic")
	assert.Contains(t, out.String(), "providers from scenario tasks")

	fl.scenario = "nope-not-a-scenario"
	assert.ErrorContains(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}), "--scenario")
	fl.resimulate, fl.scenario = false, "tasks"
	assert.ErrorContains(t, runReplay(context.Background(), fl, &out, &bytes.Buffer{}), "go with --resimulate")
}

// A log directory mixing schema versions: a file from a newer writer is a
// clear error naming the file (or, with --skip-bad-files, left out and
// reported), never read as if it were the current schema.
func TestReplayNewerSchemaFile(t *testing.T) {
	dir := writeSimLogs(t, 300)
	newer := filepath.Join(dir, "decisions", "dt=2026-01-05", "hour=00", "zz-v2.parquet")
	f, err := os.Create(newer)
	require.NoError(t, err)
	w := parquet.NewGenericWriter[decisionlog.Row](f,
		parquet.KeyValueMetadata(decisionlog.MetaSchemaVersion, "2"),
		parquet.KeyValueMetadata(decisionlog.MetaTable, decisionlog.TableDecisions))
	_, err = w.Write([]decisionlog.Row{{SchemaVersion: 2, RequestID: "v2", Candidates: []string{"a"}, Probs: []float64{1}}})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, f.Close())

	fl := replayFlags{logs: []string{dir}, policies: "random", estimators: "ips", level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2}
	err = runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "zz-v2.parquet")
	assert.Contains(t, err.Error(), "schema version 2 is newer")

	fl.skipBad = true
	var out, errOut bytes.Buffer
	require.NoError(t, runReplay(context.Background(), fl, &out, &errOut))
	assert.Contains(t, errOut.String(), "schema version 2")
	assert.Contains(t, out.String(), " 300")
}

// TestReplayTrainSplit: --train-split trains learning --policy specs on the
// earlier part of the log and evaluates every target on the later part
// only; without it (or --frozen) a learning spec is refused.
func TestReplayTrainSplit(t *testing.T) {
	dir := writeSimLogs(t, 3000)
	run := func(args ...string) (string, string, error) {
		cmd := newReplayCmd()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append([]string{"--logs", dir, "--quiet", "--bootstrap", "20", "--estimators", "snips,dr"}, args...))
		err := cmd.Execute()
		return out.String(), errOut.String(), err
	}
	_, _, err := run("--policy", "thompson")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--train-split")

	out, errOut, err := run("--policy", "thompson", "--train-split", "0.6", "--json")
	require.NoError(t, err, errOut)
	assert.Contains(t, errOut, "trained on the 1800 rows")
	assert.Contains(t, errOut, "evaluated on the 1200 rows")
	var res []replay.Result
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.NotEmpty(t, res)
	assert.Equal(t, replay.LoggedPolicy, res[0].Policy, "the logged policy's value comes first")
	for _, r := range res {
		assert.EqualValues(t, 1200, r.N, "%s/%s: evaluated on the held-out rows only", r.Policy, r.Estimator)
	}

	_, _, err = run("--policy", "thompson", "--train-split", "1.5")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--train-split")
}
