package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/policy"
)

// syncBuf is a goroutine-safe log buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "%s", l)
		out = append(out, m)
	}
	return out
}

type secGW struct {
	*testGW
	audit, access, log *syncBuf
}

func startSecGateway(t *testing.T, yaml string) *secGW {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	g := &secGW{audit: &syncBuf{}, access: &syncBuf{}, log: &syncBuf{}}
	sink, fb := newRecSink(), &fbLog{}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: sink, Feedback: fb,
		Logger: slog.New(slog.NewJSONHandler(g.log, nil)), AuditLog: g.audit, AccessLog: g.access})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv.Start(ctx)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	g.testGW = &testGW{srv: srv, url: hs.URL, sink: sink, fb: fb}
	return g
}

const secKeys = `
auth:
  keys:
    - {name: alice, tenant: ta, sha256: %s, rate_limit: {rps: 0.001, burst: 4}}
    - {name: bob, tenant: tb, sha256: %s}
  admin_token_sha256: %s
access_log: {enabled: true}
`

func secConfig(extra string) string {
	return fmt.Sprintf(secKeys, HashKey("sk-alice"), HashKey("sk-bob"), HashKey("admin-tok")) + fastSim + extra
}

// Finding 5: keys without an admin token left /admin/* open.
func TestKeysWithoutAdminTokenRefused(t *testing.T) {
	for _, mode := range []string{"development", "production"} {
		_, err := ParseConfig([]byte("mode: " + mode + "\n" + fmt.Sprintf("auth: {keys: [{name: k, sha256: %s}]}\n", HashKey("k")) + fastSim))
		require.Error(t, err, mode)
		assert.Contains(t, err.Error(), "auth.admin_token_sha256", mode)
	}
}

// Finding 6: ids were a per-process prefix plus a counter.
func TestRequestIDsAreRandomAndBound(t *testing.T) {
	src, err := newIDSource()
	require.NoError(t, err)
	a, b := src.next("k1"), src.next("k1")
	assert.Len(t, a, idLen)
	assert.NotEqual(t, a, b)
	common := 0
	for common < len(a) && a[common] == b[common] {
		common++
	}
	assert.Less(t, common, len(idPrefix)+4, "ids %s and %s share a long prefix", a, b)
	assert.True(t, src.owns(a, "k1"))
	assert.False(t, src.owns(a, "k2"))
	assert.False(t, src.owns(a[:len(a)-1]+"0", "k1") && a[len(a)-1] != '0')
	other, _ := newIDSource()
	assert.False(t, other.owns(a, "k1"), "another server's secret")
	assert.False(t, src.owns("rl-0000-1", "k1"))
}

// Finding 6: any key could rate any tenant's request; /v1/feedback had
// no rate limit.
func TestFeedbackOnlyFromTheRequestingKey(t *testing.T) {
	gw := startSecGateway(t, secConfig(""))
	code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), "Authorization", "Bearer sk-alice")
	require.Equal(t, 200, code, "%s", body)
	id := hdr.Get(HeaderRequestID)
	fb := `{"request_id":"` + id + `","quality":0.1}`
	code, _, body = post(t, gw.url+"/v1/feedback", fb, "Authorization", "Bearer sk-bob")
	assert.Equal(t, 404, code, "bob rated alice's request: %s", body)
	code, _, body = post(t, gw.url+"/v1/feedback", fb, "Authorization", "Bearer sk-alice")
	assert.Equal(t, 200, code, "%s", body)

	// alice's bucket: burst 4, one used by chat and one by feedback.
	n429 := 0
	for range 4 {
		code, hdr, _ := post(t, gw.url+"/v1/feedback", `{"request_id":"x","quality":0.5}`, "Authorization", "Bearer sk-alice")
		if code == 429 {
			n429++
			assert.NotEmpty(t, hdr.Get("Retry-After"))
		}
	}
	assert.Equal(t, 2, n429, "feedback is rate limited per key")
}

