package offline_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/offline"
)

// TestLogSource: every pass yields the same joined records; a corrupt file
// is an error unless SkipBad, which warns once (first pass); progress sees
// the first pass's row count as the later passes' total.
func TestLogSource(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	recs := make([]decision.Record, 5)
	for i := range recs {
		recs[i] = logRecord(rng, i)
	}
	writeLogs(t, root, recs, []decisionlog.Feedback{{RequestID: "req-2", Time: recs[2].Time, Reward: 0.75, HasReward: true}})
	bad := filepath.Join(root, "junk.parquet")
	require.NoError(t, os.WriteFile(bad, []byte("not parquet"), 0o644))

	opts := offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: []string{root}}, Feedback: true}
	strict := &offline.LogSource{Opts: opts}
	err := strict.Scan(context.Background(), func(*decision.Record) error { return nil })
	var fe *decisionlog.FileError
	require.True(t, errors.As(err, &fe), "got %v, want a *decisionlog.FileError", err)
	assert.Equal(t, bad, fe.Path)

	var warn bytes.Buffer
	var totals []int64
	var added int64
	src := &offline.LogSource{Opts: opts, SkipBad: true, Warn: &warn,
		Progress: func(pass int, total int64) (func(int64), func()) {
			totals = append(totals, total)
			return func(n int64) { added += n }, func() {}
		}}
	var passes [2][]decision.Record
	for p := range passes {
		require.NoError(t, src.Scan(context.Background(), func(rec *decision.Record) error {
			passes[p] = append(passes[p], *rec)
			return nil
		}))
	}
	require.Len(t, passes[0], len(recs))
	assert.Equal(t, passes[0], passes[1], "passes yield the same records")
	assert.Equal(t, 0.75, passes[0][2].Reward, "feedback joined")
	assert.Equal(t, decision.RewardDelayed, passes[0][2].RewardSource)
	assert.Equal(t, 1, bytes.Count(warn.Bytes(), []byte("skipping log file")), "warned once: %s", warn.String())
	assert.Equal(t, []int64{-1, int64(len(recs))}, totals)
	assert.Equal(t, int64(2*len(recs)), added)
	assert.Equal(t, 2, src.Passes())
}
