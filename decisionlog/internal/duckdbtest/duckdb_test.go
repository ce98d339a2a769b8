package duckdbtest

import (
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDuckDBReadsLogs writes decisions across several hour partitions and
// checks DuckDB's view of them: count, mean reward, Hive partition columns,
// the nested attempts list of structs, nullable columns and propensities.
func TestDuckDBReadsLogs(t *testing.T) {
	root := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root, Full: decisionlog.FullBlock, MaxFileRows: 700})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
	const n = 3000
	var sumReward, sumQuality float64
	var withQuality, attempts, shadows int
	for i := range n {
		arms := []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}}
		chosen := rng.IntN(3)
		rec := decision.Record{
			Time:    base.Add(time.Duration(i) * 2 * time.Second), // 22:00 .. 23:40
			Request: decision.Request{ID: fmt.Sprintf("r%d", i), Features: decision.Features{Task: "chat", Tags: []string{"x=1"}}},
			Decision: decision.Decision{Policy: "thompson", PolicyVersion: "1", Reason: decision.ReasonPolicy,
				Candidates: arms, Probs: []float64{0.5, 0.3, 0.2}, Chosen: chosen},
			Outcome: decision.Outcome{Arm: arms[chosen].ID, Latency: time.Duration(rng.IntN(1000)) * time.Millisecond},
			Reward:  rng.Float64(),
		}
		for j := range 1 + i%3 {
			rec.Outcome.Attempts = append(rec.Outcome.Attempts, decision.Attempt{Arm: arms[(chosen+j)%3].ID, Status: decision.StatusError, Latency: time.Millisecond, Fallback: j})
			attempts++
		}
		if i%4 == 0 {
			rec.Outcome.Quality, rec.Outcome.QualityKnown = rng.Float64(), true
			sumQuality += rec.Outcome.Quality
			withQuality++
		}
		if i%5 == 0 {
			rec.Decision.Shadow = decision.Shadow{Policy: "ucb1", Arm: "b", Prob: 1}
			shadows++
		}
		sumReward += rec.Reward
		w.Log(&rec)
	}
	require.NoError(t, w.Close())

	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	glob := filepath.Join(root, decisionlog.TableDecisions, "**", "*.parquet")
	from := fmt.Sprintf("read_parquet('%s', hive_partitioning=true)", glob)

	var count int64
	var avgReward float64
	require.NoError(t, db.QueryRow("SELECT count(*), avg(reward) FROM "+from).Scan(&count, &avgReward))
	assert.Equal(t, int64(n), count)
	assert.InDelta(t, sumReward/n, avgReward, 1e-9)

	var nq int64
	var avgQ float64
	var nShadow, nAttempts int64
	require.NoError(t, db.QueryRow("SELECT count(quality), avg(quality), count(shadow_policy), sum(len(attempts)) FROM "+from).Scan(&nq, &avgQ, &nShadow, &nAttempts))
	assert.Equal(t, int64(withQuality), nq, "null quality when unknown")
	assert.InDelta(t, sumQuality/float64(withQuality), avgQ, 1e-9)
	assert.Equal(t, int64(shadows), nShadow, "null shadow when none ran")
	assert.Equal(t, int64(attempts), nAttempts)

	rows, err := db.Query("SELECT CAST(dt AS VARCHAR), CAST(hour AS INTEGER), count(*), min(hour_of_day) FROM " + from + " GROUP BY ALL ORDER BY 1, 2")
	require.NoError(t, err)
	type part struct {
		dt        string
		hour, n   int
		hourOfDay int
	}
	var parts []part
	for rows.Next() {
		var p part
		require.NoError(t, rows.Scan(&p.dt, &p.hour, &p.n, &p.hourOfDay))
		parts = append(parts, p)
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, []part{{"2026-11-23", 22, 1800, -1}, {"2026-11-23", 23, 1200, -1}}, parts)

	var arm, status string
	var lat float64
	var fb int
	var p1, chosenProb float64
	var ts time.Time
	require.NoError(t, db.QueryRow("SELECT attempts[2].arm, attempts[2].status, attempts[2].latency_ms, attempts[2].fallback, probs[1], chosen_prob, ts FROM "+from+" WHERE request_id = 'r1'").
		Scan(&arm, &status, &lat, &fb, &p1, &chosenProb, &ts))
	assert.Equal(t, "error", status)
	assert.Equal(t, 1.0, lat)
	assert.Equal(t, 1, fb)
	assert.NotEmpty(t, arm)
	assert.Equal(t, 0.5, p1)
	assert.Contains(t, []float64{0.5, 0.3, 0.2}, chosenProb)
	assert.True(t, base.Add(2*time.Second).Equal(ts), "ts %v", ts)
	assert.False(t, math.IsNaN(avgReward))
}

// TestDuckDBReadsRecoveredFiles: the open file of a writer, as a crash
// leaves it (.tmp and WAL segment), is recovered by the next writer into
// a Parquet file DuckDB reads in full.
func TestDuckDBReadsRecoveredFiles(t *testing.T) {
	live := t.TempDir()
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: live, BatchRows: 100, FlushInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	base := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
	const n = 1000
	for i := range n {
		rec := decision.Record{
			Time:    base.Add(time.Duration(i) * time.Millisecond),
			Request: decision.Request{ID: fmt.Sprintf("r%d", i)},
			Decision: decision.Decision{Policy: "thompson", Reason: decision.ReasonPolicy,
				Candidates: []decision.Arm{{ID: "a"}, {ID: "b"}}, Probs: []float64{0.5, 0.5}},
			Outcome: decision.Outcome{Arm: "a"},
			Reward:  float64(i),
		}
		w.Log(&rec)
	}
	require.Eventually(t, func() bool { s := w.Stats(); return s.Enqueued == n && s.QueueDepth == 0 }, 10*time.Second, 5*time.Millisecond)
	// Copy the open files as SIGKILL would leave them.
	root := t.TempDir()
	open, err := filepath.Glob(filepath.Join(live, "decisions", "*", "*", "*.parquet.*"))
	require.NoError(t, err)
	require.Len(t, open, 2) // .tmp and .wal
	for _, p := range open {
		rel, err := filepath.Rel(live, p)
		require.NoError(t, err)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(root, rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, rel), b, 0o644))
	}
	require.NoError(t, w.Close())

	w2, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: root})
	require.NoError(t, err)
	require.Equal(t, uint64(n), w2.Stats().Recovered)
	require.NoError(t, w2.Close())

	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	var count int64
	var sum float64
	require.NoError(t, db.QueryRow(fmt.Sprintf(
		`SELECT count(*), sum(reward) FROM read_parquet('%s/decisions/**/*.parquet', hive_partitioning=true)`, root)).Scan(&count, &sum))
	assert.Equal(t, int64(n), count)
	assert.Equal(t, float64(n*(n-1)/2), sum)
}
