package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

const fastSim = `
providers: [{name: sim, type: sim, time_scale: 0.001, seed: 5}]
models:
  - {id: s1, provider: sim, sim: {ttft_ms: 50, output_tokens: 4, quality: {"": 0.4}}}
  - {id: s2, provider: sim, sim: {ttft_ms: 50, output_tokens: 4, quality: {"": 0.8}}}
log: {dir: ""}
`

func TestHotPolicySwapDropsNoRequest(t *testing.T) {
	gw := startGateway(t, fastSim)
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
				if code != 200 {
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	specs := []string{`{"policy":"ucb1"}`, `{"policy":"epsilon-greedy","params":{"epsilon":0.3,"seed":"2"}}`, `{"policy":"random"}`, `{"policy":"thompson","params":{"model":"gaussian"}}`}
	for i := range 20 {
		code, _, body := post(t, gw.url+"/admin/policy", specs[i%len(specs)])
		require.Equal(t, 200, code, "%s", body)
		time.Sleep(5 * time.Millisecond)
	}
	code, _, body := post(t, gw.url+"/admin/shadow", `{"policy":"ucb1"}`)
	require.Equal(t, 200, code, "%s", body)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	assert.Zero(t, failed.Load(), "of %d requests", done.Load())
	assert.Equal(t, "thompson", gw.srv.Core().Policy().Name())
	assert.Equal(t, "ucb1", gw.srv.Core().ShadowPolicy().Name())

	for _, tc := range []struct{ body, param string }{
		{`{"policy":"nope"}`, "policy"},
		{`{"policy":"ucb1","params":{"c":"x"}}`, "policy"},
		{`{"policy":"ucb1","params":{"zz":1}}`, "policy"},
		{`{"policy":"ucb1","params":{"c":[1]}}`, "params.c"},
		{`{"policy":""}`, "policy"},
	} {
		code, _, body := post(t, gw.url+"/admin/policy", tc.body)
		require.Equal(t, 400, code, "%s → %s", tc.body, body)
		e := decodeAPIError(t, body)
		require.NotNil(t, e.Error.Param)
		assert.Equal(t, tc.param, *e.Error.Param)
	}
	code, _, _ = post(t, gw.url+"/admin/shadow", `{"policy":""}`)
	assert.Equal(t, 200, code)
	assert.Nil(t, gw.srv.Core().ShadowPolicy())
}

func TestGracefulShutdownDrainsStreams(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
providers: [{name: sim, type: sim, time_scale: 0.05}]
models: [{id: s1, provider: sim, sim: {ttft_ms: 100, tokens_per_sec: 20, output_tokens: 10}}]
log: {dir: ""}
`))
	require.NoError(t, err)
	sink := newRecSink()
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: sink, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// 10 tokens at 20 tok/s scaled by 0.05: ~25ms per token, ~250ms in all.
	res, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"auto","stream":true,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	buf := make([]byte, 64)
	_, err = res.Body.Read(buf) // the stream has begun
	require.NoError(t, err)
	cancel()
	rest, err := io.ReadAll(res.Body)
	require.NoError(t, err, "in-flight stream completes after shutdown began")
	assert.True(t, strings.HasSuffix(string(rest), "data: [DONE]\n\n"), "stream ends normally: %q", rest)
	require.NoError(t, <-served)
	assert.Equal(t, 1, sink.len(), "the drained request was logged")
	_, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	assert.Error(t, err, "no new connections after shutdown")
}

// flaky is a provider that fails while down is set.
type flaky struct {
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Complete(ctx context.Context, c *provider.Call) (provider.Result, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return provider.Result{}, provider.StatusError(503, "down")
	}
	return provider.Result{Body: []byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}`)}, nil
}
func (f *flaky) Stream(ctx context.Context, c *provider.Call, emit func([]byte) error) (provider.Result, error) {
	return provider.Result{}, provider.StatusError(501, "no streams")
}
func (f *flaky) Health(context.Context) error {
	if f.down.Load() {
		return fmt.Errorf("down")
	}
	return nil
}

func newFlakyGateway(t *testing.T, yaml string, fl *flaky) (*Server, string) {
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Providers: map[string]provider.Provider{"fl": fl},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := newTestHTTP(t, srv)
	return srv, hs
}

