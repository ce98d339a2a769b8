package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanMembersAndAppendBody(t *testing.T) {
	body := []byte(` { "model" : "a", "messages":[{"role":"user","content":"}{\"]["}], "x\"y": {"k": [1, "}"]}, "n": -1.5e3 ,"b":true, "z":null } `)
	r, err := ParseRequest(body)
	require.NoError(t, err)
	var keys []string
	for _, m := range r.Members {
		keys = append(keys, m.Key)
	}
	assert.Equal(t, []string{"model", "messages", `x"y`, "n", "b", "z"}, keys)
	assert.Equal(t, `{"k": [1, "}"]}`, string(r.Field(`x"y`)))
	assert.Equal(t, `-1.5e3`, string(r.Field("n")))
	out := r.AppendBody(nil, map[string][]byte{"model": QuoteJSON("b"), "extra": []byte(`{"include_usage":true}`), "z": nil})
	var v map[string]any
	require.NoError(t, json.Unmarshal(out, &v), "%s", out)
	assert.Equal(t, "b", v["model"])
	assert.Equal(t, map[string]any{"include_usage": true}, v["extra"])
	assert.NotContains(t, v, "z", "a nil override removes the field")
	assert.Equal(t, `}{"][`, r.Messages[0].Text())
	assert.Equal(t, map[string]any{"k": []any{1.0, "}"}}, v[`x"y`])
}

func TestParseRequestFields(t *testing.T) {
	r, err := ParseRequest([]byte(`{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":10,"max_completion_tokens":20,"temperature":0.5,"top_p":0.9,"stop":"END","metadata":{"task":"code"},"messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]}`))
	require.NoError(t, err)
	assert.True(t, r.Stream)
	assert.True(t, r.IncludeUsage)
	assert.Equal(t, 20, r.MaxTokens, "max_completion_tokens wins")
	assert.Equal(t, 0.5, *r.Temperature)
	assert.Equal(t, 0.9, *r.TopP)
	assert.Equal(t, []string{"END"}, r.Stop)
	assert.Equal(t, "code", r.Metadata["task"])
	assert.Equal(t, "a\nb", r.Messages[1].Text())

	for _, tc := range []struct{ body, param string }{
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}`, "max_tokens"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}`, "temperature"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"stop":5}`, "stop"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"a":1}}`, "metadata"},
		{`{"model":"m","messages":[{"role":5,"content":"x"}]}`, "messages"},
		{`{"model":"m","messages":[{"role":"user","content":{}}]}`, "messages[0].content"},
		{`{"model":"m","messages":"hi"}`, "messages"},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":true}`, "stream_options"},
	} {
		_, err := ParseRequest([]byte(tc.body))
		var re *RequestError
		require.ErrorAs(t, err, &re, tc.body)
		assert.Equal(t, tc.param, re.Param, "%s: %v", tc.body, err)
	}
}

func TestErrorClassification(t *testing.T) {
	for _, tc := range []struct {
		code      int
		status    decision.Status
		retryable bool
		client    bool
	}{
		{429, decision.StatusRateLimited, true, false},
		{500, decision.StatusError, true, false},
		{503, decision.StatusError, true, false},
		{504, decision.StatusTimeout, true, false},
		{400, decision.StatusError, false, true},
		{413, decision.StatusError, false, true},
		{401, decision.StatusError, false, false},
		{404, decision.StatusError, false, false},
	} {
		e := StatusError(tc.code, "m")
		assert.Equal(t, tc.status, e.Status, "%d", tc.code)
		assert.Equal(t, tc.retryable, e.Retryable, "%d", tc.code)
		assert.Equal(t, tc.client, e.Client, "%d", tc.code)
	}
	ctx := context.Background()
	e := TransportError(ctx, &net.OpError{Op: "dial", Err: errors.New("connection refused")})
	assert.Equal(t, decision.StatusError, e.Status)
	assert.True(t, e.Retryable)
	e = TransportError(ctx, fmt.Errorf("wrapped: %w", context.DeadlineExceeded))
	assert.Equal(t, decision.StatusTimeout, e.Status)
	done, cancel := context.WithCancel(ctx)
	cancel()
	e = TransportError(done, context.Canceled)
	assert.False(t, e.Retryable, "the request's own cancellation is not retried")
}

func TestAnthropicTranslation(t *testing.T) {
	p, err := NewAnthropic(AnthropicOpts{Name: "a"})
	require.NoError(t, err)
	temp := 1.7
	r, err := ParseRequest([]byte(`{"model":"x","stop":["A","B"],"messages":[{"role":"system","content":"be terse"},{"role":"developer","content":"no lists"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"tool","content":"42"}]}`))
	require.NoError(t, err)
	r.Temperature = &temp
	b, err := p.translate(&Call{Req: r, Model: "claude"}, true)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "claude", got["model"])
	assert.Equal(t, "be terse\n\nno lists", got["system"])
	assert.EqualValues(t, 1024, got["max_tokens"])
	assert.EqualValues(t, 1, got["temperature"], "clamped to Anthropic's range")
	assert.Equal(t, true, got["stream"])
	assert.Equal(t, []any{"A", "B"}, got["stop_sequences"])
	assert.Equal(t, []any{
		map[string]any{"role": "user", "content": "hi"},
		map[string]any{"role": "assistant", "content": "hello"},
		map[string]any{"role": "user", "content": "42"},
	}, got["messages"])
	only, err := ParseRequest([]byte(`{"model":"x","messages":[{"role":"system","content":"s"}]}`))
	require.NoError(t, err)
	_, err = p.translate(&Call{Req: only, Model: "c"}, false)
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Client)
	assert.Equal(t, "length", FinishReason("max_tokens"))
	assert.Equal(t, "stop", FinishReason("end_turn"))
}

