package decisionlog

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInspect(t *testing.T) {
	root := t.TempDir()
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock, WriterID: "w1", MaxFileRows: 400})
	rng := rand.New(rand.NewPCG(14, 14))
	arms := map[string]int64{}
	const n = 1000
	for i := range n {
		rec := genRecord(rng, i, 10*time.Second)
		if i%2 == 1 {
			rec.Decision.Policy, rec.Decision.PolicyVersion = "ucb1", "1"
		}
		arms[rec.Decision.Arm().ID]++
		w.Log(&rec)
	}
	require.NoError(t, w.Close())
	fw, err := NewFeedbackWriter(WriterOpts{Root: root, Full: FullBlock, WriterID: "w1"})
	require.NoError(t, err)
	for i := range 7 {
		require.NoError(t, fw.Log(&Feedback{RequestID: "req-1", Time: testBase.Add(time.Duration(i) * time.Minute), HasReward: true, Reward: 1}))
	}
	require.NoError(t, fw.Close())
	// A sidecar with drops from another (gone) writer, a leftover .tmp and a corrupt file.
	require.NoError(t, os.WriteFile(filepath.Join(root, StatsDir, "decisions-w2.json"), []byte(`{"writer_id":"w2","table":"decisions","dropped":42}`), 0o644))
	part := filepath.Join(root, TableDecisions, "dt=2026-11-23", "hour=10")
	require.NoError(t, os.WriteFile(filepath.Join(part, "x.parquet.tmp"), []byte("half"), 0o644))
	bad := filepath.Join(part, "zz.parquet")
	require.NoError(t, os.WriteFile(bad, []byte("not parquet"), 0o644))

	s, err := Inspect(t.Context(), root)
	require.NoError(t, err)
	assert.Equal(t, int64(n), s.Rows)
	assert.Equal(t, 3, s.Files, "1000 rows over 3 hour partitions, under 400 rows each")
	assert.Equal(t, testBase, s.First)
	assert.Equal(t, testBase.Add((n-1)*10*time.Second), s.Last)
	assert.Equal(t, map[string]int64{"thompson@v3": n / 2, "ucb1@1": n / 2}, s.Policies)
	assert.Equal(t, arms, s.Arms)
	assert.Equal(t, map[int32]int64{SchemaVersion: n}, s.SchemaVersions)
	assert.Equal(t, 1, s.FeedbackFiles)
	assert.Equal(t, int64(7), s.FeedbackRows)
	assert.Equal(t, 1, s.TmpFiles)
	assert.Equal(t, uint64(42), s.Dropped)
	assert.Len(t, s.Writers, 3, "decisions-w1, decisions-w2, feedback-w1")
	require.Len(t, s.Corrupt, 1)
	assert.Equal(t, bad, s.Corrupt[0].Path)
}
