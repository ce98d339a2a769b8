package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decisionlog"
)

// TestTrainLearnerRouter: train --learner fits a linear router from an
// exploring logger's decision log, and the artifact serves (sim
// --policy-file, the gateway's loader) close to the oracle from its first
// request, far above the logger's own reward.
func TestTrainLearnerRouter(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "L")
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logs, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "tasks", policy: "random", seed: 1, requests: 10000}, w, &bytes.Buffer{}))
	require.NoError(t, w.Close())
	logger := simJSON(t, simFlags{scenario: "tasks", policy: "random", seed: 1, requests: 1000})

	for _, learner := range []string{"ridge-ips", "ridge-dr", "ridge-dm"} {
		art := filepath.Join(dir, learner+".json")
		var out bytes.Buffer
		fl := trainFlags{logs: []string{logs}, learner: learner, l2: 0.01, out: art, seed: 1, quiet: true, scenario: "tasks"}
		require.NoError(t, runTrain(context.Background(), fl, &out, &bytes.Buffer{}))
		assert.Contains(t, out.String(), "fitted "+learner+" router on 10000 rows")
		a, err := artifact.Read(art)
		require.NoError(t, err)
		assert.Contains(t, a.Spec, "linear-router")
		assert.Equal(t, "tasks", a.Provenance.Scenario)

		got := simJSON(t, simFlags{scenario: "tasks", policyFile: art, seed: 1, requests: 1000})
		ratio := func(m map[string]any) float64 {
			return m["expected_mean_reward"].(float64) / m["oracle_mean_reward"].(float64)
		}
		t.Logf("%s: %.4f of the oracle's reward (the uniform logger %.4f)", learner, ratio(got), ratio(logger))
		assert.GreaterOrEqual(t, ratio(got), 0.97, learner)
		assert.Less(t, ratio(logger), 0.9, "the logger itself is far from the oracle, or the test shows nothing")
	}

	bad := []struct {
		fl  trainFlags
		msg string
	}{
		{trainFlags{learner: "ridge-xx", l2: 0.01}, `--learner "ridge-xx": want one of ridge-dm, ridge-dr, ridge-ips`},
		{trainFlags{learner: "ridge-ips", policy: "linucb", l2: 0.01}, "not with --policy or --init"},
		{trainFlags{learner: "ridge-ips", unweighted: true, l2: 0.01}, "use --learner ridge-dm"},
		{trainFlags{learner: "ridge-ips", l2: 0}, "--l2 0"},
		// steady's providers are not the logged arms.
		{trainFlags{learner: "ridge-ips", l2: 0.01, scenario: "steady"}, "is not in the catalogue"},
	}
	for _, b := range bad {
		b.fl.logs, b.fl.out, b.fl.quiet = []string{logs}, filepath.Join(dir, "bad.json"), true
		err := runTrain(context.Background(), b.fl, &bytes.Buffer{}, &bytes.Buffer{})
		require.Error(t, err, b.msg)
		assert.Contains(t, err.Error(), b.msg)
	}
}