func newTestHTTP(t *testing.T, srv *Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &http.Server{Handler: srv.Handler()}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestBreakerOpensAndFeedsTheRuleFilter(t *testing.T) {
	fl := &flaky{}
	srv, url := newFlakyGateway(t, `
providers:
  - {name: fl, type: sim, health_check: false}
  - {name: sim, type: sim, time_scale: 0.001}
models:
  - {id: f, provider: fl, sim: {}}
  - {id: s, provider: sim, sim: {ttft_ms: 10, output_tokens: 2}}
fallbacks: [{name: g, models: [f, s]}]
breaker: {consecutive_failures: 3, open_timeout: 150ms, half_open_requests: 1}
log: {dir: ""}
`, fl)
	fl.down.Store(true)
	for range 3 {
		code, hdr, body := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "f", ""))
		require.Equal(t, 200, code, "%s", body)
		assert.Equal(t, "s", hdr.Get(HeaderModel), "fallback answers")
	}
	assert.Equal(t, "open", srv.arms["f"].breaker.State().String())
	var d decision.Decision
	req := decision.Request{ID: "x"}
	require.NoError(t, srv.Core().Decide(context.Background(), &req, &d))
	assert.Len(t, d.Candidates, 1, "the open breaker removes f from the candidates")
	calls := fl.calls.Load()
	code, _, _ := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "f", ""))
	assert.Equal(t, 200, code)
	assert.Equal(t, calls, fl.calls.Load(), "an open breaker does not call the upstream")

	fl.down.Store(false)
	time.Sleep(200 * time.Millisecond) // open → half-open
	code, hdr, _ := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "f", ""))
	assert.Equal(t, 200, code)
	assert.Equal(t, "f", hdr.Get(HeaderModel))
	assert.Equal(t, "closed", srv.arms["f"].breaker.State().String())
}

