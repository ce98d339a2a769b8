package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/route"
)

func TestDefaultConfigLoads(t *testing.T) {
	c, err := LoadConfig("")
	require.NoError(t, err)
	assert.Equal(t, "development", c.Mode)
	assert.Equal(t, "127.0.0.1:8080", c.Listen, "the embedded default (no auth) binds loopback only")
	assert.Equal(t, "thompson", c.Policy.Name)
	assert.Equal(t, "./data/decisions", c.Log.Dir)
	assert.GreaterOrEqual(t, len(c.Models), 4)
	assert.Empty(t, c.Auth.Keys)
}

// TestPolicySpecString: a policy block may be the CLI's spec string;
// it reads as the equivalent name + params.
func TestPolicySpecString(t *testing.T) {
	const base = "providers: [{name: p, type: sim}]\nmodels: [{id: m, provider: p, sim: {}}]\n"
	c, err := ParseConfig([]byte(base + "policy: \"linucb=alpha:0.5;floor:0.05\"\nshadow: thompson\n"))
	require.NoError(t, err)
	assert.Equal(t, PolicyConfig{Name: "linucb", Params: map[string]string{"alpha": "0.5", "floor": "0.05"}}, c.Policy)
	require.NotNil(t, c.Shadow)
	assert.Equal(t, PolicyConfig{Name: "thompson"}, *c.Shadow)
	m, err := ParseConfig([]byte(base + "policy: {name: linucb, params: {alpha: \"0.5\", floor: \"0.05\"}}\n"))
	require.NoError(t, err)
	assert.Equal(t, m.Policy, c.Policy, "the two forms are the same config")
}

