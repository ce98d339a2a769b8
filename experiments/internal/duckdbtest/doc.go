// Package duckdbtest checks that DuckDB reads the experiments package's
// Parquet results (cells.parquet, windows.parquet): it holds only tests,
// kept apart so the cgo DuckDB build does not slow down the experiments
// package's own tests.
package duckdbtest
