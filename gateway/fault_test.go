package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoModelConfig puts a faulty and a good OpenAI-format upstream in one
// fallback group (bad first) with a per-attempt timeout of 300ms.
func twoModelConfig(bad, good string, retries int) string {
	return fmt.Sprintf(`
providers:
  - {name: bad, type: openai, base_url: %s, timeout: 300ms, health_check: false}
  - {name: good, type: openai, base_url: %s, health_check: false}
models:
  - {id: bad-model, provider: bad}
  - {id: good-model, provider: good}
fallbacks:
  - {name: g, models: [bad-model, good-model], when: ["status in (429, 5xx, timeout)"]}
retries: {max: %d, initial_backoff: 1ms, max_backoff: 5ms}
breaker: {consecutive_failures: 1000, min_requests: 1000}
log: {dir: ""}
`, bad, good, retries)
}

func attemptsOf(rec decision.Record) []string {
	var out []string
	for _, a := range rec.Outcome.Attempts {
		out = append(out, fmt.Sprintf("%s:%s:%d", a.Arm, a.Status, a.Fallback))
	}
	return out
}

func TestFaultsFallBack(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		down       bool
		stream     bool
		retries    int
		want       []string
	}{
		{name: "upstream down", down: true, retries: 1, want: []string{"bad-model:error:0", "bad-model:error:0", "good-model:ok:1"}},
		{name: "slow upstream", mode: "slow", want: []string{"bad-model:timeout:0", "good-model:ok:1"}},
		{name: "429 storm", mode: "429", retries: 2, want: []string{"bad-model:rate_limited:0", "bad-model:rate_limited:0", "bad-model:rate_limited:0", "good-model:ok:1"}},
		{name: "500", mode: "500", want: []string{"bad-model:error:0", "good-model:ok:1"}},
		{name: "malformed JSON", mode: "malformed", want: []string{"bad-model:error:0", "good-model:ok:1"}},
		{name: "malformed stream", mode: "malformed", stream: true, want: []string{"bad-model:error:0", "good-model:ok:1"}},
		{name: "cut before any byte reached the client", mode: "cut", want: []string{"bad-model:error:0", "good-model:ok:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad, good := newFakeOpenAI(t), newFakeOpenAI(t)
			bad.set(tc.mode)
			badURL := bad.url()
			if tc.down {
				badURL = deadURL(t)
			}
			gw := startGateway(t, twoModelConfig(badURL, good.url(), tc.retries))
			extra := ""
			if tc.stream {
				extra = `,"stream":true`
			}
			code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "bad-model", extra))
			require.Equal(t, 200, code, "%s", body)
			assert.Equal(t, "good-model", hdr.Get(HeaderModel))
			rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
			require.True(t, ok)
			assert.Equal(t, tc.want, attemptsOf(rec))
			assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
			assert.Equal(t, "good-model", rec.Outcome.Arm)
			if tc.stream {
				ev := sseEvents(body)
				require.NotEmpty(t, ev)
				assert.Equal(t, "[DONE]", ev[len(ev)-1])
			}
		})
	}
}

func TestFaultsWithoutFallbackAreClearErrors(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		down       bool
		code       int
		errCode    string
		status     decision.Status
	}{
		{name: "down", down: true, code: 502, errCode: "upstream_error", status: decision.StatusError},
		{name: "slow", mode: "slow", code: 504, errCode: "upstream_timeout", status: decision.StatusTimeout},
		{name: "429", mode: "429", code: 429, errCode: "upstream_rate_limited", status: decision.StatusRateLimited},
		{name: "malformed", mode: "malformed", code: 502, errCode: "upstream_error", status: decision.StatusError},
		{name: "upstream rejects the request", mode: "400", code: 400, errCode: "upstream_rejected_request", status: decision.StatusError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeOpenAI(t)
			up.set(tc.mode)
			u := up.url()
			if tc.down {
				u = deadURL(t)
			}
			gw := startGateway(t, fmt.Sprintf(`
providers: [{name: p, type: openai, base_url: %s, timeout: 300ms, health_check: false}]
models: [{id: m, provider: p}]
log: {dir: ""}
`, u))
			code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
			require.Equal(t, tc.code, code, "%s", body)
			e := decodeAPIError(t, body)
			require.NotNil(t, e.Error.Code)
			assert.Equal(t, tc.errCode, *e.Error.Code)
			rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
			require.True(t, ok)
			assert.Equal(t, tc.status, rec.Outcome.Status)
			require.Len(t, rec.Outcome.Attempts, 1)
			assert.Equal(t, tc.status, rec.Outcome.Attempts[0].Status)
		})
	}
}