// Finding 9: a user key on an admin route got 401; admin changes had no
// identity.
func TestAdminAuthAndAudit(t *testing.T) {
	gw := startSecGateway(t, secConfig(""))
	code, _, _ := post(t, gw.url+"/admin/policy", `{"policy":"ucb1"}`, "Authorization", "Bearer sk-bob")
	assert.Equal(t, 403, code)
	code, _, _ = post(t, gw.url+"/admin/policy", `{"policy":"ucb1"}`)
	assert.Equal(t, 401, code)
	code, _, body := post(t, gw.url+"/admin/policy", `{"policy":"ucb1"}`, "Authorization", "Bearer admin-tok")
	require.Equal(t, 200, code, "%s", body)
	lines := gw.audit.lines(t)
	require.Len(t, lines, 3)
	assert.Equal(t, "key:bob", lines[0]["identity"])
	assert.Equal(t, "forbidden", lines[0]["outcome"])
	assert.Equal(t, "anonymous", lines[1]["identity"])
	assert.Equal(t, "denied", lines[1]["outcome"])
	h := HashKey("admin-tok")
	assert.Equal(t, "admin:"+h[:8], lines[2]["identity"])
	assert.Equal(t, "ok", lines[2]["outcome"])
	assert.Equal(t, "POST /admin/policy", lines[2]["action"])
	assert.Contains(t, lines[2]["remote"], "127.0.0.1:")
	for _, l := range lines {
		assert.NotContains(t, fmt.Sprint(l), "admin-tok", "no secret in the audit log")
	}
}

// Finding 9: no access log.
func TestAccessLog(t *testing.T) {
	gw := startSecGateway(t, secConfig(""))
	code, hdr, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""), "Authorization", "Bearer sk-bob")
	require.Equal(t, 200, code)
	var line map[string]any
	for _, l := range gw.access.lines(t) {
		if l["id"] == hdr.Get(HeaderRequestID) {
			line = l
		}
	}
	require.NotNil(t, line, "access log line for %s", hdr.Get(HeaderRequestID))
	assert.Equal(t, "bob", line["key"])
	assert.Equal(t, "tb", line["tenant"])
	assert.Equal(t, "POST", line["method"])
	assert.Equal(t, "/v1/chat/completions", line["path"])
	assert.EqualValues(t, 200, line["status"])
	assert.Equal(t, hdr.Get(HeaderModel), line["model"])
	assert.Contains(t, line, "latency_ms")
}

// Finding 9: a 404 echoed a 100 KB model name; upstream URLs and raw
// errors reached the client.
func TestErrorsDoNotLeak(t *testing.T) {
	gw := startSecGateway(t, secConfig(""))
	huge := strings.Repeat("m", 100<<10)
	code, _, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, huge, ""), "Authorization", "Bearer sk-bob")
	assert.Equal(t, 404, code)
	assert.Less(t, len(body), 600, "404 body of %d bytes", len(body))

	up := newFakeOpenAI(t)
	up.set("cut")
	ogw := startSecGateway(t, fmt.Sprintf(`
providers: [{name: oai, type: openai, base_url: %s, health_check: false}]
models: [{id: gpt-x, provider: oai}]
retries: {max: 0}
log: {dir: ""}
`, up.url()))
	code, hdr, body := post(t, ogw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "gpt-x", ""))
	require.GreaterOrEqual(t, code, 500, "%s", body)
	host := strings.TrimPrefix(up.srv.URL, "http://")
	assert.NotContains(t, string(body), host, "upstream address leaked: %s", body)
	assert.NotContains(t, string(body), "EOF")
	assert.Contains(t, string(body), "gpt-x")
	assert.Contains(t, ogw.log.b.String(), hdr.Get(HeaderRequestID), "details logged under the request id")
}

