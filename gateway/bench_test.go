package gateway

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// memProvider answers at once from memory, so the benchmark measures the
// gateway alone.
type memProvider struct{}

var memBody = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":62,"completion_tokens":19,"total_tokens":81}}`)

func (memProvider) Name() string { return "mem" }
func (memProvider) Complete(_ context.Context, c *provider.Call) (provider.Result, error) {
	// Encode the upstream body as the OpenAI provider would.
	model := c.ModelJSON
	if model == nil {
		model = provider.QuoteJSON(c.Model)
	}
	_ = c.Req.AppendBody(make([]byte, 0, c.Req.Size+64), map[string][]byte{"model": model})
	return provider.Result{Body: memBody, Usage: provider.Usage{PromptTokens: 62, CompletionTokens: 19}}, nil
}
func (memProvider) Stream(context.Context, *provider.Call, func([]byte) error) (provider.Result, error) {
	return provider.Result{}, provider.StatusError(501, "")
}

type nopSink struct{}

func (nopSink) Log(*decision.Record) {}

var benchRequest = []byte(`{"model":"auto","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and accurately."},{"role":"user","content":"What is the capital of France, and since when has it been the capital? Please answer in one sentence."}],"temperature":0.2,"max_tokens":128,"user":"bench-user"}`)

// BenchmarkChatHandler is the gateway's own cost per non-streaming
// request (decode, features, rule filter, thompson, fallback bookkeeping,
// metrics, feedback store, log sink hand-off) with an in-memory upstream.
// The feedback store (100k decisions by default) is filling; see
// BenchmarkChatHandlerSteady for it full.
func BenchmarkChatHandler(b *testing.B) { benchChat(b, "") }

// BenchmarkChatHandlerSteady is BenchmarkChatHandler with the feedback
// store full (1024 decisions), as under sustained load: every request
// evicts the oldest decision and credits its deferred update.
func BenchmarkChatHandlerSteady(b *testing.B) { benchChat(b, "feedback: {max_entries: 1024}\n") }

func benchChat(b *testing.B, extra string) {
	cfg, err := ParseConfig([]byte(`
providers: [{name: mem, type: sim, health_check: false}]
models:
  - {id: m1, provider: mem, sim: {}}
  - {id: m2, provider: mem, sim: {}}
  - {id: m3, provider: mem, sim: {}}
fallbacks: [{name: g, models: [m1, m2, m3], when: ["status in (429, 5xx, timeout)", "error_rate > 0.05"]}]
log: {dir: ""}
` + extra))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: nopSink{},
		Providers: map[string]provider.Provider{"mem": memProvider{}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	serve := func() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(benchRequest))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	if extra != "" {
		for range 2048 { // fill the store
			serve()
		}
	}
	b.ReportAllocs()
	c0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		serve()
	}
	b.StopTimer()
	// CPU time (user+system, GC included) per request: steadier than the
	// wall clock on a shared machine.
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

func BenchmarkParseRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := provider.ParseRequest(benchRequest); err != nil {
			b.Fatal(err)
		}
	}
}
