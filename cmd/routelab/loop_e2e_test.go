package main

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/policy"
)

// lockedBuf is a goroutine-safe writer (the server's logs).
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startServe runs `routelab serve --config tasks.yaml` in the current
// directory on a free port until the returned stop is called (a graceful
// drain: the policies are checkpointed); it returns the base URL.
func startServe(t *testing.T, logs io.Writer) (string, func()) {
	t.Helper()
	addr := freeAddr(t)
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--config", "tasks.yaml", "--listen", addr})
	cmd.SetOut(io.Discard)
	cmd.SetErr(logs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	base := "http://" + addr
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs)
		default:
		}
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 20*time.Second, 10*time.Millisecond)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	return base, stop
}

// driveTasks sends n routed chat requests from 4 clients: the four tasks
// of the scenario in turn (named in X-Routelab-Task), four tenants, prompts
// of varied length. It returns how many answers each policy header named.
func driveTasks(t *testing.T, base string, n int) map[string]int {
	t.Helper()
	tasks := []string{"chat", "code", "math", "summarize"}
	tenants := []string{"search", "support", "marketing", "internal-tools"}
	var next atomic.Int64
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				prompt := strings.Repeat("please help with this request ", 1+(i*7)%40)
				body := fmt.Sprintf(`{"model":"auto","messages":[{"role":"user","content":%q}]}`, prompt)
				req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
				if !assert.NoError(t, err) {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(gateway.HeaderTask, tasks[i%len(tasks)])
				req.Header.Set(gateway.HeaderTenant, tenants[(i/len(tasks))%len(tenants)])
				res, err := http.DefaultClient.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if !assert.Equal(t, http.StatusOK, res.StatusCode) {
					return
				}
				mu.Lock()
				seen[res.Header.Get("X-Routelab-Policy")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return seen
}

// shadowStatus reads the gateway's shadow estimate through `routelab promote --status --json`.
func shadowStatus(t *testing.T, base string) gateway.ShadowStatus {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, runPromote(context.Background(), &out, promoteOpts{admin: base, status: true, json: true, timeout: 10 * time.Second}))
	var st gateway.ShadowStatus
	require.NoError(t, json.Unmarshal(out.Bytes(), &st), "%s", out.String())
	return st
}

// armUpdates sums the per-arm update counts ("arms": [{"id", "n"}]) found
// anywhere in a policy snapshot (a floor wraps the inner snapshot).
func armUpdates(t *testing.T, state []byte) int64 {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(state, &v))
	var walk func(any) int64
	walk = func(v any) int64 {
		var n int64
		switch x := v.(type) {
		case map[string]any:
			if arms, ok := x["arms"].([]any); ok {
				for _, a := range arms {
					if m, ok := a.(map[string]any); ok {
						if c, ok := m["n"].(float64); ok {
							n += int64(c)
						}
					}
				}
			}
			for k, c := range x {
				if k != "arms" {
					n += walk(c)
				}
			}
		case []any:
			for _, c := range x {
				n += walk(c)
			}
		}
		return n
	}
	return walk(v)
}

