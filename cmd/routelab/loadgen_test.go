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

	var out bytes.Buffer
	require.NoError(t, runLoadgen(&out, hs.URL, "", "auto", 50, time.Second, 5*time.Second, 1, 0.3, 0.5, 4))
	assert.Contains(t, out.String(), "success                  100.00%")
	assert.Regexp(t, regexp.MustCompile(`feedback sent / failed\s+\d+ / 0`), out.String())
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
