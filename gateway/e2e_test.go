package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func e2eConfig(oai, anth string) string {
	return fmt.Sprintf(`
mode: production
auth:
  keys:
    - {name: team-a, tenant: team-a, sha256: %s}
  admin_token_sha256: %s
policy: {name: thompson, params: {seed: "7"}}
providers:
  - {name: oai, type: openai, base_url: %s, api_key_env: RL_TEST_OAI_KEY, health_check: false}
  - {name: anth, type: anthropic, base_url: %s, api_key_env: RL_TEST_ANTH_KEY, health_check: false}
models:
  - {id: gpt-fake, provider: oai, upstream: gpt-up, price_in: 0.001, price_out: 0.002}
  - {id: claude-fake, provider: anth, upstream: claude-up, price_in: 0.003, price_out: 0.015}
log: {dir: ""}
`, HashKey("sk-team-a"), HashKey("admin-secret"), oai, anth)
}

func newSDK(gw *testGW, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(gw.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func TestOpenAISDKEndToEnd(t *testing.T) {
	t.Setenv("RL_TEST_OAI_KEY", "upstream-oai-key")
	t.Setenv("RL_TEST_ANTH_KEY", "upstream-anth-key")
	oai, anth := newFakeOpenAI(t), newFakeAnthropic(t)
	gw := startGateway(t, e2eConfig(oai.url(), anth.srv.URL))
	client := newSDK(gw, "sk-team-a")
	ctx := context.Background()

	for _, tc := range []struct {
		model, wantArm, wantText string
	}{
		{"gpt-fake", "gpt-fake", "hello from gpt-up"},
		{"claude-fake", "claude-fake", "bonjour from claude-up"},
	} {
		t.Run("complete/"+tc.model, func(t *testing.T) {
			var raw *http.Response
			c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:    tc.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("say hello")},
			}, option.WithResponseInto(&raw))
			require.NoError(t, err)
			require.Len(t, c.Choices, 1)
			assert.Equal(t, tc.wantText, c.Choices[0].Message.Content)
			assert.Equal(t, "stop", string(c.Choices[0].FinishReason))
			assert.Positive(t, c.Usage.TotalTokens)
			assert.Equal(t, tc.wantArm, raw.Header.Get(HeaderModel))
			assert.Equal(t, tc.wantArm, c.Model, "the body names the catalogue id, as the header does")
			assert.Equal(t, "thompson", raw.Header.Get(HeaderPolicy))
			id := raw.Header.Get(HeaderRequestID)
			rec, ok := gw.sink.get(id)
			require.True(t, ok, "request %s logged", id)
			assert.Equal(t, decision.ReasonForced, rec.Decision.Reason)
			assert.Equal(t, []float64{1}, rec.Decision.Probs)
			assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
			assert.Positive(t, rec.Outcome.Cost)
		})
		t.Run("stream/"+tc.model, func(t *testing.T) {
			st := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
				Model:         tc.model,
				Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("say hello")},
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
			})
			acc := openai.ChatCompletionAccumulator{}
			chunks := 0
			for st.Next() {
				ch := st.Current()
				assert.Equal(t, tc.wantArm, ch.Model, "chunk %d names the catalogue id", chunks)
				acc.AddChunk(ch)
				chunks++
			}
			require.NoError(t, st.Err())
			require.NoError(t, st.Close())
			require.Len(t, acc.Choices, 1)
			assert.Equal(t, tc.wantText, acc.Choices[0].Message.Content)
			assert.Positive(t, acc.Usage.TotalTokens, "include_usage chunk arrived")
			assert.Equal(t, tc.wantArm, acc.Model)
		})
	}

	t.Run("auto routes through the policy", func(t *testing.T) {
		seen := map[string]int{}
		for range 30 {
			var raw *http.Response
			c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
			}, option.WithResponseInto(&raw))
			require.NoError(t, err)
			assert.Equal(t, raw.Header.Get(HeaderModel), c.Model, "a routed answer names the catalogue id too")
			rec, ok := gw.sink.get(raw.Header.Get(HeaderRequestID))
			require.True(t, ok)
			assert.Equal(t, decision.ReasonPolicy, rec.Decision.Reason)
			assert.Len(t, rec.Decision.Candidates, 2)
			assert.Equal(t, "team-a", rec.Request.Features.Tenant)
			seen[raw.Header.Get(HeaderModel)]++
		}
		assert.Len(t, seen, 2, "thompson explores both arms: %v", seen)
	})

	t.Run("upstream sees translated requests with its own keys", func(t *testing.T) {
		oai.mu.Lock()
		assert.Equal(t, "gpt-up", oai.lastBody["model"])
		assert.Equal(t, "Bearer upstream-oai-key", oai.lastAuth)
		oai.mu.Unlock()
		anth.mu.Lock()
		assert.Equal(t, "upstream-anth-key", anth.lastKey)
		assert.Equal(t, "claude-up", anth.lastReq["model"])
		assert.EqualValues(t, 1024, anth.lastReq["max_tokens"])
		anth.mu.Unlock()
	})

	t.Run("models list", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		require.NoError(t, err)
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		assert.Equal(t, []string{"auto", "gpt-fake", "claude-fake"}, ids)
	})

	t.Run("SDK sees OpenAI errors", func(t *testing.T) {
		wrong := newSDK(gw, "wrong")
		_, err := wrong.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		require.True(t, errors.As(err, &apiErr), "got %v", err)
		assert.Equal(t, 401, apiErr.StatusCode)
		assert.Equal(t, "invalid_api_key", apiErr.Code)
		_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-9", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		require.True(t, errors.As(err, &apiErr), "got %v", err)
		assert.Equal(t, 404, apiErr.StatusCode)
		assert.Equal(t, "model", apiErr.Param)
	})

	t.Run("feedback joins by request id", func(t *testing.T) {
		var raw *http.Response
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		}, option.WithResponseInto(&raw))
		require.NoError(t, err)
		id := raw.Header.Get(HeaderRequestID)
		code, _, body := post(t, gw.url+"/v1/feedback", `{"request_id":"`+id+`","quality":0.9}`, "Authorization", "Bearer sk-team-a")
		require.Equal(t, 200, code, "%s", body)
		var fr FeedbackResponse
		require.NoError(t, json.Unmarshal(body, &fr))
		assert.True(t, fr.Learned)
		assert.Equal(t, raw.Header.Get(HeaderModel), fr.Model)
		assert.InDelta(t, 0.5, fr.Reward, 0.5)
		gw.fb.mu.Lock()
		assert.Contains(t, gw.fb.ids, id)
		gw.fb.mu.Unlock()
		code, _, body = post(t, gw.url+"/v1/feedback", `{"request_id":"`+id+`","quality":0.9}`, "Authorization", "Bearer sk-team-a")
		assert.Equal(t, 404, code, "second rating of %s: %s", id, body)
	})

	t.Run("admin needs the admin token", func(t *testing.T) {
		code, _, _ := post(t, gw.url+"/admin/policy", `{"policy":"ucb1"}`, "Authorization", "Bearer sk-team-a")
		assert.Equal(t, 403, code, "an API key is known but not allowed on admin routes")
		code, _, _ = post(t, gw.url+"/admin/policy", `{"policy":"ucb1"}`, "Authorization", "Bearer wrong")
		assert.Equal(t, 401, code)
		code, _, body := post(t, gw.url+"/admin/policy", `{"policy":"ucb1","params":{"c":0.5}}`, "Authorization", "Bearer admin-secret")
		require.Equal(t, 200, code, "%s", body)
		assert.Equal(t, "ucb1", gw.srv.Core().Policy().Name())
		req, _ := http.NewRequest(http.MethodGet, gw.url+"/healthz", nil)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, 200, res.StatusCode, "healthz is open")
	})
}

func TestStreamingThroughSimProvider(t *testing.T) {
	gw := startGateway(t, `
providers: [{name: sim, type: sim, time_scale: 0.01}]
models:
  - {id: s1, provider: sim, sim: {ttft_ms: 100, tokens_per_sec: 50, output_tokens: 10, quality: {"": 0.7}}}
log: {dir: ""}
`)
	client := newSDK(gw, "")
	st := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "auto", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me a story")},
		MaxTokens: openai.Int(8),
	})
	var text strings.Builder
	n := 0
	for st.Next() {
		ch := st.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
			n++
		}
	}
	require.NoError(t, st.Err())
	assert.Equal(t, 8, len(strings.Fields(text.String())), "8 tokens in %q", text.String())
	assert.GreaterOrEqual(t, n, 9, "one chunk per token plus role and finish")
	gw.sink.all(t, 1)
}