func simCall(t *testing.T, model string, maxTokens int) *Call {
	r, err := ParseRequest([]byte(fmt.Sprintf(`{"model":"auto","max_tokens":%d,"messages":[{"role":"user","content":"hello there"}]}`, maxTokens)))
	require.NoError(t, err)
	return &Call{Req: r, Model: model, ID: "t", Task: "code"}
}

func TestSimIsSeededAndStreams(t *testing.T) {
	mk := func() *Sim {
		s, err := NewSim(SimOpts{Name: "sim", Seed: 9, TimeScale: 0.0001, Now: func() time.Time { return time.Unix(0, 0) },
			Models: map[string]SimModel{"m": {TTFTMS: 10, Quality: map[string]float64{"": 0.5, "code": 0.9}}}})
		require.NoError(t, err)
		return s
	}
	a, b := mk(), mk()
	ra, err := a.Complete(context.Background(), simCall(t, "m", 6))
	require.NoError(t, err)
	rb, err := b.Complete(context.Background(), simCall(t, "m", 6))
	require.NoError(t, err)
	assert.Equal(t, string(ra.Body), string(rb.Body), "same seed, same answer")
	assert.Equal(t, 6, ra.Usage.CompletionTokens)
	assert.True(t, ra.QualityKnown)
	assert.InDelta(t, 0.9, ra.Quality, 0.45, "code quality around 0.9")

	var chunks []string
	res, err := a.Stream(context.Background(), simCall(t, "m", 4), func(c []byte) error {
		chunks = append(chunks, string(c))
		return nil
	})
	require.NoError(t, err)
	assert.Len(t, chunks, 6, "role, 4 tokens, finish")
	assert.Equal(t, 4, res.Usage.CompletionTokens)
	for _, c := range chunks {
		var v Completion
		require.NoError(t, json.Unmarshal([]byte(c), &v))
		assert.Equal(t, "chat.completion.chunk", v.Object)
	}

	_, err = a.Complete(context.Background(), simCall(t, "nope", 1))
	var pe *Error
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 404, pe.HTTPStatus)
	a.SetDown(true)
	require.Error(t, a.Health(context.Background()))
	_, err = a.Complete(context.Background(), simCall(t, "m", 1))
	require.ErrorAs(t, err, &pe)
	assert.True(t, pe.Retryable)
}

func TestSimFailuresAndRateLimits(t *testing.T) {
	s, err := NewSim(SimOpts{Name: "sim", Seed: 1, TimeScale: 0.0001, Models: map[string]SimModel{
		"flaky":   {ErrorRate: 0.3},
		"limited": {RateLimitRPS: 2},
	}})
	require.NoError(t, err)
	fails := 0
	const n = 2000
	for range n {
		if _, err := s.Complete(context.Background(), simCall(t, "flaky", 1)); err != nil {
			fails++
		}
	}
	assert.InDelta(t, 0.3, float64(fails)/n, 0.04, "error rate (seeded, 2000 draws)")
	limited := 0
	for range 10 {
		_, err := s.Complete(context.Background(), simCall(t, "limited", 1))
		var pe *Error
		if errors.As(err, &pe) && pe.Status == decision.StatusRateLimited {
			limited++
		}
	}
	assert.GreaterOrEqual(t, limited, 7, "burst of 2, then 429s")
	_, err = NewSim(SimOpts{Name: "bad", Models: map[string]SimModel{"m": {ErrorRate: 2}}})
	require.Error(t, err)
}

func ExampleParseRequest() {
	r, err := ParseRequest([]byte(`{"model":"auto","temperature":0.2,"messages":[{"role":"user","content":"Hi!"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Model, r.Messages[0].Role, r.Messages[0].Text())
	fmt.Println(string(r.AppendBody(nil, map[string][]byte{"model": QuoteJSON("gpt-4o-mini")})))
	_, err = ParseRequest([]byte(`{"model":"auto"}`))
	fmt.Println(err)
	// Output:
	// auto user Hi!
	// {"temperature":0.2,"messages":[{"role":"user","content":"Hi!"}],"model":"gpt-4o-mini"}
	// messages: is required
}

func TestAppendWithModel(t *testing.T) {
	q := QuoteJSON("cat-id")
	for _, tc := range []struct{ in, want string }{
		{`{"id":"x","model":"gpt-up","choices":[]}`, `{"id":"x","model":"cat-id","choices":[]}`},
		{`{ "choices" : [{"model":"inner","delta":{"content":"\"model\":"}}] , "model" : "gpt-up" }`,
			`{ "choices" : [{"model":"inner","delta":{"content":"\"model\":"}}] , "model" : "cat-id" }`},
		{`{"meta":{"model":"nested"},"n":1.5e3,"ok":true,"x":null,"model":null}`, `{"meta":{"model":"nested"},"n":1.5e3,"ok":true,"x":null,"model":"cat-id"}`},
		{`{"id":"no model here"}`, `{"id":"no model here"}`},
		{`{}`, `{}`},
	} {
		got, err := AppendWithModel([]byte("data: "), []byte(tc.in), q)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if string(got) != "data: "+tc.want {
			t.Errorf("AppendWithModel(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`[1,2]`, `{"model":`, `not json`} {
		got, err := AppendWithModel(nil, []byte(bad), q)
		if err == nil || string(got) != bad {
			t.Errorf("AppendWithModel(%s) = %s, %v; want it unchanged with an error", bad, got, err)
		}
	}
}
