package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogsInspect(t *testing.T) {
	root := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, Full: decisionlog.FullBlock})
	require.NoError(t, err)
	base := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for i := range 10 {
		rec := decision.Record{
			Time:    base.Add(time.Duration(i) * time.Minute),
			Request: decision.Request{ID: fmt.Sprint(i)},
			Decision: decision.Decision{Policy: "random", PolicyVersion: "1", Candidates: []decision.Arm{{ID: "a"}, {ID: "b"}},
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

// TestLogsInspectOpenFiles: rows of a running writer are counted from its
// WAL segment by default (not with --include-open=false), and the loss
// and recovery lines are shown.
func TestLogsInspectOpenFiles(t *testing.T) {
	root := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, FlushInterval: 20 * time.Millisecond})
	require.NoError(t, err)
	defer w.Close()
	base := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	for i := range 20 {
		rec := decision.Record{Time: base.Add(time.Duration(i) * time.Second), Request: decision.Request{ID: fmt.Sprint(i)},
			Decision: decision.Decision{Policy: "random", PolicyVersion: "1", Candidates: []decision.Arm{{ID: "a"}}, Probs: []float64{1}}}
		w.Log(&rec)
	}
	inspect := func(args ...string) decisionlog.Summary {
		cmd := newLogsCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"inspect", root, "--json"}, args...))
		require.NoError(t, cmd.Execute())
		var s decisionlog.Summary
		require.NoError(t, json.Unmarshal(out.Bytes(), &s))
		return s
	}
	require.Eventually(t, func() bool { return inspect().Rows == 20 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, int64(20), inspect().OpenRows)
	assert.Zero(t, inspect("--include-open=false").Rows)

	cmd := newLogsCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"inspect", root})
	require.NoError(t, cmd.Execute())
	assert.Contains(t, out.String(), "recovered")
	assert.Contains(t, out.String(), "lost")
	assert.Contains(t, out.String(), "20 rows in 1 .wal segment")
}

// TestSimLog: `routelab sim --log DIR` writes every decision through the
// decision-log writer, and the log reads back with the simulator's counts.
func TestSimLog(t *testing.T) {
	root := t.TempDir()
	cmd := newSimCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--scenario", "steady", "--requests", "3000", "--seed", "7", "--json", "--log", root})
	require.NoError(t, cmd.Execute())
	var res struct {
		Requests   int     `json:"requests"`
		MeanReward float64 `json:"mean_reward"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &res), "stdout stays one JSON object")
	assert.Contains(t, errOut.String(), "logged 3000 decisions")

	var n int
	var sum float64
	ids := map[string]bool{}
	for rec, err := range decisionlog.NewReader(decisionlog.ReaderOpts{Paths: []string{root}}).Records(t.Context()) {
		require.NoError(t, err)
		n++
		sum += rec.Reward
		ids[rec.Request.ID] = true
		require.Len(t, rec.Decision.Probs, len(rec.Decision.Candidates))
	}
	assert.Equal(t, res.Requests, n)
	assert.Len(t, ids, n, "unique request ids")
	assert.InDelta(t, res.MeanReward, sum/float64(n), 1e-9, "logged rewards are the simulator's")
}

// TestSimLogRefusesToMix: a second `sim --log DIR` into a directory that
// already holds a log fails with a message naming --append, and --append
// adds the second run's rows.
func TestSimLogRefusesToMix(t *testing.T) {
	root := t.TempDir()
	run := func(extra ...string) error {
		cmd := newSimCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"--scenario", "steady", "--requests", "200", "--seed", "3", "--json", "--log", root}, extra...))
		return cmd.Execute()
	}
	require.NoError(t, run())
	err := run()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--append")
	assert.Contains(t, err.Error(), "already holds")
	require.NoError(t, run("--append"))
	n := 0
	for _, err := range decisionlog.NewReader(decisionlog.ReaderOpts{Paths: []string{root}}).Records(t.Context()) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 400, n, "the refused run wrote nothing; --append added 200 rows")
}

// TestLogsInspectShowsRefusals: refused requests are summarised per code.
func TestLogsInspectShowsRefusals(t *testing.T) {
	var buf bytes.Buffer
	s := &decisionlog.Summary{Rows: 10, Refused: map[string]int64{"no_model_available": 3, "rate_limit_exceeded": 2}}
	require.NoError(t, writeLogSummary(&buf, s))
	assert.Contains(t, buf.String(), "5 rows of requests refused before any attempt (no_model_available 3, rate_limit_exceeded 2)")
	buf.Reset()
	s.Refused = map[string]int64{}
	require.NoError(t, writeLogSummary(&buf, s))
	assert.NotContains(t, buf.String(), "refused")
}