func TestHealthChecksMarkProvidersDown(t *testing.T) {
	fl := &flaky{}
	srv, url := newFlakyGateway(t, `
providers:
  - {name: fl, type: sim}
  - {name: sim, type: sim, time_scale: 0.001}
models:
  - {id: f, provider: fl, sim: {}}
  - {id: s, provider: sim, sim: {ttft_ms: 10, output_tokens: 2}}
health: {unhealthy_after: 2}
log: {dir: ""}
`, fl)
	fl.down.Store(true)
	ctx := context.Background()
	srv.checkHealth(ctx)
	assert.True(t, srv.arms["f"].available(), "one failed probe is not enough")
	srv.checkHealth(ctx)
	assert.False(t, srv.arms["f"].available())
	for range 5 {
		code, hdr, _ := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
		require.Equal(t, 200, code)
		assert.Equal(t, "s", hdr.Get(HeaderModel))
	}
	fl.down.Store(false)
	srv.checkHealth(ctx)
	assert.True(t, srv.arms["f"].available())
	res, err := http.Get(url + "/admin/models")
	require.NoError(t, err)
	defer res.Body.Close()
	var v struct {
		Models []ModelStatus `json:"models"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&v))
	require.Len(t, v.Models, 2)
	assert.Equal(t, "f", v.Models[0].Arm)
	assert.True(t, v.Models[0].ProviderUp)
}

func TestProfileConditionsTakeModelsOutAndBack(t *testing.T) {
	fl := &flaky{}
	srv, _ := newFlakyGateway(t, `
providers:
  - {name: fl, type: sim, health_check: false}
  - {name: sim, type: sim, time_scale: 0.001}
models:
  - {id: f, provider: fl, sim: {}}
  - {id: s, provider: sim, sim: {ttft_ms: 10, output_tokens: 2}}
fallbacks: [{name: g, models: [f, s], when: ["error_rate > 0.3"]}]
conditions: {cooldown: 1s, probe_requests: 3}
log: {dir: ""}
`, fl)
	prof := srv.Core().Profiles()
	fail := decision.Outcome{Arm: "f", Status: decision.StatusError}
	for range 5 {
		prof.Observe(&fail)
	}
	t0 := time.Unix(1000, 0)
	srv.evalConditions(t0)
	assert.False(t, srv.arms["f"].available(), "error rate 1 > 0.3")
	assert.True(t, srv.arms["s"].available())
	srv.evalConditions(t0.Add(500 * time.Millisecond))
	assert.False(t, srv.arms["f"].available(), "still cooling down")
	srv.evalConditions(t0.Add(1100 * time.Millisecond))
	assert.True(t, srv.arms["f"].available(), "probing after the cooldown")
	ok := decision.Outcome{Arm: "f"}
	for range 40 {
		prof.Observe(&ok)
	}
	srv.evalConditions(t0.Add(1200 * time.Millisecond))
	assert.True(t, srv.arms["f"].available(), "healthy probes bring it back")
	assert.Equal(t, condIn, srv.arms["f"].cond)

	// A group never loses all its models.
	failS := decision.Outcome{Arm: "s", Status: decision.StatusError}
	for range 50 {
		prof.Observe(&fail)
		prof.Observe(&failS)
	}
	srv.evalConditions(t0.Add(2 * time.Second))
	assert.True(t, srv.arms["f"].available() && srv.arms["s"].available(), "all bad: keep all")
}

func TestRetryBudget(t *testing.T) {
	now := time.Unix(0, 0)
	b := newRetryBudget(RetryConfig{BudgetRatio: 0.1, BudgetMin: 0}, now)
	n := 0
	for b.take() {
		n++
	}
	assert.Equal(t, 10, n, "initial burst")
	for range 100 {
		b.deposit(now)
	}
	n = 0
	for b.take() {
		n++
	}
	assert.Equal(t, 10, n, "10%% of 100 requests")
}

func TestFeedbackValidation(t *testing.T) {
	gw := startGateway(t, fastSim)
	code, hdr, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
	require.Equal(t, 200, code)
	id := hdr.Get(HeaderRequestID)
	for _, tc := range []struct {
		body  string
		code  int
		param string
	}{
		{`{"quality":0.5}`, 400, "request_id"},
		{`{"request_id":"` + id + `"}`, 400, ""},
		{`{"request_id":"` + id + `","quality":2}`, 400, "quality"},
		{`{"request_id":"` + id + `","reward":-1}`, 400, "reward"},
		{`{"request_id":"` + id + `","thumbs":"sideways"}`, 400, "thumbs"},
		{`{"request_id":"` + id + `","quality":0.5,"reward":0.5}`, 400, ""},
		{`{"request_id":"` + id + `","extra":1,"quality":0.5}`, 400, ""},
		{`{"request_id":"nope","thumbs":true}`, 404, "request_id"},
		{`{"request_id":"` + id + `","thumbs":"down"}`, 200, ""},
	} {
		code, _, body := post(t, gw.url+"/v1/feedback", tc.body)
		require.Equal(t, tc.code, code, "%s → %s", tc.body, body)
		if tc.code != 200 {
			e := decodeAPIError(t, body)
			if tc.param != "" {
				require.NotNil(t, e.Error.Param)
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		}
	}
}

func TestFeaturesFromTheRequest(t *testing.T) {
	gw := startGateway(t, fastSim)
	code, hdr, _ := post(t, gw.url+"/v1/chat/completions",
		`{"model":"auto","metadata":{"team":"search","tenant":"acme"},"messages":[{"role":"user","content":"please fix this python function"}]}`,
		HeaderTags, "exp=b, region=eu")
	require.Equal(t, 200, code)
	rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
	require.True(t, ok)
	f := rec.Request.Features
	assert.Equal(t, "acme", f.Tenant)
	assert.Equal(t, "code", f.Task)
	assert.Equal(t, []string{"exp=b", "region=eu", "team=search"}, f.Tags)
	assert.Positive(t, f.PromptTokens)
	assert.False(t, f.Time.IsZero())
	code, hdr, _ = post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), HeaderTask, "math", HeaderTenant, "t9")
	require.Equal(t, 200, code)
	rec, _ = gw.sink.get(hdr.Get(HeaderRequestID))
	assert.Equal(t, "math", rec.Request.Features.Task)
	assert.Equal(t, "t9", rec.Request.Features.Tenant)
}

func TestGuessTask(t *testing.T) {
	for text, want := range map[string]string{
		"Why does my Go func panic?":         "code",
		"what is 12 * 7":                     "math",
		"Solve the equation x^2 = 4":         "math",
		"Summarize this article for me":      "summarize",
		"Translate 'hello' into French":      "translate",
		"Extract the names from this letter": "extract",
		"How are you today?":                 "chat",
	} {
		raw, _ := json.Marshal(text)
		assert.Equal(t, want, GuessTask([]provider.Message{{Role: "user", Content: raw}}), text)
	}
}

func TestContextualPolicyServes(t *testing.T) {
	gw := startGateway(t, strings.Replace(fastSim, "log: {dir: \"\"}", "policy: {name: linucb}\nlog: {dir: \"\"}", 1))
	for _, task := range []string{"code", "math", "chat", "code"} {
		code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), HeaderTask, task)
		require.Equal(t, 200, code, "%s", body)
		rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
		require.True(t, ok)
		assert.Equal(t, "linucb", rec.Decision.Policy)
		assert.NotEmpty(t, rec.Request.Features.Vector, "the default encoder fills the vector")
	}
	code, _, body := post(t, gw.url+"/admin/policy", `{"policy":"lin-thompson","params":{"seed":3}}`)
	require.Equal(t, 200, code, "%s", body)
	code, _, body = post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
	assert.Equal(t, 200, code, "%s", body)
}

func TestMetricsExposeTheSeedNames(t *testing.T) {
	gw := startGateway(t, fastSim)
	for range 3 {
		code, _, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
		require.Equal(t, 200, code)
	}
	code, _, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "nope", ""))
	require.Equal(t, 404, code)
	res, err := http.Get(gw.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	text := string(b)
	for _, want := range []string{
		`http_requests_total{code="404",model=""} 1`,
		`model_latency_seconds_bucket{model="s`,
		`route_success_rate{source="policy"} 1`,
		`routelab_decisions_total{arm="s`,
		`routelab_breaker_state{model="s1"} 0`,
		`routelab_gateway_overhead_seconds_count 3`,
		`routelab_provider_up{provider="sim"} 1`,
		`go_goroutines`,
	} {
		assert.Contains(t, text, want)
	}
	ok := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, `http_requests_total{code="200"`) {
			var n int
			_, err := fmt.Sscanf(l[strings.LastIndexByte(l, ' ')+1:], "%d", &n)
			require.NoError(t, err)
			ok += n
		}
	}
	assert.Equal(t, 3, ok, "three answered requests counted by model")
}