// TestLoopEndToEnd is the "must show", run as the README's
// walk-through runs it (same commands, same example config, in one working
// directory):
//
//	routelab sim --scenario tasks --policy 'epsilon-greedy=epsilon:0.2' --log L   (30000 requests here)
//	routelab train --logs L --policy linucb --out a.json
//	routelab sim --scenario tasks --policy-file a.json --requests 1000   (>= 0.99 of oracle, warm)
//	routelab serve --config tasks.yaml     (thompson floor 0.6 serving, a.json as shadow)
//	routelab promote --status; routelab promote                           (guarded: the estimate favours a.json)
//	restart: the promoted policy resumes with its learned state
func TestLoopEndToEnd(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile("../../examples/gateway/tasks.yaml")
	require.NoError(t, err)
	t.Chdir(dir)
	// The example's simulated providers sleep 5% of real latencies; 0.1%
	// keeps the test fast without changing any routing fact.
	cfgText := strings.Replace(string(example), "time_scale: 0.05", "time_scale: 0.001", 1)
	require.NotEqual(t, string(example), cfgText, "the example config sets time_scale: 0.05")
	require.NoError(t, os.WriteFile("tasks.yaml", []byte(cfgText), 0o644))
	ctx := context.Background()

	// 1. An exploring logger writes a decision log (30000 requests where
	// the walk-through uses sim's default 100000: enough for the same
	// bars, and a third of the time under the race detector).
	w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: "L", Full: decisionlog.FullBlock})
	require.NoError(t, err)
	require.NoError(t, runSim(ctx, simFlags{scenario: "tasks", policy: "epsilon-greedy=epsilon:0.2", seed: 1, requests: 30000}, w, &bytes.Buffer{}))
	require.NoError(t, w.Close())

	// 2. Train linucb on it offline.
	require.NoError(t, runTrain(ctx, trainFlags{logs: []string{"L"}, policy: "linucb", out: "a.json", seed: 1, quiet: true}, &bytes.Buffer{}, &bytes.Buffer{}))
	a, err := artifact.Read("a.json")
	require.NoError(t, err)
	trainedUpdates := armUpdates(t, a.State)
	require.Positive(t, trainedUpdates)

	// 3. Warm in the simulator from its first request.
	warm := simJSON(t, simFlags{scenario: "tasks", policyFile: "a.json", seed: 1, requests: 1000})
	ratio := warm["expected_mean_reward"].(float64) / warm["oracle_mean_reward"].(float64)
	assert.GreaterOrEqual(t, ratio, 0.99, "first 1000 requests from a.json, share of oracle")

	// 4. The gateway serves thompson (floor 0.6) with a.json as shadow.
	logs := &lockedBuf{}
	base, stop := startServe(t, logs)
	st := shadowStatus(t, base)
	assert.Equal(t, "thompson", st.Incumbent)
	assert.Equal(t, "linucb", st.Shadow)
	sent := 0
	for sent < 8000 && !st.Eligible {
		driveTasks(t, base, 500)
		sent += 500
		st = shadowStatus(t, base)
	}
	require.NotNil(t, st.CILow, "status %+v", st)
	t.Logf("after %d requests: n %d, ESS %.0f, incumbent %.4f, shadow %.4f (SNIPS %.4f), diff %+.4f, 95%% CI [%+.4f, %+.4f]; %s",
		sent, st.N, st.ESS, st.IncumbentValue, st.ShadowValue, st.ShadowSNIPS, st.Diff, *st.CILow, *st.CIHigh, st.Reason)
	assert.Empty(t, st.Warning, "an honest estimate (no low-overlap warning)")
	assert.Greater(t, st.Diff, 0.0, "the estimate favours a.json")
	require.True(t, st.Eligible, "guarded promotion allowed: %s", st.Reason)

	// 5. Guarded promotion through the CLI.
	var out bytes.Buffer
	require.NoError(t, runPromote(ctx, &out, promoteOpts{admin: base, timeout: 10 * time.Second}))
	var pr gateway.PromoteResponse
	require.NoError(t, json.Unmarshal(out.Bytes(), &pr), "%s", out.String())
	assert.Equal(t, "linucb", pr.Policy)
	assert.False(t, pr.Forced)
	assert.Equal(t, gateway.DefaultPromotionFloor, pr.Floor, "the promoted policy keeps an exploration floor")
	seen := driveTasks(t, base, 400)
	assert.Equal(t, map[string]int{"linucb": 400}, seen, "the promoted policy serves")
	stop() // graceful drain: checkpoints written

	// The checkpoint holds the promoted policy, which learned past a.json.
	ck, err := artifact.Read(filepath.Join("data", "policies", gateway.ServingCheckpoint))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(ck.Spec, "linucb"), "serving checkpoint %s", ck.Spec)
	assert.Contains(t, ck.Spec, "floor:0.05")
	servedUpdates := armUpdates(t, ck.State)
	assert.Greater(t, servedUpdates, trainedUpdates, "the promoted policy went on learning in the gateway")
	t.Logf("linucb arm updates: %d in a.json, %d at shutdown", trainedUpdates, servedUpdates)

	// The promotion is in the history, with who, the estimate and its interval.
	var list bytes.Buffer
	require.NoError(t, listArtifacts(filepath.Join("data", "policies"), &list, &bytes.Buffer{}))
	assert.Contains(t, list.String(), "promote")
	assert.Contains(t, list.String(), "anonymous")
	assert.Contains(t, list.String(), "95% CI [")
	h, err := artifact.ReadHistory(filepath.Join("data", "policies"))
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.False(t, h[0].Forced)
	assert.GreaterOrEqual(t, h[0].Estimate.N, st.N, "the estimate recorded is the one promoted on")
	assert.Greater(t, *h[0].Estimate.CILow, 0.0)

	// 6. Restart: the promoted policy resumes with its learned state.
	cfg, err := gateway.LoadConfig("tasks.yaml")
	require.NoError(t, err)
	cfg.Log.Dir = ""
	var restartLogs bytes.Buffer
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: newRegistry(), Logger: slog.New(slog.NewTextHandler(&restartLogs, nil))})
	require.NoError(t, err)
	assert.Contains(t, restartLogs.String(), "restored policy from checkpoint")
	p := srv.Core().Policy()
	require.Equal(t, "linucb", p.Name())
	_, floored := p.(*policy.Floor)
	assert.True(t, floored, "the restored policy keeps its exploration floor: %T", p)
	rw, err := ck.RewardFunc()
	require.NoError(t, err)
	re, err := artifact.New(p, ck.Encoder, rw, ck.Catalogue, artifact.Provenance{})
	require.NoError(t, err)
	assert.Equal(t, ck.StateSHA256, re.StateSHA256, "the restored state is the checkpointed one, bit for bit")
	assert.Equal(t, "thompson", srv.Core().ShadowPolicy().Name(), "the demoted incumbent is the shadow")
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	assert.Equal(t, map[string]int{"linucb": 8}, driveTasks(t, hs.URL, 8))
}
