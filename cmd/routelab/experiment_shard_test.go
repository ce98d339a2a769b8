package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/routelab/routelab/experiments"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExperimentShardMergeCmd: `experiment --shard 0/2` and `--shard 1/2`
// into one directory, then `experiment merge DIR`, through the command
// line, give the cells Parquet rows of one `experiment` run (but for the
// wall-clock decisions_per_second) and the same report.
func TestExperimentShardMergeCmd(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "e.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`
name: cli-shard
policies: [random, thompson, ucb1]
scenarios: [steady, tasks]
seeds: {count: 2, base: 7}
requests: 1500
`), 0o644))
	run := func(args ...string) string {
		t.Helper()
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		require.NoError(t, root.Execute(), "routelab %v: %s", args, out.String())
		return out.String()
	}
	whole := filepath.Join(dir, "whole")
	run("experiment", "--spec", spec, "--out", whole)
	parts := filepath.Join(dir, "parts")
	assert.Contains(t, run("experiment", "--spec", spec, "--out", parts, "--shard", "0/2"), "shard 0/2: 6 of 12 cells")
	assert.Contains(t, run("experiment", "--spec", spec, "--out", parts, "--shard", "1/2"), "shard 1/2: 6 of 12 cells")
	assert.Contains(t, run("experiment", "merge", parts), "12 cells merged from 2 shards")

	want, err := experiments.ReadParquet[experiments.CellRow](filepath.Join(whole, experiments.FileCells))
	require.NoError(t, err)
	got, err := experiments.ReadParquet[experiments.CellRow](filepath.Join(parts, experiments.FileCells))
	require.NoError(t, err)
	require.Len(t, got, 12)
	for i := range want {
		want[i].DecisionsPerSecond, got[i].DecisionsPerSecond = 0, 0
		assert.Equal(t, want[i], got[i], "cells.parquet row %d: merged vs one run", i)
	}
	w, err := os.ReadFile(filepath.Join(whole, experiments.FileReportMD))
	require.NoError(t, err)
	g, err := os.ReadFile(filepath.Join(parts, experiments.FileReportMD))
	require.NoError(t, err)
	assert.Equal(t, string(w), string(g), "report.md")

	root := newRoot()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"experiment", "--spec", spec, "--out", parts, "--shard", "2/2"})
	assert.ErrorContains(t, root.Execute(), "--shard: shard 2/2")
}