func TestStreamCutMidwayIsAClearError(t *testing.T) {
	bad, good := newFakeOpenAI(t), newFakeOpenAI(t)
	bad.set("cut")
	gw := startGateway(t, twoModelConfig(bad.url(), good.url(), 1))
	client := newSDK(gw, "")
	st := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "bad-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var text strings.Builder
	for st.Next() {
		if ch := st.Current(); len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	require.Error(t, st.Err(), "the SDK surfaces the cut stream")
	assert.Contains(t, st.Err().Error(), "upstream")
	assert.Equal(t, "hello", text.String(), "what arrived before the cut")
	for _, rec := range gw.sink.all(t, 1) {
		assert.Equal(t, []string{"bad-model:error:0"}, attemptsOf(rec), "no fallback once tokens reached the client")
		assert.Equal(t, decision.StatusError, rec.Outcome.Status)
	}
}

func TestOneOfThreeUpstreamsDown(t *testing.T) {
	a, b := newFakeOpenAI(t), newFakeOpenAI(t)
	gw := startGateway(t, fmt.Sprintf(`
providers:
  - {name: pa, type: openai, base_url: %s, health_check: false}
  - {name: pb, type: openai, base_url: %s, health_check: false}
  - {name: pdown, type: openai, base_url: %s, health_check: false}
models:
  - {id: a, provider: pa}
  - {id: b, provider: pb}
  - {id: down, provider: pdown}
fallbacks:
  - {name: all, models: [down, a, b], when: ["status in (429, 5xx, timeout)"]}
policy: {name: random, params: {seed: "3"}}
retries: {max: 1, initial_backoff: 1ms}
breaker: {consecutive_failures: 5, open_timeout: 200ms}
log: {dir: ""}
`, a.url(), b.url(), deadURL(t)))
	const n, workers = 2000, 16
	var ok, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				res, err := cl.Post(gw.url+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(msgBody, "auto", "")))
				if err != nil {
					failed.Add(1)
					continue
				}
				var v map[string]any
				derr := json.NewDecoder(res.Body).Decode(&v)
				res.Body.Close()
				if res.StatusCode == 200 && derr == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(ok.Load()) / n
	assert.GreaterOrEqual(t, rate, 0.999, "success rate %.4f (%d failed)", rate, failed.Load())
	downAttempts := 0
	for _, rec := range gw.sink.all(t, n) {
		for _, at := range rec.Outcome.Attempts {
			if at.Arm == "down" {
				downAttempts++
			}
		}
	}
	assert.Less(t, downAttempts, n/3, "the breaker keeps most traffic off the dead upstream (%d attempts)", downAttempts)
}

func TestConcurrencyLimitAndDeadline(t *testing.T) {
	up, slow := newFakeOpenAI(t), newFakeOpenAI(t)
	up.set("slow")
	up.delay = 400 * time.Millisecond
	slow.set("slow")
	slow.delay = 10 * time.Second
	gw := startGateway(t, fmt.Sprintf(`
providers:
  - {name: p, type: openai, base_url: %s, max_concurrency: 1, queue_timeout: 50ms, health_check: false}
  - {name: p2, type: openai, base_url: %s, health_check: false}
models: [{id: m, provider: p}, {id: m2, provider: p2}]
log: {dir: ""}
`, up.url(), slow.url()))
	url := gw.url + "/v1/chat/completions"
	first := make(chan int, 1)
	go func() {
		code, _, _ := post(t, url, fmt.Sprintf(msgBody, "m", ""))
		first <- code
	}()
	require.Eventually(t, func() bool { return up.calls.Load() == 1 }, 2*time.Second, time.Millisecond)
	code, hdr, body := post(t, url, fmt.Sprintf(msgBody, "m", ""))
	assert.Equal(t, 503, code, "the only slot is taken: %s", body)
	rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
	require.True(t, ok)
	assert.Equal(t, []string{"m:rate_limited:0"}, attemptsOf(rec))
	assert.Equal(t, 200, <-first)

	start := time.Now()
	code, _, body = post(t, url, fmt.Sprintf(msgBody, "m2", ""), HeaderTimeout, "100ms")
	assert.Equal(t, 504, code, "%s", body)
	// Generous bound: the upstream would take 10s; the client asked for 100ms.
	assert.Less(t, time.Since(start), 5*time.Second, "the client's deadline cuts the upstream call short")
}