// Finding 7: tags and metadata were logged in clear.
func TestLoggedTagsMasked(t *testing.T) {
	gw := startSecGateway(t, secConfig(""))
	code, hdr, _ := post(t, gw.url+"/v1/chat/completions",
		`{"model":"auto","metadata":{"api_token":"ghp_0123456789abcdefghijABCDEFGHIJ","contact":"eve@example.com"},"messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "Bearer sk-bob", HeaderTags, "ssn=123-45-6789, exp=b")
	require.Equal(t, 200, code)
	rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
	require.True(t, ok)
	all := strings.Join(rec.Request.Features.Tags, ",")
	for _, secret := range []string{"ghp_0123", "eve@example.com", "123-45-6789"} {
		assert.NotContains(t, all, secret)
	}
	assert.Contains(t, rec.Request.Features.Tags, "exp=b")
	assert.Contains(t, rec.Request.Features.Tags, "api_token=[REDACTED:credential]")

	agw := startSecGateway(t, secConfig("privacy: {metadata_allowlist: [exp]}\n"))
	code, hdr, _ = post(t, agw.url+"/v1/chat/completions",
		`{"model":"auto","metadata":{"contact":"x"},"messages":[{"role":"user","content":"hi"}]}`,
		"Authorization", "Bearer sk-bob", HeaderTags, "exp=b, other=1")
	require.Equal(t, 200, code)
	rec, ok = agw.sink.get(hdr.Get(HeaderRequestID))
	require.True(t, ok)
	assert.Equal(t, []string{"exp=b"}, rec.Request.Features.Tags)
}

// Finding 7: the tenant hash was an HMAC with an empty key.
func TestTenantSalt(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte(fastSim))
	require.NoError(t, err)
	cfg.Log.Dir = dir
	t.Setenv(DefaultTenantSaltEnv, "")
	s1, err := cfg.TenantSalt()
	require.NoError(t, err)
	assert.Len(t, s1, 64)
	s2, err := cfg.TenantSalt()
	require.NoError(t, err)
	assert.Equal(t, s1, s2, "stable across restarts")
	fi, err := os.Stat(filepath.Join(dir, "tenant_salt"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	t.Setenv(DefaultTenantSaltEnv, "from-env")
	s3, err := cfg.TenantSalt()
	require.NoError(t, err)
	assert.Equal(t, "from-env", s3)

	t.Setenv(DefaultTenantSaltEnv, "")
	prod := "mode: production\n" + fmt.Sprintf("auth: {keys: [{name: k, sha256: %s}], admin_token_sha256: %s}\n", HashKey("k"), HashKey("a")) +
		strings.Replace(fastSim, `log: {dir: ""}`, "log: {dir: "+dir+"}", 1)
	_, err = ParseConfig([]byte(prod))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "privacy.tenant_salt")
	t.Setenv(DefaultTenantSaltEnv, "s3cret")
	_, err = ParseConfig([]byte(prod))
	require.NoError(t, err)
}

func BenchmarkRequestID(b *testing.B) {
	src, _ := newIDSource()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = src.next("sk-some-api-key")
		}
	})
}

// Masking: prompts leave for the upstream masked when configured.
func TestPromptMaskedBeforeUpstream(t *testing.T) {
	up := newFakeOpenAI(t)
	cfg := func(prompts bool) string {
		return fmt.Sprintf(`
providers: [{name: oai, type: openai, base_url: %s, health_check: false}]
models: [{id: gpt-x, provider: oai}]
privacy: {mask: {prompts: %v}}
log: {dir: ""}
`, up.url(), prompts)
	}
	body := `{"model":"gpt-x","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"my key is AKIAIOSFODNN7EXAMPLE, mail bob@example.com"}]},{"role":"user","content":"card 4111 1111 1111 1111"}]}`
	for _, prompts := range []bool{false, true} {
		gw := startSecGateway(t, cfg(prompts))
		code, _, b := post(t, gw.url+"/v1/chat/completions", body)
		require.Equal(t, 200, code, "%s", b)
		up.mu.Lock()
		sent, _ := json.Marshal(up.lastBody)
		up.mu.Unlock()
		for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "bob@example.com", "4111 1111 1111 1111"} {
			assert.Equal(t, !prompts, strings.Contains(string(sent), secret), "prompts=%v: %s in %s", prompts, secret, sent)
		}
		assert.Contains(t, string(sent), "be brief")
	}
}

// Finding 5: /readyz was refused (connection closed) during the drain.
func TestReadyzAnswers503WhileDraining(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
providers: [{name: sim, type: sim, time_scale: 0.05}]
models: [{id: s1, provider: sim, sim: {ttft_ms: 100, tokens_per_sec: 20, output_tokens: 40}}]
log: {dir: ""}
`))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	res, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"auto","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	defer res.Body.Close()
	buf := make([]byte, 64)
	_, err = res.Body.Read(buf)
	require.NoError(t, err)
	cancel()
	require.Eventually(t, srv.draining.Load, time.Second, time.Millisecond)
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	rr, err := cl.Get(base + "/readyz")
	require.NoError(t, err, "readyz during the drain answers")
	_ = rr.Body.Close()
	assert.Equal(t, 503, rr.StatusCode)
	rest, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(rest), "data: [DONE]\n\n"), "the in-flight stream finishes")
	require.NoError(t, <-served)
	_, err = cl.Get(base + "/readyz")
	assert.Error(t, err, "the socket is closed once drained")
}
