package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/logship"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
)

// shipToFileBucket ships a log root into a fresh file:// bucket (deleting
// the local copies) and returns the bucket's URL.
func shipToFileBucket(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	url := "file://" + dir + "?prefix=gw-a/"
	b, err := blob.OpenBucket(context.Background(), url)
	require.NoError(t, err)
	defer b.Close()
	s, err := logship.New(logship.Opts{Root: root, Bucket: b, DeleteAfterUpload: true})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Pass(context.Background()))
	require.NotZero(t, s.Stats().Uploaded)
	return url
}

// TestReplayAndTrainReadBucketURL: replay and train given the file://
// URL of shipped logs (--logs) read them like the local directory: the
// same estimates, the same learned state.
func TestReplayAndTrainReadBucketURL(t *testing.T) {
	local := writeSimLogs(t, 3000)
	copyDir := t.TempDir()
	require.NoError(t, os.CopyFS(copyDir, os.DirFS(local)))
	url := shipToFileBucket(t, copyDir)

	replayJSON := func(logs string) []map[string]any {
		t.Helper()
		var out, errOut bytes.Buffer
		fl := replayFlags{logs: []string{logs}, policies: "random", estimators: "ips,snips,dr", bootstrap: 30, level: 0.95, seed: 1,
			clip: 10, tau: 10, lambda: 100, folds: 2, feedback: true, json: true}
		require.NoError(t, runReplay(context.Background(), fl, &out, &errOut), errOut.String())
		var res []map[string]any
		require.NoError(t, json.Unmarshal(out.Bytes(), &res), out.String())
		return res
	}
	want := replayJSON(local)
	got := replayJSON(url)
	assert.Equal(t, want, got, "replay of the bucket URL vs the local directory")
	assert.EqualValues(t, 3000, got[0]["n"])

	train := func(logs string) map[string]any {
		t.Helper()
		art := filepath.Join(t.TempDir(), "eg.json")
		var out bytes.Buffer
		fl := trainFlags{logs: []string{logs}, policy: "epsilon-greedy=epsilon:0.05;seed:3", out: art, seed: 1, feedback: true, quiet: true}
		require.NoError(t, runTrain(context.Background(), fl, &out, &bytes.Buffer{}))
		assert.Contains(t, out.String(), "on 3000 rows")
		b, err := os.ReadFile(art)
		require.NoError(t, err)
		var a map[string]any
		require.NoError(t, json.Unmarshal(b, &a))
		return a
	}
	wantArt, gotArt := train(local), train(url)
	assert.Equal(t, wantArt["state"], gotArt["state"], "learned state")
	assert.Equal(t, wantArt["state_sha256"], gotArt["state_sha256"])
	assert.Equal(t, []any{url}, gotArt["provenance"].(map[string]any)["data"], "provenance names the URL")
}

func TestLogsURLErrors(t *testing.T) {
	empty := "file://" + t.TempDir()
	fl := replayFlags{logs: []string{empty}, policies: "random", estimators: "ips", bootstrap: 10, level: 0.95, clip: 10, tau: 10, lambda: 100, folds: 2}
	err := runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorContains(t, err, "no decision-log file")
	fl.logs = []string{"nosuch://bucket"}
	err = runReplay(context.Background(), fl, &bytes.Buffer{}, &bytes.Buffer{})
	assert.ErrorContains(t, err, `--logs "nosuch://bucket"`)
}

// TestStartLogShip: serve's wiring ships the log root and, on stop, makes
// a last pass (the files the log's Close finished).
func TestStartLogShip(t *testing.T) {
	root := t.TempDir()
	bucket := t.TempDir()
	cfg := &gateway.Config{Log: gateway.LogConfig{Dir: root, Ship: gateway.LogShipConfig{URL: "file://" + bucket, Interval: time.Hour, DeleteAfterUpload: true}}}
	stop, metrics, err := startLogShip(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Len(t, metrics, 5)
	// Files finished during or after the first pass (renamed into place
	// whole, as the writer does): the last pass ships them at the latest.
	require.NoError(t, os.Rename(filepath.Join(writeSimLogs(t, 500), "decisions"), filepath.Join(root, "decisions")))
	require.NoError(t, stop())
	left, err := decisionlog.FinishedFiles(root)
	require.NoError(t, err)
	assert.Empty(t, left, "shipped and deleted by the last pass")
	shipped, err := decisionlog.FinishedFiles(bucket)
	require.NoError(t, err)
	assert.NotEmpty(t, shipped)

	cfg.Log.Ship.URL = "nosuch://x"
	_, _, err = startLogShip(cfg, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "log.ship.url")
}
