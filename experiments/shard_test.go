package experiments

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Shard
		err  bool
	}{
		{"0/2", Shard{0, 2}, false},
		{"3/4", Shard{3, 4}, false},
		{"0/1", Shard{0, 1}, false},
		{"2/2", Shard{}, true},
		{"-1/2", Shard{}, true},
		{"0/0", Shard{}, true},
		{"1", Shard{}, true},
		{"a/2", Shard{}, true},
	} {
		got, err := ParseShard(tc.in)
		if tc.err {
			assert.Error(t, err, "ParseShard(%q)", tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

// TestShardMergeEqualsOneRun: --shard 0/2 and 1/2, written to disk and
// merged, give the cells and windows Parquet rows and the report of one
// whole run, byte for byte; the wall-clock column (decisions_per_second)
// is the one difference, and in the merge it is each shard's own figure.
func TestShardMergeEqualsOneRun(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	ctx := context.Background()
	whole, err := Run(ctx, smallSpec(t), Opts{Registry: reg, Parallel: 2})
	require.NoError(t, err)
	wholeDir := filepath.Join(t.TempDir(), "whole")
	_, err = Write(wholeDir, whole)
	require.NoError(t, err)

	shardDir := t.TempDir() // both slices into one directory, as an Indexed Job's shared volume would
	var perShard []float64
	for i := range 2 {
		p, err := RunShard(ctx, smallSpec(t), Opts{Registry: reg, Parallel: 2}, Shard{i, 2})
		require.NoError(t, err)
		assert.Len(t, p.Cells, 6, "shard %d/2 of 12 cells", i)
		for _, c := range p.Cells {
			assert.Equal(t, i, c.Index%2, "cell %d in shard %d", c.Index, i)
		}
		_, err = WritePartial(shardDir, p)
		require.NoError(t, err)
		for _, c := range p.Cells {
			perShard = append(perShard, c.Result.DecisionsPerSecond)
		}
	}
	parts, err := ReadPartials(shardDir)
	require.NoError(t, err)
	require.Len(t, parts, 2)
	merged, err := Merge(parts, reg, "")
	require.NoError(t, err)
	mergedDir := filepath.Join(t.TempDir(), "merged")
	_, err = Write(mergedDir, merged)
	require.NoError(t, err)

	wantCells, err := ReadParquet[CellRow](filepath.Join(wholeDir, FileCells))
	require.NoError(t, err)
	gotCells, err := ReadParquet[CellRow](filepath.Join(mergedDir, FileCells))
	require.NoError(t, err)
	require.Len(t, gotCells, len(wantCells))
	var gotDPS []float64
	for i := range wantCells {
		gotDPS = append(gotDPS, gotCells[i].DecisionsPerSecond)
		wantCells[i].DecisionsPerSecond, gotCells[i].DecisionsPerSecond = 0, 0
		assert.Equal(t, wantCells[i], gotCells[i], "cells.parquet row %d: merged vs one run", i)
	}
	assert.ElementsMatch(t, perShard, gotDPS, "decisions_per_second: the shards' own figures")

	wantWin, err := ReadParquet[WindowRow](filepath.Join(wholeDir, FileWindows))
	require.NoError(t, err)
	gotWin, err := ReadParquet[WindowRow](filepath.Join(mergedDir, FileWindows))
	require.NoError(t, err)
	assert.Equal(t, wantWin, gotWin, "windows.parquet rows")
	wb, err := os.ReadFile(filepath.Join(wholeDir, FileWindows))
	require.NoError(t, err)
	gb, err := os.ReadFile(filepath.Join(mergedDir, FileWindows))
	require.NoError(t, err)
	assert.Equal(t, wb, gb, "windows.parquet bytes (no wall-clock column)")

	for _, f := range []string{FileReportMD, FileReportHTML, FileSpec} {
		w, err := os.ReadFile(filepath.Join(wholeDir, f))
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(mergedDir, f))
		require.NoError(t, err)
		assert.Equal(t, string(w), string(g), "%s: merged vs one run", f)
	}
}

func TestMergeRefusesIncompleteOrMixedShards(t *testing.T) {
	reg := policy.NewBuiltinRegistry()
	ctx := context.Background()
	p0, err := RunShard(ctx, smallSpec(t), Opts{Registry: reg}, Shard{0, 3})
	require.NoError(t, err)
	p1, err := RunShard(ctx, smallSpec(t), Opts{Registry: reg}, Shard{1, 3})
	require.NoError(t, err)

	_, err = Merge([]*Partial{p0, p1}, reg, "")
	assert.ErrorContains(t, err, "shards 2/3 missing")
	_, err = Merge([]*Partial{p0, p0}, reg, "")
	assert.ErrorContains(t, err, "shard 0/3 given twice")

	other := *p1
	other.Spec = append([]byte("# changed\n"), p1.Spec...)
	_, err = Merge([]*Partial{p0, &other}, reg, "")
	assert.ErrorContains(t, err, "different spec")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "part-0000-of-0001.gob"), []byte("not gob"), 0o644))
	_, err = ReadPartials(dir)
	assert.ErrorContains(t, err, "part-0000-of-0001.gob: not a partial file")
	_, err = ReadPartials(t.TempDir())
	assert.ErrorContains(t, err, "no part-*-of-*.gob file")
}
