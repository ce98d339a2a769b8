package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// refusing fails every call in the way mode says: "bad" the upstream
// rejects the request (400), "gone" the client left mid-answer, "down" the
// upstream fails (503).
type refusing struct {
	mode  atomic.Value // string
	calls atomic.Int64
}

func (*refusing) Name() string { return "refusing" }
func (r *refusing) Complete(context.Context, *provider.Call) (provider.Result, error) {
	r.calls.Add(1)
	switch r.mode.Load() {
	case "bad":
		return provider.Result{}, provider.StatusError(400, "malformed")
	case "gone":
		return provider.Result{}, provider.ErrClientGone
	}
	return provider.Result{}, provider.StatusError(503, "down")
}
func (r *refusing) Stream(ctx context.Context, c *provider.Call, _ func([]byte) error) (provider.Result, error) {
	return r.Complete(ctx, c)
}
func (*refusing) Health(context.Context) error { return nil }

// TestBreakerIgnoresFailuresThatAreNotTheModels: client errors (4xx) and
// clients leaving are passed to the breaker as errNotCounted, which it must
// exclude: 15 of them do not open a breaker that 3 failures open.
func TestBreakerIgnoresFailuresThatAreNotTheModels(t *testing.T) {
	up := &refusing{}
	cfg, err := ParseConfig([]byte(`
providers: [{name: rf, type: sim, health_check: false}]
models: [{id: r, provider: rf, sim: {}}]
breaker: {consecutive_failures: 3, min_requests: 1000, open_timeout: 1h}
retries: {max: 0}
log: {dir: ""}
`))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Providers: map[string]provider.Provider{"rf": up},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	url := newTestHTTP(t, srv)
	br := srv.arms["r"].breaker
	for _, mode := range []string{"bad", "gone"} {
		up.mode.Store(mode)
		for i := range 15 {
			code, _, body := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "r", ""))
			require.NotEqual(t, 200, code, "%s", body)
			require.Equal(t, "closed", br.State().String(), "%s attempt %d opened the breaker", mode, i+1)
		}
	}
	assert.Equal(t, int64(30), up.calls.Load(), "every attempt reached the upstream")
	assert.Zero(t, br.Counts().TotalFailures, "none counted as the model's failure")

	// The control: the model's own failures do open it.
	up.mode.Store("down")
	for range 3 {
		code, _, _ := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "r", ""))
		require.NotEqual(t, 200, code)
	}
	assert.Equal(t, "open", br.State().String())
}

// TestRulesApplyToForcedAndFallbackModels: the decision core's rules judge
// forced models and fallback targets too. A forced model outside the
// tenant's allowlist is not found; one whose context window is too small
// has no model available; a fallback target outside the allowlist or the
// context window is skipped.
func TestRulesApplyToForcedAndFallbackModels(t *testing.T) {
	fl := &flaky{}
	_, url := newFlakyGateway(t, `
tenants: [{name: t2, models: [f, big]}, {name: t3, models: [f, tiny, big]}]
providers:
  - {name: fl, type: sim, health_check: false}
  - {name: sim, type: sim, time_scale: 0.001}
models:
  - {id: f, provider: fl, sim: {}}
  - {id: s, provider: sim, sim: {ttft_ms: 10, output_tokens: 2}}
  - {id: tiny, provider: sim, context_window: 3, sim: {ttft_ms: 10, output_tokens: 2}}
  - {id: big, provider: sim, sim: {ttft_ms: 10, output_tokens: 2}}
fallbacks: [{name: g, models: [f, s, tiny, big]}]
breaker: {consecutive_failures: 1000, min_requests: 1000}
log: {dir: ""}
`, fl)
	ask := func(model, tenant string) (int, string, *apiErrorBody) {
		code, hdr, body := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, model, ""), HeaderTenant, tenant)
		if code == 200 {
			return code, hdr.Get(HeaderModel), nil
		}
		e := decodeAPIError(t, body)
		return code, hdr.Get(HeaderModel), &e
	}
	code, _, e := ask("s", "t2")
	require.Equal(t, 404, code)
	assert.Equal(t, "model_not_found", *e.Error.Code)
	assert.Contains(t, e.Error.Message, `the model "s" is not available to tenant "t2"`)

	code, _, e = ask("tiny", "t1")
	require.Equal(t, 503, code)
	assert.Equal(t, "no_model_available", *e.Error.Code)
	assert.Contains(t, e.Error.Message, "rejected by rule context_window")

	fl.down.Store(true)
	code, model, _ := ask("f", "t1")
	require.Equal(t, 200, code)
	assert.Equal(t, "s", model, "t1 may fall back to s")
	code, model, _ = ask("f", "t2")
	require.Equal(t, 200, code)
	assert.Equal(t, "big", model, "t2 may use neither s nor tiny")
	code, model, _ = ask("f", "t3")
	require.Equal(t, 200, code)
	assert.Equal(t, "big", model, "t3 may use tiny, but the prompt does not fit it")
}
