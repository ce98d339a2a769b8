// Package duckdbtest checks that DuckDB reads decisionlog's Parquet files:
// it holds only tests, kept apart so the cgo DuckDB build does not slow
// down the decisionlog package's own tests.
package duckdbtest
