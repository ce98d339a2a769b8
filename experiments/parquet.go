package experiments

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
	"github.com/routelab/routelab/internal/atomicfile"
)

// CellRow is one row of cells.parquet: one simulation of the grid.
type CellRow struct {
	Experiment         string             `parquet:"experiment,dict"`
	Scenario           string             `parquet:"scenario,dict"`
	Policy             string             `parquet:"policy,dict"`
	PolicySpec         string             `parquet:"policy_spec"`
	PolicyName         string             `parquet:"policy_name,dict"`
	PolicyVersion      string             `parquet:"policy_version,dict"`
	Seed               uint64             `parquet:"seed"`
	PolicySeed         uint64             `parquet:"policy_seed"`
	Requests           int64              `parquet:"requests"`
	VirtualSeconds     float64            `parquet:"virtual_seconds"`
	MeanReward         float64            `parquet:"mean_reward"`
	ExpectedMeanReward float64            `parquet:"expected_mean_reward"`
	OracleMeanReward   float64            `parquet:"oracle_mean_reward"`
	OracleRatio        float64            `parquet:"oracle_ratio"`
	Regret             float64            `parquet:"regret"`
	CostTotal          float64            `parquet:"cost_total"`
	LatencyP50MS       float64            `parquet:"latency_p50_ms"`
	LatencyP99MS       float64            `parquet:"latency_p99_ms"`
	FailureRate        float64            `parquet:"failure_rate"`
	StatusCounts       map[string]int64   `parquet:"status_counts"`
	ArmShares          map[string]float64 `parquet:"arm_shares"`
	OracleArmShares    map[string]float64 `parquet:"oracle_arm_shares"`
	// DecisionsPerSecond is wall-clock throughput: the one column that is
	// not a deterministic function of the spec.
	DecisionsPerSecond float64 `parquet:"decisions_per_second"`
}

// WindowRow is one row of windows.parquet: one time-series window of one
// cell.
type WindowRow struct {
	Experiment         string             `parquet:"experiment,dict"`
	Scenario           string             `parquet:"scenario,dict"`
	Policy             string             `parquet:"policy,dict"`
	Seed               uint64             `parquet:"seed"`
	Window             int32              `parquet:"window"`
	First              int64              `parquet:"first"`
	Requests           int64              `parquet:"requests"`
	StartSeconds       float64            `parquet:"start_seconds"`
	MeanReward         float64            `parquet:"mean_reward"`
	ExpectedMeanReward float64            `parquet:"expected_mean_reward"`
	OracleMeanReward   float64            `parquet:"oracle_mean_reward"`
	FailureRate        float64            `parquet:"failure_rate"`
	CumulativeRegret   float64            `parquet:"cumulative_regret"`
	ArmShares          map[string]float64 `parquet:"arm_shares"`
	OracleArmShares    map[string]float64 `parquet:"oracle_arm_shares"`
}

// CellRows returns one row per cell, in the results' order.
func (r *Results) CellRows() []CellRow {
	rows := make([]CellRow, len(r.Cells))
	for i, c := range r.Cells {
		res := c.Result
		counts := make(map[string]int64, len(res.StatusCounts))
		for k, v := range res.StatusCounts {
			counts[k] = int64(v)
		}
		rows[i] = CellRow{
			Experiment: r.Spec.Name, Scenario: c.Scenario, Policy: c.Policy, PolicySpec: c.PolicySpec,
			PolicyName: res.Policy, PolicyVersion: res.PolicyVersion, Seed: c.Seed, PolicySeed: c.PolicySeed,
			Requests: int64(res.Requests), VirtualSeconds: res.VirtualSeconds,
			MeanReward: res.MeanReward, ExpectedMeanReward: res.ExpectedMeanReward, OracleMeanReward: res.OracleMeanReward,
			OracleRatio: OracleRatio(res), Regret: res.Regret, CostTotal: res.CostTotal,
			LatencyP50MS: res.LatencyP50MS, LatencyP99MS: res.LatencyP99MS, FailureRate: res.FailureRate,
			StatusCounts: counts, ArmShares: res.ArmShares, OracleArmShares: res.OracleArmShares,
			DecisionsPerSecond: res.DecisionsPerSecond,
		}
	}
	return rows
}

// WindowRows returns one row per window of every cell, in the results'
// order.
func (r *Results) WindowRows() []WindowRow {
	var rows []WindowRow
	for _, c := range r.Cells {
		for i, w := range c.Result.Windows {
			rows = append(rows, WindowRow{
				Experiment: r.Spec.Name, Scenario: c.Scenario, Policy: c.Policy, Seed: c.Seed,
				Window: int32(i), First: int64(w.First), Requests: int64(w.Requests), StartSeconds: w.StartSeconds,
				MeanReward: w.MeanReward, ExpectedMeanReward: w.ExpectedMeanReward, OracleMeanReward: w.OracleMeanReward,
				FailureRate: w.FailureRate, CumulativeRegret: w.CumulativeRegret,
				ArmShares: w.ArmShares, OracleArmShares: w.OracleArmShares,
			})
		}
	}
	return rows
}

// rowGroupRows bounds a row group's memory.
const rowGroupRows = 64 << 10

// writeParquet writes rows to path atomically: to path+".tmp", Close,
// fsync, then rename, so a reader never sees a file whose footer is
// missing (such a file is unreadable).
func writeParquet[T any](path string, rows []T) error {
	return atomicfile.Write(path, func(f io.Writer) error {
		w := parquet.NewGenericWriter[T](f, parquet.MaxRowsPerRowGroup(rowGroupRows), parquet.Compression(&parquet.Zstd))
		for len(rows) > 0 {
			n := min(len(rows), rowGroupRows)
			if _, err := w.Write(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("close parquet writer: %w", err)
		}
		return nil
	})
}

// ReadParquet reads every row of a cells.parquet or windows.parquet file
// (T is CellRow or WindowRow). A damaged file is an error, not a panic.
func ReadParquet[T any](path string) (rows []T, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer func() {
		if p := recover(); p != nil {
			rows, err = nil, fmt.Errorf("read %s: %v", path, p)
		}
	}()
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	out := make([]T, 0, pf.NumRows())
	for {
		// A fresh buffer per batch: rows hold maps the reader may reuse.
		buf := make([]T, 1024)
		n, rerr := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read %s: %w", path, rerr)
		}
	}
	return out, nil
}
