package decisionlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeGood writes n rows in one file under root and returns its path.
func writeGood(t testing.TB, root string, n int, seed uint64) string {
	t.Helper()
	var path string
	w := mustWriter(t, WriterOpts{Root: root, Full: FullBlock, OnCommit: func(c CommitInfo) { path = c.Path }})
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range n {
		rec := genRecord(rng, i, time.Millisecond)
		w.Log(&rec)
	}
	require.NoError(t, w.Close())
	require.NotEmpty(t, path)
	return path
}

func TestCorruptFiles(t *testing.T) {
	good := writeGood(t, t.TempDir(), 300, 11)
	goodBytes, err := os.ReadFile(good)
	require.NoError(t, err)

	foreign := func() []byte {
		var buf bytes.Buffer
		type other struct {
			A int64 `parquet:"a"`
		}
		w := parquet.NewGenericWriter[other](&buf)
		_, err := w.Write([]other{{1}, {2}})
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}()
	newer := func() []byte {
		var buf bytes.Buffer
		w := parquet.NewGenericWriter[Row](&buf, parquet.KeyValueMetadata(MetaSchemaVersion, strconv.Itoa(SchemaVersion+1)))
		_, err := w.Write([]Row{{SchemaVersion: SchemaVersion + 1, Status: "ok", RewardSource: "immediate"}})
		require.NoError(t, err)
		require.NoError(t, w.Close())
		return buf.Bytes()
	}()
	flipped := bytes.Clone(goodBytes)
	for i := 4; i < len(flipped)-200; i += 37 {
		flipped[i] ^= 0xff
	}

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "open parquet"},
		{"garbage", []byte("this is not parquet at all, not even close"), "open parquet"},
		{"truncated footer", goodBytes[:len(goodBytes)-10], "open parquet"},
		{"truncated half", goodBytes[:len(goodBytes)/2], "open parquet"},
		{"foreign parquet", foreign, "not a routelab log file"},
		{"newer schema", newer, "newer than this reader"},
		{"flipped bytes", flipped, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, TableDecisions, "dt=2026-11-23", "hour=10")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			// A good file on each side of the bad one: both still read.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.parquet"), goodBytes, 0o644))
			bad := filepath.Join(dir, "b.parquet")
			require.NoError(t, os.WriteFile(bad, tt.data, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "c.parquet"), goodBytes, 0o644))
			// In-flight files are skipped, whatever they hold.
			require.NoError(t, os.WriteFile(filepath.Join(dir, "d.parquet.tmp"), goodBytes[:100], 0o644))

			got, errs := readAll(t, ReaderOpts{Paths: []string{root}})
			require.NotEmpty(t, errs, "the bad file is reported")
			for _, err := range errs {
				var fe *FileError
				require.True(t, errors.As(err, &fe), "error %v is a *FileError", err)
				assert.Equal(t, bad, fe.Path)
				assert.Contains(t, err.Error(), tt.want)
			}
			assert.GreaterOrEqual(t, len(got), 600, "both good files read")
		})
	}
}

func TestMissingPath(t *testing.T) {
	_, errs := readAll(t, ReaderOpts{Paths: []string{filepath.Join(t.TempDir(), "nope")}})
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], os.ErrNotExist)
}

// FuzzReader feeds arbitrary bytes to the reader as a log file (seeded
// with a valid file and damaged copies of it): errors, never a panic.
// FuzzReader feeds arbitrary bytes to the reader as a Parquet file.
//
// Each execution writes a file and opens it (about 0.5 ms here), and the
// smallest valid file is ~9 KB (36 columns of footer), so minimising a new
// input byte by byte takes tens of thousands of executions: with the
// default -fuzzminimizetime (60s) one interesting input can take the whole
// run, which looked like a stalled worker (issue 14, finding 10; no hang
// or crash was found). Run it with a short minimisation budget:
//
//	go test ./decisionlog -run '^$' -fuzz FuzzReader -fuzztime 60s -fuzzminimizetime 5s
func FuzzReader(f *testing.F) {
	good, err := os.ReadFile(writeGood(f, f.TempDir(), 3, 12))
	require.NoError(f, err)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[len(good)/3:])
	f.Add([]byte("PAR1PAR1"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "x.parquet")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		n := 0
		for _, err := range NewReader(ReaderOpts{Paths: []string{path}, BatchRows: 16}).Records(t.Context()) {
			if err != nil {
				var fe *FileError
				require.True(t, errors.As(err, &fe), "error %v is a *FileError", err)
			}
			n++
			if n > 1000 {
				break
			}
		}
	})
}

