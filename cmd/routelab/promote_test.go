package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/routelab/routelab/gateway"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunPromote(t *testing.T) {
	type call struct{ method, path, body, auth string }
	var got call
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = call{r.Method, r.URL.Path, string(b), r.Header.Get("Authorization")}
		if r.URL.Path == "/admin/promote" && len(b) == 0 {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"message":"shadow weighted not promoted: 3 of 500 samples","type":"invalid_request_error"}}`)
			return
		}
		_, _ = io.WriteString(w, `{"policy":"weighted"}`)
	}))
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name    string
		o       promoteOpts
		want    call
		wantErr string
		wantOut string
	}{
		{"status json", promoteOpts{status: true, json: true}, call{"GET", "/admin/shadow/status", "", "Bearer tok"}, "", "\"policy\": \"weighted\""},
		{"refused", promoteOpts{}, call{"POST", "/admin/promote", "", "Bearer tok"}, "3 of 500 samples", ""},
		{"force", promoteOpts{force: true}, call{"POST", "/admin/promote", `{"force": true}`, "Bearer tok"}, "", "weighted"},
		{"rollback", promoteOpts{rollback: true}, call{"POST", "/admin/rollback", "", "Bearer tok"}, "", "weighted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.admin, tc.o.token, tc.o.timeout = srv.URL, "tok", 5e9
			var out bytes.Buffer
			err := runPromote(context.Background(), &out, tc.o)
			assert.Equal(t, tc.want, got)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, out.String(), tc.wantOut)
		})
	}

	err := runPromote(context.Background(), io.Discard, promoteOpts{admin: "localhost:8080", timeout: 5e9})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--admin")
}

func TestPromoteCmdFlags(t *testing.T) {
	var path, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		_, _ = io.WriteString(w, `{"n": 3}`)
	}))
	t.Cleanup(srv.Close)

	t.Setenv("ROUTELAB_ADMIN_TOKEN", "from-env")
	cmd := newPromoteCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--admin", srv.URL, "--status"})
	require.NoError(t, cmd.Execute())
	assert.Equal(t, "/admin/shadow/status", path)
	assert.Equal(t, "Bearer from-env", auth, "token from the environment")
	assert.Contains(t, out.String(), "requests compared:  3 ")
	assert.Contains(t, out.String(), "promotion:          NOT eligible")

	cmd = newPromoteCmd()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--admin", srv.URL, "--status", "--rollback"})
	err := cmd.Execute()
	require.Error(t, err, "--status and --rollback exclude each other")
	assert.Contains(t, err.Error(), "rollback")
}

func TestShadowStatusSummary(t *testing.T) {
	lo, hi := 0.012, 0.048
	var out bytes.Buffer
	require.NoError(t, writeShadowStatus(&out, &gateway.ShadowStatus{
		Incumbent: "thompson", Shadow: "linucb", N: 1200, ESS: 410.5, IncumbentValue: 0.69, ShadowValue: 0.72,
		ShadowSNIPS: 0.719, Diff: 0.03, CILow: &lo, CIHigh: &hi, Margin: 0.005, MinSamples: 500, Confidence: 0.95,
		Eligible: true, Reason: "lower bound +0.0120 > margin +0.0050",
	}))
	got := out.String()
	for _, want := range []string{
		"serving policy:", "thompson", "shadow policy:", "linucb",
		"1200 (effective sample size 410.5; promotion needs >= 500)",
		"95% interval [+0.0120, +0.0480]", "promotion:", "eligible: lower bound",
	} {
		assert.Contains(t, got, want)
	}
	assert.NotContains(t, got, "NOT eligible")
}

// TestPromoteWithoutShadow: against a real gateway with no shadow policy,
// promote (guarded or forced) and rollback fail with the gateway's reason
// and change nothing.
func TestPromoteWithoutShadow(t *testing.T) {
	cfg, err := gateway.ParseConfig([]byte("providers: [{name: sim, type: sim, time_scale: 0.001}]\nmodels: [{id: a, provider: sim, sim: {ttft_ms: 1}}, {id: b, provider: sim, sim: {ttft_ms: 1}}]\npolicy: {name: thompson}\nlog: {dir: \"\"}\n"))
	require.NoError(t, err)
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: newRegistry(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	before := srv.Core().Policy()
	for _, c := range []struct {
		o    promoteOpts
		want string
	}{
		{promoteOpts{}, "409 Conflict: no shadow policy to promote"},
		{promoteOpts{force: true}, "409 Conflict: no shadow policy to promote"},
		{promoteOpts{rollback: true}, "409 Conflict: no promotion to roll back"},
	} {
		c.o.admin, c.o.timeout = hs.URL, 5e9
		err := runPromote(context.Background(), io.Discard, c.o)
		if assert.Error(t, err) {
			assert.Contains(t, err.Error(), c.want)
		}
	}
	assert.Same(t, before, srv.Core().Policy(), "nothing changed")
}
