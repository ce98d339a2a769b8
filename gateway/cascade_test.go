package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/policy"
)

// answerUpstream is an OpenAI-format upstream whose answer depends on the
// model asked: "a" answers "B", "b" answers "B)" when the prompt says
// "easy" and "C" otherwise, "c" answers "A". A model listed in fail
// answers 500. Every call is counted per model, and a call that asks to
// stream is refused (the cascade's members must not stream).
type answerUpstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
	fail  map[string]bool
	// hang makes every call wait for its client to go away; gone counts
	// the calls that saw it.
	hang bool
	gone int
}

func newAnswerUpstream(t *testing.T) *answerUpstream {
	u := &answerUpstream{calls: map[string]int{}, fail: map[string]bool{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Stream {
			http.Error(w, `{"error":{"message":"bad request or stream"}}`, 400)
			return
		}
		u.mu.Lock()
		u.calls[body.Model]++
		fail, hang := u.fail[body.Model], u.hang
		u.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
				u.mu.Lock()
				u.gone++
				u.mu.Unlock()
			case <-time.After(10 * time.Second):
			}
			return
		}
		if fail {
			http.Error(w, `{"error":{"message":"boom"}}`, 500)
			return
		}
		answer := map[string]string{"a": "B", "c": "A"}[body.Model]
		if body.Model == "b" {
			answer = "C"
			if strings.Contains(body.Messages[0].Content, "easy") {
				answer = "B)\n"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-%s","object":"chat.completion","created":1700000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}}`,
			body.Model, body.Model, answer)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *answerUpstream) count(m string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[m]
}

func TestCascadeModel(t *testing.T) {
	up := newAnswerUpstream(t)
	gw := startGateway(t, `
providers: [{name: up, type: openai, base_url: "`+up.srv.URL+`", health_check: false}]
models:
  - {id: a, provider: up, price_in: 0.001, price_out: 0.002}
  - {id: b, provider: up, price_in: 0.01, price_out: 0.02}
  - {id: c, provider: up, price_in: 0.1, price_out: 0.2}
  - {id: cas, cascade: {agree: [a, b], escalate: c}}
log: {dir: ""}
`)
	ask := func(prompt string, stream bool) (float64, map[string]any) {
		t.Helper()
		code, hdr, body := post(t, gw.url+"/v1/chat/completions",
			fmt.Sprintf(`{"model":"cas","stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, prompt))
		require.Equal(t, 200, code, "%s", body)
		rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
		require.True(t, ok, "decision logged")
		assert.Equal(t, "cas", rec.Outcome.Arm)
		var v map[string]any
		if !stream {
			require.NoError(t, json.Unmarshal(body, &v))
		} else {
			ev := sseEvents(body)
			require.NotEmpty(t, ev)
			assert.Equal(t, "[DONE]", ev[len(ev)-1])
			require.NoError(t, json.Unmarshal([]byte(ev[0]), &v), "first chunk %s", ev[0])
		}
		assert.Equal(t, "cas", v["model"], "the answer names the cascade model")
		return rec.Outcome.Cost, v
	}
	content := func(v map[string]any, key string) string {
		return v["choices"].([]any)[0].(map[string]any)[key].(map[string]any)["content"].(string)
	}
	mAgreed := gw.srv.m.cascades.WithLabelValues("cas", "agreed")
	mEsc := gw.srv.m.cascades.WithLabelValues("cas", "escalated")
	mFailed := gw.srv.m.cascades.WithLabelValues("cas", "failed")

	// a and b agree (B and "B)"): a's answer, priced a + b (1k tokens in and out each).
	cost, v := ask("an easy one", false)
	assert.Equal(t, "B", content(v, "message"))
	assert.InDelta(t, 0.001+0.002+0.01+0.02, cost, 1e-12)
	assert.Equal(t, 0, up.count("c"), "no escalation when they agree")
	assert.Equal(t, 1.0, testutil.ToFloat64(mAgreed))

	// They disagree (B vs C): c's answer, priced a + b + c.
	cost, v = ask("a hard one", false)
	assert.Equal(t, "A", content(v, "message"))
	assert.InDelta(t, 0.001+0.002+0.01+0.02+0.1+0.2, cost, 1e-12)
	assert.Equal(t, 1, up.count("c"))
	assert.Equal(t, 1.0, testutil.ToFloat64(mEsc))

	// Streaming: the members are asked without streaming; the answer comes as one chunk.
	_, v = ask("an easy one, streamed", true)
	assert.Equal(t, "B", content(v, "delta"))
	assert.Equal(t, 2.0, testutil.ToFloat64(mAgreed))

	// A failed member cannot agree: escalate (its failure is counted as its own attempt).
	up.mu.Lock()
	up.fail["b"] = true
	up.mu.Unlock()
	cost, v = ask("an easy one", false)
	assert.Equal(t, "A", content(v, "message"))
	assert.InDelta(t, 0.001+0.002+0.1+0.2, cost, 1e-12, "the failed member costs nothing")
	assert.Equal(t, 2.0, testutil.ToFloat64(mEsc))
	assert.Positive(t, testutil.ToFloat64(gw.srv.m.attempts.WithLabelValues("b", "error")))

	// The escalate model failing too fails the request, with a clear error.
	up.mu.Lock()
	up.fail["c"] = true
	up.mu.Unlock()
	code, _, body := post(t, gw.url+"/v1/chat/completions", `{"model":"cas","messages":[{"role":"user","content":"hard"}]}`)
	assert.GreaterOrEqual(t, code, 500, "%s", body)
	assert.Equal(t, 1.0, testutil.ToFloat64(mFailed))

	// /v1/models lists the cascade, owned by "cascade".
	res, err := http.Get(gw.url + "/v1/models")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Contains(t, string(b), `{"id":"cas","object":"model","created":`)
	assert.Contains(t, string(b), `"owned_by":"cascade"`)
}

func TestCascadeConfigErrors(t *testing.T) {
	base := `
providers: [{name: up, type: openai, base_url: "http://127.0.0.1:1"}]
models:
  - {id: a, provider: up}
  - {id: b, provider: up}
  - {id: c, provider: up}
`
	for _, c := range []struct{ model, want string }{
		{`{id: x, provider: up, cascade: {agree: [a, b], escalate: c}}`, "a cascade model has no provider"},
		{`{id: x, cascade: {agree: [a], escalate: c}}`, "needs at least two models to agree"},
		{`{id: x, cascade: {agree: [a, zz], escalate: c}}`, `"zz" is not a model of the catalogue`},
		{`{id: x, cascade: {agree: [a, b], escalate: a}}`, `model "a" named twice`},
		{`{id: x, cascade: {agree: [a, b], escalate: ""}}`, "empty model name"},
	} {
		_, err := ParseConfig([]byte(base + "  - " + c.model + "\n"))
		require.Error(t, err, c.model)
		assert.Contains(t, err.Error(), c.want, c.model)
		assert.Contains(t, err.Error(), "models[3]", "the error names the entry")
	}
	_, err := ParseConfig([]byte(base + "  - {id: x, cascade: {agree: [a, b], escalate: c}}\n  - {id: y, cascade: {agree: [x, b], escalate: c}}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"x" is itself a cascade`)
}

// TestExampleConfigsValidate: every example gateway config parses and
// validates (examples/gateway/cascade.yaml among them), and the cascade
// example builds a server whose catalogue lists the cascade.
func TestExampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../examples/gateway/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = ParseConfig(b)
		assert.NoError(t, err, f)
	}
	b, err := os.ReadFile("../examples/gateway/cascade.yaml")
	require.NoError(t, err)
	cfg, err := ParseConfig(b)
	require.NoError(t, err)
	cfg.Log.Dir = ""
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	assert.Contains(t, string(srv.models), `"id":"vote"`)
}

// TestCascadeClientAbort: a client that gives up while the cascade's
// members are still answering cancels both member calls at once, the
// request leaves the in-flight gauge, and the cascade counts it failed.
func TestCascadeClientAbort(t *testing.T) {
	up := newAnswerUpstream(t)
	up.hang = true
	gw := startGateway(t, `
providers: [{name: up, type: openai, base_url: "`+up.srv.URL+`", health_check: false}]
models:
  - {id: a, provider: up}
  - {id: b, provider: up}
  - {id: c, provider: up}
  - {id: cas, cascade: {agree: [a, b], escalate: c}}
log: {dir: ""}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"cas","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err, "the client gave up")
	require.Eventually(t, func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		return up.gone == 2
	}, 5*time.Second, 5*time.Millisecond, "both member calls cancelled")
	require.Eventually(t, func() bool { return testutil.ToFloat64(gw.srv.m.inflight) == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 0, up.count("c"), "no escalation for a client that is gone")
	assert.Equal(t, 1.0, testutil.ToFloat64(gw.srv.m.cascades.WithLabelValues("cas", "failed")))
}

// TestCascadeCatalogueTerms: a cascade without prices is priced in the
// catalogue at all its members' prices summed (what weighted and other
// pricing policies see; never free), its context window is its smallest
// member's, and prices or a window it sets itself are kept.
func TestCascadeCatalogueTerms(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
providers: [{name: up, type: openai, base_url: "http://127.0.0.1:1"}]
models:
  - {id: a, provider: up, price_in: 0.001, price_out: 0.002, context_window: 8000}
  - {id: b, provider: up, price_in: 0.01, price_out: 0.02}
  - {id: c, provider: up, price_in: 0.1, price_out: 0.2, context_window: 128000}
  - {id: cas, cascade: {agree: [a, b], escalate: c}}
  - {id: own, price_in: 0.05, price_out: 0.06, context_window: 4000, cascade: {agree: [a, b], escalate: c}}
log: {dir: ""}
`))
	require.NoError(t, err)
	in, out, w := cfg.catalogueTerms(&cfg.Models[3])
	assert.InDelta(t, 0.111, in, 1e-12)
	assert.InDelta(t, 0.222, out, 1e-12)
	assert.Equal(t, 8000, w)
	in, out, w = cfg.catalogueTerms(&cfg.Models[4])
	assert.Equal(t, []any{0.05, 0.06, 4000}, []any{in, out, w})
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	arm := srv.core.Arm("cas")
	require.NotNil(t, arm)
	assert.InDelta(t, 0.111, arm.PriceIn, 1e-12, "the core's catalogue uses them")
	assert.Equal(t, 8000, arm.ContextWindow)
}
