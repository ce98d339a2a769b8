package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/logship"
	"gocloud.dev/blob"
)

// startLogShip starts shipping cfg.Log.Dir to log.ship.url (nothing when
// either is empty). stop ends the loop after a last pass — call it after
// the decision log is closed, so the files Close finished are shipped
// too — and closes the bucket.
func startLogShip(cfg *gateway.Config, log *slog.Logger) (stop func() error, metrics []prometheus.Collector, err error) {
	sc := cfg.Log.Ship
	if sc.URL == "" {
		return func() error { return nil }, nil, nil
	}
	if cfg.Log.Dir == "" {
		log.Warn("log.ship.url ignored: decision logging is disabled", "url", sc.URL)
		return func() error { return nil }, nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b, err := blob.OpenBucket(ctx, sc.URL)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("log.ship.url %q: %w", sc.URL, err)
	}
	s, err := logship.New(logship.Opts{Root: cfg.Log.Dir, Bucket: b, URL: sc.URL, Interval: sc.Interval,
		DeleteAfterUpload: sc.DeleteAfterUpload, MaxAttempts: sc.MaxAttempts, MaxBackoff: sc.MaxBackoff, Logger: log})
	if err != nil {
		cancel()
		_ = b.Close()
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	log.Info("shipping decision logs", "dir", cfg.Log.Dir, "url", sc.URL, "delete_after_upload", sc.DeleteAfterUpload)
	stop = func() error {
		cancel()
		<-done
		st := s.Stats()
		log.Info("log shipping stopped", "uploaded", st.Uploaded, "failed", st.Failed, "pending", st.Pending)
		return errors.Join(s.Close(), b.Close())
	}
	return stop, s.Collectors(), nil
}

// openLogURLs replaces every bucket URL among logs by a temporary
// directory holding a copy of the shipped log files under it (see
// logship.Fetch; decision files in hour partitions outside [from, to) are
// not fetched), so that the readers see a local log root. cleanup removes
// the copies.
func openLogURLs(ctx context.Context, logs []string, from, to time.Time, errOut io.Writer) (paths []string, cleanup func(), err error) {
	var tmps []string
	cleanup = func() {
		for _, d := range tmps {
			_ = os.RemoveAll(d)
		}
	}
	paths = make([]string, len(logs))
	for i, l := range logs {
		if !logship.IsURL(l) {
			paths[i] = l
			continue
		}
		b, err := blob.OpenBucket(ctx, l)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("--logs %q: %w", l, err)
		}
		dir, err := os.MkdirTemp("", "routelab-logs-")
		if err != nil {
			_ = b.Close()
			cleanup()
			return nil, nil, fmt.Errorf("--logs %q: %w", l, err)
		}
		tmps = append(tmps, dir)
		st, err := logship.Fetch(ctx, b, dir, logship.FetchOpts{From: from, To: to})
		_ = b.Close()
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("--logs %q: %w", l, err)
		}
		fmt.Fprintf(errOut, "--logs %s: read %d files (%d bytes) into %s\n", l, st.Files, st.Bytes, dir)
		paths[i] = dir
	}
	return paths, cleanup, nil
}