func TestReaderOptsErrors(t *testing.T) {
	tests := []struct {
		name string
		o    ReaderOpts
		want string
	}{
		{"no paths", ReaderOpts{}, "paths"},
		{"empty range", ReaderOpts{Paths: []string{"x"}, From: testBase, To: testBase}, "time range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, errs := readAll(t, tt.o)
			assert.Empty(t, recs)
			require.Len(t, errs, 1)
			assert.ErrorContains(t, errs[0], tt.want)
		})
	}
}

// TestSchemaSubsetAndMismatch: a file lacking some columns (as an older
// schema version would) reads with those fields at zero; a column of the
// wrong physical type is a *FileError naming it.
func TestSchemaSubsetAndMismatch(t *testing.T) {
	type subset struct {
		SchemaVersion int32     `parquet:"schema_version"`
		Time          int64     `parquet:"ts,timestamp(microsecond)"`
		RequestID     string    `parquet:"request_id"`
		Candidates    []string  `parquet:"candidates,list"`
		Probs         []float64 `parquet:"probs,list"`
		Status        string    `parquet:"status"`
		RewardSource  string    `parquet:"reward_source"`
		Reward        float64   `parquet:"reward"`
	}
	type mismatch struct {
		SchemaVersion int32  `parquet:"schema_version"`
		Time          int64  `parquet:"ts,timestamp(microsecond)"`
		Reward        string `parquet:"reward"`
	}
	write := func(t *testing.T, path string, rows any) {
		var buf bytes.Buffer
		opts := []parquet.WriterOption{parquet.KeyValueMetadata(MetaSchemaVersion, "1"), parquet.KeyValueMetadata(MetaTable, TableDecisions)}
		switch rows := rows.(type) {
		case []subset:
			w := parquet.NewGenericWriter[subset](&buf, opts...)
			_, err := w.Write(rows)
			require.NoError(t, err)
			require.NoError(t, w.Close())
		case []mismatch:
			w := parquet.NewGenericWriter[mismatch](&buf, opts...)
			_, err := w.Write(rows)
			require.NoError(t, err)
			require.NoError(t, w.Close())
		}
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	dir := t.TempDir()
	ts := testBase.UnixMicro()
	write(t, filepath.Join(dir, "a.parquet"), []subset{{SchemaVersion: 1, Time: ts, RequestID: "x", Candidates: []string{"m1", "m2"}, Probs: []float64{0.25, 0.75}, Status: "timeout", RewardSource: "delayed", Reward: 0.5}})
	write(t, filepath.Join(dir, "b.parquet"), []mismatch{{SchemaVersion: 1, Time: ts, Reward: "high"}})
	write(t, filepath.Join(dir, "c.parquet"), []subset{
		{SchemaVersion: 1, Time: ts, RequestID: "bad", Status: "weird", RewardSource: "immediate"},
		{SchemaVersion: 1, Time: ts, RequestID: "y", Status: "ok", RewardSource: "immediate"},
	})
	recs, errs := readAll(t, ReaderOpts{Paths: []string{dir}})
	require.Len(t, recs, 2, "a bad row does not stop the file")
	assert.Equal(t, "y", recs[1].Request.ID)
	rec := recs[0]
	assert.Equal(t, "x", rec.Request.ID)
	assert.Equal(t, testBase, rec.Time)
	assert.Equal(t, []float64{0.25, 0.75}, rec.Decision.Probs)
	assert.Equal(t, "m2", rec.Decision.Candidates[1].ID)
	assert.Equal(t, decision.StatusTimeout, rec.Outcome.Status)
	assert.Equal(t, decision.RewardDelayed, rec.RewardSource)
	assert.Equal(t, 0.5, rec.Reward)
	assert.Empty(t, rec.Decision.Policy)
	assert.False(t, rec.Outcome.QualityKnown)
	require.Len(t, errs, 2)
	assert.ErrorContains(t, errs[0], "column reward is BYTE_ARRAY, want DOUBLE")
	assert.ErrorContains(t, errs[0], "b.parquet")
	assert.ErrorContains(t, errs[1], `request "bad": unknown status "weird"`)
	assert.ErrorContains(t, errs[1], "c.parquet")
}
