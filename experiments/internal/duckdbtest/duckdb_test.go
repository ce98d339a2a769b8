package duckdbtest

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDuckDBReadsResults runs a small experiment, writes it, and checks
// DuckDB's view of both tables: row counts, a per-policy aggregate equal to
// the analysis' mean, map columns, and the join of windows to cells.
func TestDuckDBReadsResults(t *testing.T) {
	spec, err := experiments.ParseSpec([]byte(`
name: duck
policies: [random, {label: TS, spec: thompson}]
scenarios: [steady]
seeds: {count: 3}
requests: 2000
report: {plots: false}
`), "")
	require.NoError(t, err)
	res, err := experiments.Run(context.Background(), spec, experiments.Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	dir := t.TempDir()
	a, err := experiments.Write(dir, res)
	require.NoError(t, err)

	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	cells := fmt.Sprintf("read_parquet('%s')", filepath.Join(dir, experiments.FileCells))
	windows := fmt.Sprintf("read_parquet('%s')", filepath.Join(dir, experiments.FileWindows))

	var n int64
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+cells).Scan(&n))
	assert.Equal(t, int64(6), n)
	require.NoError(t, db.QueryRow("SELECT count(*) FROM "+windows).Scan(&n))
	assert.Equal(t, int64(6*50), n)

	rows, err := db.Query("SELECT policy, avg(oracle_ratio), avg(regret), count(DISTINCT seed) FROM " + cells + " GROUP BY policy ORDER BY policy")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var pol string
		var ratio, regret float64
		var seeds int64
		require.NoError(t, rows.Scan(&pol, &ratio, &regret, &seeds))
		want, ok := a.Summary("steady", pol, "oracle_ratio")
		require.True(t, ok, pol)
		assert.InDelta(t, want.Mean, ratio, 1e-12, pol)
		wantRegret, _ := a.Summary("steady", pol, "regret")
		assert.InDelta(t, wantRegret.Mean, regret, 1e-9, pol)
		assert.Equal(t, int64(3), seeds)
	}
	require.NoError(t, rows.Err())

	// Map columns: the arm shares of a cell sum to 1; the last window's
	// cumulative regret is the cell's regret.
	var shareSum, mismatch float64
	require.NoError(t, db.QueryRow("SELECT max(abs(list_sum(map_values(arm_shares)) - 1)) FROM "+cells).Scan(&shareSum))
	assert.Less(t, shareSum, 1e-9)
	require.NoError(t, db.QueryRow(`SELECT max(abs(w.cumulative_regret - c.regret)) FROM `+windows+` w JOIN `+cells+` c
		USING (scenario, policy, seed) WHERE w."window" = 49`).Scan(&mismatch))
	assert.Less(t, mismatch, 1e-6)
}
