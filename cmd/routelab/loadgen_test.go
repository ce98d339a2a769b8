package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/provider"
)

func TestLoadgenAgainstAGateway(t *testing.T) {
	cfg, err := gateway.ParseConfig([]byte(`
providers: [{name: sim, type: sim, time_scale: 0.001}]
models:
  - {id: a, provider: sim, sim: {ttft_ms: 50, output_tokens: 5}}
  - {id: b, provider: sim, sim: {ttft_ms: 50, output_tokens: 5}}
log: {dir: ""}
`))
	require.NoError(t, err)
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: newRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.Start(ctx)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	var out, progress bytes.Buffer
	require.NoError(t, runLoadgen(&out, loadgenOpts{Target: hs.URL, RPS: 50, Duration: time.Second, Timeout: 5 * time.Second, Seed: 1, StreamFrac: 0.3, FeedbackRate: 0.5, Workers: 4,
		Progress: &progress, ProgressEvery: 200 * time.Millisecond}))
	assert.Contains(t, out.String(), "success                  100.00%")
	assert.Regexp(t, regexp.MustCompile(`feedback sent / failed\s+\d+ / 0`), out.String())
	line := regexp.MustCompile(`(?m)^\s+\d+s/1s  \d+ answers  100\.0% ok  p50 \S+  p99 \S+  [\d.]+ req/s$`)
	assert.GreaterOrEqual(t, len(line.FindAllString(progress.String(), -1)), 3, "a progress line every 200ms:\n%s", progress.String())
	assert.NotContains(t, out.String(), "answers", "progress stays off the summary")
}

func TestLoadTargeterIsSeededAndValid(t *testing.T) {
	mk := func() *loadTargeter {
		lt := &loadTargeter{url: "http://x/v1/chat/completions", model: "auto", streamFrac: 0.2}
		lt.rng = newLoadRand(7)
		for _, m := range loadMix {
			lt.total += m.weight
		}
		return lt
	}
	a, b := mk(), mk()
	tasks := map[string]int{}
	for range 500 {
		var ta, tb vegeta.Target
		require.NoError(t, a.next(&ta))
		require.NoError(t, b.next(&tb))
		assert.Equal(t, ta.Body, tb.Body, "same seed, same requests")
		r, err := provider.ParseRequest(ta.Body)
		require.NoError(t, err, "%s", ta.Body)
		tasks[gateway.GuessTask(r.Messages)]++
	}
	assert.GreaterOrEqual(t, len(tasks), 5, "a varied task mix: %v", tasks)
}

func TestLoadgenOptsValidation(t *testing.T) {
	ok := loadgenOpts{Target: "http://gw:8080/", RPS: 1, Duration: time.Second}
	got, err := ok.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, loadgenOpts{Target: "http://gw:8080", Model: "auto", RPS: 1, Duration: time.Second, Timeout: 60 * time.Second, Workers: 64, ProgressEvery: 2 * time.Second}, got, "zero values filled, trailing / dropped")
	tests := []struct {
		name string
		edit func(*loadgenOpts)
		want string
	}{
		{"rps", func(o *loadgenOpts) { o.RPS = 0 }, "--rps"},
		{"duration", func(o *loadgenOpts) { o.Duration = 0 }, "--duration"},
		{"timeout", func(o *loadgenOpts) { o.Timeout = -time.Second }, "--timeout"},
		{"stream", func(o *loadgenOpts) { o.StreamFrac = 1.5 }, "--stream"},
		{"feedback", func(o *loadgenOpts) { o.FeedbackRate = -0.1 }, "--feedback-rate"},
		{"target", func(o *loadgenOpts) { o.Target = "gw:8080" }, "--target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := o.withDefaults()
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
