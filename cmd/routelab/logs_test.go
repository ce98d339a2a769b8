package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogsInspect(t *testing.T) {
	root := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	base := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for i := range 10 {
		rec := route.Record{
			Time:    base.Add(time.Duration(i) * time.Minute),
			Request: route.Request{ID: fmt.Sprint(i)},
			Decision: route.Decision{Policy: "random", PolicyVersion: "1", Candidates: []policy.Arm{{ID: "a"}, {ID: "b"}},
				Probs: []float64{0.5, 0.5}, Chosen: i % 2},
		}
		w.Log(&rec)
	}
	require.NoError(t, w.Close())

	run := func(args ...string) (string, error) {
		cmd := newLogsCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("inspect", root, "--json")
	require.NoError(t, err)
	var s decisionlog.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	assert.Equal(t, int64(10), s.Rows)
	assert.Equal(t, map[string]int64{"a": 5, "b": 5}, s.Arms)
	assert.Equal(t, map[string]int64{"random@1": 10}, s.Policies)
	assert.Equal(t, base.Add(9*time.Minute), s.Last)

	out, err = run("inspect", root)
	require.NoError(t, err)
	assert.Contains(t, out, "10 decisions")
	assert.Contains(t, out, "random@1")

	require.NoError(t, os.WriteFile(filepath.Join(root, "bad.parquet"), []byte("junk"), 0o644))
	out, err = run("inspect", root)
	require.Error(t, err)
	assert.Contains(t, out, "bad.parquet")

	_, err = run("inspect")
	require.Error(t, err, "a directory is required")
}
