package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/gateway/provider"
)

func keyedSimConfig(extra string) string {
	return fmt.Sprintf(`
mode: production
max_body_bytes: 2048
auth:
  keys:
    - {name: k1, tenant: t1, sha256: %s, rate_limit: {rps: 0.001, burst: 3}}
    - {name: k2, tenant: t2, sha256: %s}
  admin_token_sha256: %s
tenants:
  - {name: t2, models: [s1]}
providers: [{name: sim, type: sim, time_scale: 0.001}]
models:
  - {id: s1, provider: sim, sim: {ttft_ms: 10, output_tokens: 3}}
  - {id: s2, provider: sim, sim: {ttft_ms: 10, output_tokens: 3}}
log: {dir: ""}
%s`, HashKey("key-one"), HashKey("key-two"), HashKey("adm"), extra)
}

func TestBadInputGetsOpenAIErrors(t *testing.T) {
	gw := startGateway(t, keyedSimConfig(""))
	url := gw.url + "/v1/chat/completions"
	auth := []string{"Authorization", "Bearer key-two"}
	for _, tc := range []struct {
		name      string
		body      string
		hdr       []string
		code      int
		typ, errc string
		param     string
	}{
		{"invalid JSON", `{"model":`, auth, 400, typeInvalidRequest, "invalid_request", ""},
		{"not an object", `[1,2]`, auth, 400, typeInvalidRequest, "invalid_request", ""},
		{"missing messages", `{"model":"auto"}`, auth, 400, typeInvalidRequest, "invalid_request", "messages"},
		{"empty messages", `{"model":"auto","messages":[]}`, auth, 400, typeInvalidRequest, "invalid_request", "messages"},
		{"bad role", `{"model":"auto","messages":[{"role":"robot","content":"x"}]}`, auth, 400, typeInvalidRequest, "invalid_request", "messages[0].role"},
		{"missing model", `{"messages":[{"role":"user","content":"x"}]}`, auth, 400, typeInvalidRequest, "invalid_request", "model"},
		{"stream not bool", `{"model":"auto","stream":"yes","messages":[{"role":"user","content":"x"}]}`, auth, 400, typeInvalidRequest, "invalid_request", "stream"},
		{"unknown model", fmt.Sprintf(msgBody, "gpt-42", ""), auth, 404, typeInvalidRequest, "model_not_found", "model"},
		{"model outside the tenant allowlist", fmt.Sprintf(msgBody, "s2", ""), auth, 404, typeInvalidRequest, "model_not_found", "model"},
		{"oversized body", `{"model":"auto","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`, auth, 413, typeInvalidRequest, "request_too_large", ""},
		{"no key", fmt.Sprintf(msgBody, "auto", ""), nil, 401, typeAuth, "missing_api_key", ""},
		{"wrong key", fmt.Sprintf(msgBody, "auto", ""), []string{"Authorization", "Bearer nope"}, 401, typeAuth, "invalid_api_key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := post(t, url, tc.body, tc.hdr...)
			require.Equal(t, tc.code, code, "%s", body)
			assert.Equal(t, "application/json", hdr.Get("Content-Type"))
			assert.NotEmpty(t, hdr.Get(HeaderRequestID))
			e := decodeAPIError(t, body)
			assert.Equal(t, tc.typ, e.Error.Type)
			require.NotNil(t, e.Error.Code)
			assert.Equal(t, tc.errc, *e.Error.Code)
			if tc.param == "" {
				assert.Nil(t, e.Error.Param)
			} else {
				require.NotNil(t, e.Error.Param, "%s", body)
				assert.Equal(t, tc.param, *e.Error.Param)
			}
		})
	}
	t.Run("unknown route", func(t *testing.T) {
		code, _, body := post(t, gw.url+"/v1/nothing", `{}`, auth...)
		assert.Equal(t, 404, code)
		decodeAPIError(t, body)
	})
	t.Run("chunked oversized body", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(strings.Repeat(" ", 5000)))
		require.NoError(t, err)
		req.ContentLength = -1 // chunked: the limit applies while reading
		req.Header.Set("Authorization", "Bearer key-two")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, 413, res.StatusCode)
	})
}

func TestRateLimitsPerKeyAndTenant(t *testing.T) {
	gw := startGateway(t, keyedSimConfig("rate_limits: {per_tenant: {rps: 0.001, burst: 2}}"))
	url := gw.url + "/v1/chat/completions"
	body := fmt.Sprintf(msgBody, "auto", "")
	var codes []int
	for range 4 {
		code, _, _ := post(t, url, body, "Authorization", "Bearer key-one")
		codes = append(codes, code)
	}
	// Key k1 has burst 3 but its tenant t1 only 2.
	assert.Equal(t, []int{200, 200, 429, 429}, codes)
	code, hdr, b := post(t, url, body, "Authorization", "Bearer key-one")
	require.Equal(t, 429, code)
	// The bucket refills one token per 1000 s: Retry-After is the real wait,
	// rounded up to seconds (it used to be a constant 1).
	ra, err := strconv.Atoi(hdr.Get("Retry-After"))
	require.NoError(t, err, "Retry-After %q", hdr.Get("Retry-After"))
	assert.InDelta(t, 1000, ra, 10, "Retry-After is the tenant bucket's wait")
	e := decodeAPIError(t, b)
	assert.Equal(t, typeRateLimit, e.Error.Type)
	code, _, _ = post(t, url, body, "Authorization", "Bearer key-two")
	assert.Equal(t, 200, code, "another tenant is not limited by t1's bucket")
}

func TestForcedAllowedModelAndTenantRule(t *testing.T) {
	gw := startGateway(t, keyedSimConfig(""))
	for range 5 {
		code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), "Authorization", "Bearer key-two")
		require.Equal(t, 200, code, "%s", body)
		assert.Equal(t, "s1", hdr.Get(HeaderModel), "tenant t2 may only use s1")
		rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
		require.True(t, ok)
		assert.Len(t, rec.Decision.Candidates, 1)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":null},{"role":"user","content":[{"type":"text","text":"a"}]}],"max_tokens":5,"stop":"x","metadata":{"task":"code"}}`,
		`{"model":1}`, `null`, `[]`, `{"messages":{}}`, `{"model":"a","messages":[{"role":"user","content":5}]}`,
		`{"model":"a","messages":[{"role":"user","content":"x"}],"temperature":"hot"}`, "{\"model\":\"\u00e9\\u0000\",\"messages\":[{\"role\":\"user\"}]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := provider.ParseRequest(body)
		if err != nil {
			var re *provider.RequestError
			require.ErrorAs(t, err, &re)
			return
		}
		require.NotEmpty(t, r.Model)
		require.NotEmpty(t, r.Messages)
		for i := range r.Messages {
			_ = r.Messages[i].Text()
		}
		_ = GuessTask(r.Messages)
		// Re-encoding with a new model must give valid JSON that parses back.
		out := r.AppendBody(nil, map[string][]byte{"model": provider.QuoteJSON("other")})
		r2, err := provider.ParseRequest(out)
		require.NoError(t, err, "re-encoded %s", out)
		assert.Equal(t, "other", r2.Model)
		assert.Equal(t, len(r.Messages), len(r2.Messages))
		assert.Equal(t, r.Stream, r2.Stream)
	})
}
