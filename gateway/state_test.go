package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateConfigValidation(t *testing.T) {
	base := "providers: [{name: sim, type: sim}]\nmodels: [{id: a, provider: sim, sim: {quality: {\"\": 0.5}}}]\n"
	for _, tc := range []struct{ yaml, field string }{
		{"state: {redis: {prefix: x}}", "state.redis.addr"},
		{"state: {redis: {addr: localhost}}", "state.redis.addr"},
		{"state: {redis: {addr: 'h:1', db: -1}}", "state.redis.db"},
		{"state: {redis: {addr: 'h:1', merge_interval: 1ms}}", "state.redis.merge_interval"},
		{"state: {redis: {addr: 'h:1', timeout: -1s}}", "state.redis.timeout"},
		{"state: {redis: {addr: 'h:1', password: x, password_env: Y}}", "password_env"},
		{"state: {redis: {addr: 'h:1', colour: red}}", "colour"},
	} {
		_, err := ParseConfig([]byte(base + tc.yaml))
		require.Error(t, err, tc.yaml)
		assert.Contains(t, err.Error(), tc.field, "error names the field")
	}
	c, err := ParseConfig([]byte(base + "state: {redis: {addr: 'h:1'}}"))
	require.NoError(t, err)
	r := c.State.Redis
	assert.Equal(t, "routelab:", r.Prefix)
	assert.Equal(t, "2s", r.MergeInterval.String())
	assert.Equal(t, "250ms", r.Timeout.String())
}

// A replica whose Redis is unreachable from the start serves on local
// state: requests and rate limits work, /readyz says degraded (200, or 503
// with required), the metrics and /admin/policy say so.
func TestRedisUnreachableServesLocally(t *testing.T) {
	dead := strings.TrimSuffix(strings.TrimPrefix(deadURL(t), "http://"), "/v1")
	for _, required := range []bool{false, true} {
		yaml := replicaYAMLTimeout(dead, "x:", "50ms", "50ms", required, "policy: {name: thompson}\nrate_limits: {per_key: {rps: 0.001, burst: 3}}")
		r := startReplica(t, yaml)
		codes := map[int]int{}
		for i := 0; i < 6; i++ {
			code, _ := r.chat(t)
			codes[code]++
		}
		assert.Equal(t, map[int]int{http.StatusOK: 3, http.StatusTooManyRequests: 3}, codes, "the local bucket limits")
		code, body := readyz(t, r.url)
		if required {
			assert.Equal(t, http.StatusServiceUnavailable, code)
			assert.Contains(t, body, "redis unreachable")
		} else {
			assert.Equal(t, http.StatusOK, code)
			assert.Contains(t, body, "degraded")
		}
		assert.Equal(t, "0", metricValue(t, r.url, "routelab_state_redis_up"))
		assert.NotEqual(t, "0", metricValue(t, r.url, `routelab_state_local_fallbacks_total{what="rate_limit"}`))
		p := r.policy(t)
		assert.Equal(t, 3.0, p.Updates, "learned locally")
		assert.Equal(t, "down", p.Shared.Redis)
		assert.Equal(t, -1.0, p.Shared.MergeAgeSeconds)
	}
}