func TestConfigErrorsNameTheField(t *testing.T) {
	const base = "providers: [{name: p, type: sim}]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", base + "models: [{id: m, provider: p, sim: {}}]\nbogus: 1\n", "field bogus not found"},
		{"bad mode", "mode: staging\n" + base + "models: [{id: m, provider: p, sim: {}}]\n", "mode:"},
		{"no providers", "models: [{id: m, provider: p}]\n", "providers:"},
		{"bad provider type", "providers: [{name: p, type: grpc}]\nmodels: [{id: m, provider: p}]\n", "providers[0].type"},
		{"openai without url", "providers: [{name: p, type: openai}]\nmodels: [{id: m, provider: p}]\n", "providers[0].base_url"},
		{"unknown provider", base + "models: [{id: m, provider: q, sim: {}}]\n", "models[0].provider"},
		{"duplicate model", base + "models: [{id: m, provider: p, sim: {}}, {id: m, provider: p, sim: {}}]\n", "models[1].id"},
		{"quality out of range", base + "models: [{id: m, provider: p, quality: 1.5, sim: {}}]\n", "models[0].quality"},
		{"negative price", base + "models: [{id: m, provider: p, price_in: -1, sim: {}}]\n", "models[0].price_in"},
		{"sim error rate", base + "models: [{id: m, provider: p, sim: {error_rate: 2}}]\n", "models[0].sim.error_rate"},
		{"sim model without sim", base + "models: [{id: m, provider: p}]\n", "models[0].sim"},
		{"fallback unknown model", base + "models: [{id: m, provider: p, sim: {}}]\nfallbacks: [{name: g, models: [m, x]}]\n", "fallbacks[0].models[1]"},
		{"bad condition", base + "models: [{id: m, provider: p, sim: {}}]\nfallbacks: [{name: g, models: [m], when: [\"latency >> 3\"]}]\n", "fallbacks[0].when[0]"},
		{"bad key hash", base + "models: [{id: m, provider: p, sim: {}}]\nauth: {keys: [{name: k, sha256: abc}]}\n", "auth.keys[0].sha256"},
		{"production without keys", "mode: production\n" + base + "models: [{id: m, provider: p, sim: {}}]\n", "auth.keys"},
		{"bad rate limit", base + "models: [{id: m, provider: p, sim: {}}]\nrate_limits: {per_key: {rps: 0}}\n", "rate_limits.per_key.rps"},
		{"tenant unknown model", base + "models: [{id: m, provider: p, sim: {}}]\ntenants: [{name: t, models: [zz]}]\n", "tenants[0].models[0]"},
		{"reward weight", base + "models: [{id: m, provider: p, sim: {}}]\nreward: {quality: -1}\n", "reward"},
		{"retries", base + "models: [{id: m, provider: p, sim: {}}]\nretries: {max: 50}\n", "retries.max"},
		{"alias clash", base + "models: [{id: auto, provider: p, sim: {}}]\n", "models[0].id"},
		{"bad duration", base + "models: [{id: m, provider: p, sim: {}}]\nrequest_timeout: soon\n", "request_timeout"},
		{"feedback bytes", base + "models: [{id: m, provider: p, sim: {}}]\nfeedback: {max_bytes: -2}\n", "feedback.max_bytes"},
		{"empty", "", "empty config"},
		{"unknown field in the policy block", base + "models: [{id: m, provider: p, sim: {}}]\npolicy: {name: thompson, bogus: 1}\n", "field bogus not found"},
		{"unknown field in the policy's budget", base + "models: [{id: m, provider: p, sim: {}}]\npolicy: {name: thompson, budget: {per_reqest: 1}}\n", "field per_reqest not found"},
		{"bad policy spec string", base + "models: [{id: m, provider: p, sim: {}}]\npolicy: \"linucb=alpha\"\n", `policy spec "linucb=alpha": parameter "alpha" is not key:value`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseCondition(t *testing.T) {
	for _, tc := range []struct {
		in      string
		status  []string
		metric  string
		op      string
		value   float64
		wantErr bool
	}{
		{in: "error_rate > 0.05", metric: "error_rate", op: ">", value: 0.05},
		{in: "latency > 3000ms", metric: "latency", op: ">", value: 3000},
		{in: "latency >= 3s", metric: "latency", op: ">=", value: 3000},
		{in: "ttft > 800", metric: "ttft", op: ">", value: 800},
		{in: "status == 429", status: []string{"429"}},
		{in: "status in (429, 5xx, timeout)", status: []string{"429", "5xx", "timeout"}},
		{in: "status in [error]", status: []string{"error"}},
		{in: "error_rate > 1.5", wantErr: true},
		{in: "latency > fast", wantErr: true},
		{in: "status == 9000", wantErr: true},
		{in: "status > 500", wantErr: true},
		{in: "cost > 1", wantErr: true},
		{in: "latency", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := ParseCondition(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.status, c.Statuses)
			assert.Equal(t, tc.metric, c.Metric)
			assert.Equal(t, tc.op, c.Op)
			assert.InDelta(t, tc.value, c.Value, 1e-9)
		})
	}
}

func TestConditionMatching(t *testing.T) {
	st, err := ParseCondition("status in (429, 5xx, timeout)")
	require.NoError(t, err)
	assert.True(t, st.MatchError(provider.StatusError(429, "")))
	assert.True(t, st.MatchError(provider.StatusError(503, "")))
	assert.True(t, st.MatchError(&provider.Error{Status: decision.StatusError, Message: "connection refused"}), "no response counts as 5xx")
	assert.True(t, st.MatchError(&provider.Error{Status: decision.StatusTimeout}))
	assert.False(t, st.MatchError(provider.StatusError(401, "")))

	er, err := ParseCondition("error_rate > 0.05")
	require.NoError(t, err)
	assert.True(t, er.MatchProfile(&route.Profile{Requests: 10, ErrorRate: 0.2}))
	assert.False(t, er.MatchProfile(&route.Profile{Requests: 10, ErrorRate: 0.01}))
	assert.False(t, er.MatchProfile(&route.Profile{ErrorRate: 0.5}), "no observations, no verdict")
	lat, err := ParseCondition("latency > 3000ms")
	require.NoError(t, err)
	assert.True(t, lat.MatchProfile(&route.Profile{Requests: 1, LatencyMS: 3500}))
}
