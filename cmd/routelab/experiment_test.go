package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/experiments"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExperimentCmd(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "e.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`
name: cli
policies: [random, thompson]
scenarios: [steady]
seeds: {count: 10, base: 4}
requests: 100000
`), 0o644))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	// The flags shrink the run: 3 seeds from the spec's first, 1500 requests.
	err := runExperiment(context.Background(), experimentFlags{spec: spec, out: out, seeds: 3, requests: 1500, parallel: 2}, &stdout, &stderr)
	require.NoError(t, err)
	assert.Contains(t, stdout.String(), "experiment cli: 6 cells")
	assert.Contains(t, stdout.String(), "(baseline)")
	assert.Empty(t, stderr.String(), "no progress bar when stderr is not a terminal")

	cells, err := experiments.ReadParquet[experiments.CellRow](filepath.Join(out, experiments.FileCells))
	require.NoError(t, err)
	require.Len(t, cells, 6)
	assert.Equal(t, uint64(4), cells[0].Seed)
	assert.Equal(t, int64(1500), cells[0].Requests)
	written, err := experiments.LoadSpec(filepath.Join(out, experiments.FileSpec))
	require.NoError(t, err)
	assert.Equal(t, []uint64{4, 5, 6}, written.Seeds.Values(), "spec.yaml records the overrides")
	assert.Equal(t, 1500, written.Requests)

	// The best policy on each scenario is saved as an artifact that the
	// simulator accepts.
	assert.Contains(t, stdout.String(), filepath.Join(out, "policies"))
	art, err := artifact.Read(filepath.Join(out, "policies", "steady.json"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(art.Spec, "thompson"), "best on steady: %s", art.Spec)
	assert.Equal(t, "experiment", art.Provenance.Source)
	assert.Equal(t, "steady", art.Provenance.Scenario)
	assert.Equal(t, uint64(4), art.Provenance.Seed)
	assert.EqualValues(t, 1500, art.Provenance.Rows)
	assert.Contains(t, art.Provenance.Note, "best of experiment cli")
	require.NoError(t, runSim(context.Background(), simFlags{scenario: "steady", policyFile: filepath.Join(out, "policies", "steady.json"), seed: 1, requests: 100}, nil, &bytes.Buffer{}))
	var list bytes.Buffer
	require.NoError(t, listArtifacts(filepath.Join(out, "policies"), &list, &bytes.Buffer{}))
	assert.Contains(t, list.String(), "experiment")
}

func TestExperimentCmdErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: b\npolicies: [nosuch]\nscenarios: [steady]\nseeds: [1]\n"), 0o644))
	tests := []struct {
		name string
		fl   experimentFlags
		want string
	}{
		{"missing file", experimentFlags{spec: filepath.Join(dir, "none.yaml")}, "--spec"},
		{"invalid spec", experimentFlags{spec: bad}, `policies[0].spec "nosuch"`},
		{"negative parallel", experimentFlags{spec: bad, parallel: -1}, "--parallel -1"},
		{"negative seeds", experimentFlags{spec: bad, seeds: -2}, "--seeds -2"},
		{"negative requests", experimentFlags{spec: bad, requests: -3}, "--requests -3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runExperiment(context.Background(), tt.fl, &out, &out)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// A --requests that ends the runs before a scenario's outage warns on
// stderr and in the report, naming the events it cuts off.
func TestExperimentCmdWarnsAboutCutEvents(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "e.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("name: cut\npolicies: [random, thompson]\nscenarios: [outage, steady]\nseeds: {count: 2}\n"), 0o644))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	require.NoError(t, runExperiment(context.Background(), experimentFlags{spec: spec, out: out, requests: 3000, parallel: 2}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "WARNING: scenario outage")
	assert.Contains(t, stderr.String(), "outage (error) from 10m")
	assert.NotContains(t, stderr.String(), "scenario steady")
	md, err := os.ReadFile(filepath.Join(out, experiments.FileReportMD))
	require.NoError(t, err)
	assert.Contains(t, string(md), "Warning: on outage")

	stderr.Reset()
	require.NoError(t, runExperiment(context.Background(), experimentFlags{spec: spec, out: out, requests: 15000, seeds: 1, parallel: 2}, &stdout, &stderr))
	assert.Empty(t, stderr.String(), "15000 requests at 10/s reach the outage's end at 20m")
}
