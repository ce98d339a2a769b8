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
)

func simJSON(t *testing.T, fl simFlags) map[string]any {
	t.Helper()
	fl.json = true
	var out bytes.Buffer
	require.NoError(t, runSim(context.Background(), fl, nil, &out))
	dec := json.NewDecoder(&out)
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	assert.False(t, dec.More(), "exactly one JSON object")
	return m
}

func TestSimCommandJSON(t *testing.T) {
	fl := simFlags{scenario: "outage", policy: "thompson", seed: 9, requests: 3000}
	a, b := simJSON(t, fl), simJSON(t, fl)
	for _, k := range []string{"policy", "scenario", "seed", "requests", "mean_reward", "oracle_mean_reward", "regret", "cost_total",
		"latency_p50_ms", "latency_p99_ms", "failure_rate", "arm_shares", "decisions_per_second"} {
		assert.Contains(t, a, k)
	}
	assert.Equal(t, "thompson", a["policy"])
	assert.Equal(t, "outage", a["scenario"])
	assert.EqualValues(t, 9, a["seed"])
	assert.EqualValues(t, 3000, a["requests"])
	delete(a, "decisions_per_second")
	delete(b, "decisions_per_second")
	assert.Equal(t, a, b, "same seed and policy: identical output")

	// A spec's own seed wins over the derived one, and changes the run.
	c := simJSON(t, simFlags{scenario: "outage", policy: "thompson=seed:12345", seed: 9, requests: 3000})
	delete(c, "decisions_per_second")
	assert.NotEqual(t, a["arm_shares"], c["arm_shares"])
}

func TestSimCommandTableAndScenarioFile(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "steady", policy: "ucb1", seed: 1, requests: 2000}, nil, &out))
	for _, s := range []string{"oracle mean reward", "regret", "latency p50 / p99", "balanced"} {
		assert.Contains(t, out.String(), s)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "two.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
traffic: {rate: 3}
providers:
  - {name: a, latency: {median: 200ms}, quality: {"*": 0.9}}
  - {name: b, latency: {median: 200ms}, quality: {"*": 0.2}}
`), 0o600))
	m := simJSON(t, simFlags{scenario: path, policy: "epsilon-greedy=epsilon:0.2", seed: 1, requests: 500})
	assert.Equal(t, "two", m["scenario"])
}

func TestSimCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("traffic: {rate: 3\n"), 0o600))
	neg := filepath.Join(dir, "neg.yaml")
	require.NoError(t, os.WriteFile(neg, []byte("traffic: {rate: -3}\nproviders: [{name: a, latency: {median: 1s}, quality: {'*': 1}}]\n"), 0o600))
	for _, tc := range []struct {
		fl   simFlags
		want string
	}{
		{simFlags{scenario: "nope", policy: "random"}, `--scenario: unknown scenario "nope"`},
		{simFlags{scenario: bad, policy: "random"}, `--scenario: scenario "bad": yaml:`},
		{simFlags{scenario: neg, policy: "random"}, `scenario "neg": traffic.rate: -3 must be a finite number > 0`},
		{simFlags{scenario: "steady", policy: "nope"}, `--policy: unknown policy "nope"`},
		{simFlags{scenario: "steady", policy: "epsilon-greedy=epsilon:2"}, "epsilon 2 outside [0,1]"},
		{simFlags{scenario: "steady", policy: "ucb1=c"}, `--policy: policy spec "ucb1=c"`},
		{simFlags{scenario: "steady", policy: "random", requests: -1}, "--requests -1: must be >= 0"},
	} {
		var out bytes.Buffer
		err := runSim(context.Background(), tc.fl, nil, &out)
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
		assert.Empty(t, out.String(), "no partial output on error")
	}
}

func TestScenariosCommand(t *testing.T) {
	cmd := newScenariosCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(nil)
	require.NoError(t, cmd.Execute())
	for _, n := range []string{"steady", "outage", "tasks-nonlinear", "drift-contextual"} {
		assert.Contains(t, out.String(), n)
	}
	out.Reset()
	cmd = newScenariosCmd()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--show", "steady"})
	require.NoError(t, cmd.Execute())
	assert.Contains(t, out.String(), "name: steady")
	cmd = newScenariosCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"--show", "nope"})
	assert.ErrorContains(t, cmd.Execute(), `--show: unknown scenario "nope"`)
}

func TestSimCommandFlags(t *testing.T) {
	cmd := newSimCmd()
	for _, f := range []string{"scenario", "policy", "seed", "requests", "json"} {
		assert.NotNil(t, cmd.Flags().Lookup(f), f)
	}
}

// TestSimStatefulReference: on a scenario whose rate limits follow the
// policy's own choices, sim marks the oracle state-dependent, shows no
// "% of oracle" and reports the best fixed arm; elsewhere neither.
func TestSimStatefulReference(t *testing.T) {
	run := func(args ...string) string {
		cmd := newSimCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute())
		return out.String()
	}
	type view struct {
		StateDependent bool     `json:"oracle_state_dependent"`
		BestFixedArm   string   `json:"best_fixed_arm"`
		BestFixed      *float64 `json:"best_fixed_expected_mean_reward"`
	}
	var st view
	require.NoError(t, json.Unmarshal([]byte(run("--scenario", "ratelimit", "--requests", "2000", "--json")), &st))
	assert.True(t, st.StateDependent)
	assert.NotEmpty(t, st.BestFixedArm)
	require.NotNil(t, st.BestFixed)
	table := run("--scenario", "ratelimit", "--requests", "2000")
	assert.Contains(t, table, "state-dependent")
	assert.Contains(t, table, "best fixed arm")

	st = view{}
	require.NoError(t, json.Unmarshal([]byte(run("--scenario", "tasks", "--requests", "2000", "--json")), &st))
	assert.False(t, st.StateDependent)
	assert.Empty(t, st.BestFixedArm)
	assert.Nil(t, st.BestFixed)
}
