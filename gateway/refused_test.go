package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"golang.org/x/time/rate"

	"github.com/routelab/routelab/decision"
)

// Finding 4 (last sentence): no_model_available 503s were never logged.
// Every refusal of an authenticated request before any attempt — rule
// filter, unknown model, key and tenant limits, bad requests — is a
// decision-log row with status refused and its code as the reason, and is
// counted in routelab_refused_total{code}; an unauthenticated request is
// counted but writes no row.
func TestRefusalsAreLoggedAndCounted(t *testing.T) {
	gw := startGateway(t, fmt.Sprintf(`
auth:
  keys:
    - {name: alice, tenant: ta, sha256: %s, rate_limit: {rps: 0.001, burst: 4}}
    - {name: bob, tenant: tb, sha256: %s}
  admin_token_sha256: %s
tenants: [{name: tb, rate_limit: {rps: 0.001, burst: 1}}]
providers: [{name: sim, type: sim, time_scale: 0.001}]
models:
  - {id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}
  - {id: tiny, provider: sim, context_window: 3, sim: {ttft_ms: 1, output_tokens: 2}}
log: {dir: ""}
`, HashKey("ka"), HashKey("kb"), HashKey("adm")))
	ask := func(key, model string) (int, string, string) {
		code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, model, ""), "Authorization", "Bearer "+key)
		e := ""
		if code != 200 {
			e = *decodeAPIError(t, body).Error.Code
		}
		return code, hdr.Get(HeaderRequestID), e
	}
	type want struct {
		key, model string
		code       int
		errCode    string
	}
	for i, w := range []want{
		{"ka", "tiny", 503, "no_model_available"}, // the context window rule rejects the only model
		{"ka", "nope", 404, "model_not_found"},
		{"ka", "auto", 200, ""},
		{"ka", "auto", 200, ""},
		{"ka", "auto", 429, "rate_limit_exceeded"}, // alice's key bucket (burst 4) is empty
		{"kb", "auto", 200, ""},
		{"kb", "auto", 429, "rate_limit_exceeded"}, // tenant tb's bucket (burst 1) is empty
	} {
		code, id, e := ask(w.key, w.model)
		require.Equal(t, w.code, code, "request %d", i)
		assert.Equal(t, w.errCode, e, "request %d", i)
		rec, ok := gw.sink.get(id)
		require.True(t, ok, "request %d (%s) has a decision-log row", i, w.errCode)
		if w.code == 200 {
			assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
			continue
		}
		assert.Equal(t, decision.StatusRefused, rec.Outcome.Status, "request %d", i)
		assert.Equal(t, w.errCode, rec.Decision.Reason, "request %d", i)
		assert.Empty(t, rec.Decision.Candidates, "request %d", i)
		assert.Equal(t, -1, rec.Decision.Chosen, "request %d", i)
		assert.NotEmpty(t, rec.Request.Features.Tenant, "request %d", i)
	}
	// Unauthenticated: counted, not logged.
	before := gw.sink.len()
	code, _, e := ask("wrong", "auto")
	require.Equal(t, 401, code)
	assert.Equal(t, "invalid_api_key", e)
	assert.Equal(t, before, gw.sink.len(), "no row for an unauthenticated request")

	res, err := http.Get(gw.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, line := range []string{
		`routelab_refused_total{code="no_model_available"} 1`,
		`routelab_refused_total{code="model_not_found"} 1`,
		`routelab_refused_total{code="rate_limit_exceeded"} 2`,
		`routelab_refused_total{code="invalid_api_key"} 1`,
	} {
		assert.True(t, strings.Contains(string(b), line), "metrics contain %s", line)
	}
}

// TestRefusalRowsAreBounded: a key hammering its limit cannot crowd the
// decision log's queue: refusal rows beyond their bucket are counted in
// routelab_refused_unlogged_total instead.
func TestRefusalRowsAreBounded(t *testing.T) {
	gw := startGateway(t, fmt.Sprintf(`
auth:
  keys: [{name: alice, tenant: ta, sha256: %s, rate_limit: {rps: 0.001, burst: 1}}]
  admin_token_sha256: %s
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, HashKey("ka"), HashKey("adm")))
	gw.srv.refused.rows = rate.NewLimiter(0, 2) // two refusal rows, then none
	for i := 0; i < 5; i++ {
		code, _, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), "Authorization", "Bearer ka")
		require.Equal(t, map[bool]int{true: 200, false: 429}[i == 0], code, "request %d", i)
	}
	require.Eventually(t, func() bool { return gw.sink.len() == 3 }, 5*time.Second, 5*time.Millisecond, "1 answer + 2 refusal rows")
	assert.Equal(t, 3, gw.sink.len())
	res, err := http.Get(gw.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Contains(t, string(b), `routelab_refused_unlogged_total{code="rate_limit_exceeded"} 2`)
	assert.Contains(t, string(b), `routelab_refused_total{code="rate_limit_exceeded"} 4`)
}
