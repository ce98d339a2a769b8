package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
)

// writeEncodedLogs logs n decisions of tasks-nonlinear routed uniformly at
// random, with routelab sim's feature vectors.
func writeEncodedLogs(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: dir, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	sc, err := sim.LoadScenario("tasks-nonlinear")
	require.NoError(t, err)
	enc, err := simEncoder(sc)
	require.NoError(t, err)
	_, err = sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: policy.NewRandom(policy.RandomOpts{Seed: 5}), Seed: 5, Requests: n, Sink: w, Encoder: enc})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return dir
}

func TestNeuralFitThenReplay(t *testing.T) {
	dir := writeEncodedLogs(t, 3000)
	snap := filepath.Join(t.TempDir(), "nl.json")
	var out bytes.Buffer
	fl := neuralFitFlags{logs: []string{dir}, policy: "neural-linear=explore:ucb;hidden:32x16;seed:2;floor:0.05", out: snap, weighting: "ips", clip: 10, epochs: 3, feedback: true}
	require.NoError(t, runNeuralFit(context.Background(), fl, &out, &bytes.Buffer{}))
	t.Log(out.String())
	assert.Contains(t, out.String(), "fitted neural-linear on 3000 rows, 3 arms (ips: max 1/propensity 3")
	a, err := artifact.Read(snap)
	require.NoError(t, err)
	assert.Equal(t, "neural fit", a.Provenance.Source)
	assert.EqualValues(t, 3000, a.Provenance.Rows)
	p, err := a.Policy(newRegistry())
	require.NoError(t, err)
	assert.Equal(t, "neural-linear", p.Name())

	// DR from the snapshot, through a floor-wrapped --init.
	snap2 := filepath.Join(t.TempDir(), "nl2.json")
	out.Reset()
	fl2 := neuralFitFlags{logs: []string{dir}, init: snap, out: snap2, weighting: "dr", clip: 10, epochs: 1, feedback: true}
	require.NoError(t, runNeuralFit(context.Background(), fl2, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "(dr:")

	// The fitted policy, evaluated off-policy on the logs it came from,
	// beats the uniform logger clearly (the logs' own mean reward).
	out.Reset()
	rf := replayFlags{logs: []string{dir}, policies: "random", snapshots: []string{snap}, estimators: "snips", bootstrap: 20, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2, json: true}
	require.NoError(t, runReplay(context.Background(), rf, &out, &bytes.Buffer{}))
	var res []map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
	require.Len(t, res, 3) // the logger's own value, then the two targets
	vals := map[string]float64{}
	for _, r := range res {
		vals[r["policy"].(string)] = r["value"].(float64)
	}
	t.Logf("snips: %v", vals)
	assert.Greater(t, vals["neural-linear@nl.json"], vals["random"]+0.1, "fitted policy vs the uniform logger")
}

func TestNeuralFitErrors(t *testing.T) {
	dir := writeEncodedLogs(t, 50)
	base := neuralFitFlags{logs: []string{dir}, policy: "neural-linear", out: filepath.Join(t.TempDir(), "x.json"), weighting: "ips", clip: 10, epochs: 1}
	cases := []struct {
		name string
		mod  func(f *neuralFitFlags)
		msg  string
	}{
		{"no logs", func(f *neuralFitFlags) { f.logs = nil }, "--logs"},
		{"missing logs", func(f *neuralFitFlags) { f.logs = []string{"/nonexistent"} }, "--logs"},
		{"no out", func(f *neuralFitFlags) { f.out = "" }, "--out"},
		{"neither", func(f *neuralFitFlags) { f.policy = "" }, "exactly one"},
		{"both", func(f *neuralFitFlags) { f.init = "x.json" }, "exactly one"},
		{"not neural", func(f *neuralFitFlags) { f.policy = "linucb" }, "is not neural-linear"},
		{"bad spec", func(f *neuralFitFlags) { f.policy = "neural-linear=hidden:a" }, "--policy"},
		{"weighting", func(f *neuralFitFlags) { f.weighting = "snips" }, "--weighting"},
		{"clip", func(f *neuralFitFlags) { f.clip = 0.5 }, "--clip"},
		{"epochs", func(f *neuralFitFlags) { f.epochs = 0 }, "--epochs"},
		{"from", func(f *neuralFitFlags) { f.from = "yesterday" }, "from"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fl := base
			tc.mod(&fl)
			err := runNeuralFit(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}
