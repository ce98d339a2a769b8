package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// These tests need a real Redis: ROUTELAB_REDIS_ADDR (make redis-up; .ci/run
// starts one). They skip without it.

func redisAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("ROUTELAB_REDIS_ADDR")
	if addr == "" {
		t.Skip("ROUTELAB_REDIS_ADDR not set (make redis-up)")
	}
	return addr
}

func testPrefix(t *testing.T) string {
	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "gwtest-" + hex.EncodeToString(b[:]) + ":"
}

// replicaYAML is a gateway on three simulated models of different quality
// sharing state through Redis at addr under prefix. The Redis timeout is
// generous (the machine may be loaded): a timed-out call would fall back
// to the local bucket and blur the rate-limit bound.
func replicaYAML(addr, prefix, merge, extra string) string {
	return replicaYAMLTimeout(addr, prefix, merge, "1s", false, extra)
}

func replicaYAMLTimeout(addr, prefix, merge, timeout string, required bool, extra string) string {
	return fmt.Sprintf(`
providers: [{name: sim, type: sim, time_scale: 0.001, health_check: false}]
models:
  - {id: good, provider: sim, sim: {ttft_ms: 20, tokens_per_sec: 500, output_tokens: 5, quality: {"": 0.9}}}
  - {id: fair, provider: sim, sim: {ttft_ms: 20, tokens_per_sec: 500, output_tokens: 5, quality: {"": 0.5}}}
  - {id: poor, provider: sim, sim: {ttft_ms: 20, tokens_per_sec: 500, output_tokens: 5, quality: {"": 0.1}}}
log: {dir: ""}
state: {redis: {addr: %q, prefix: %q, merge_interval: %s, timeout: %s, required: %v}}
%s`, addr, prefix, merge, timeout, required, extra)
}

type replica struct {
	*testGW
	stop func()
}

// startReplica serves a gateway from yaml on loopback; stop ends it
// abruptly (no drain: what it has not merged is lost, as in a crash).
func startReplica(t *testing.T, yaml string) *replica {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	sink, fb := newRecSink(), &fbLog{}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: sink, Feedback: fb,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	hs := httptest.NewServer(srv.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			hs.Close()
			_ = srv.shared.c.Close()
		})
	}
	t.Cleanup(stop)
	return &replica{testGW: &testGW{srv: srv, url: hs.URL, sink: sink, fb: fb}, stop: stop}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, json.NewDecoder(res.Body).Decode(v))
}

func (r *replica) policy(t *testing.T) PolicyReport {
	t.Helper()
	var pr PolicyReport
	getJSON(t, r.url+"/admin/policy", &pr)
	return pr
}

func (r *replica) chat(t *testing.T) (int, string) {
	code, h, _ := post(t, r.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
	return code, h.Get(HeaderModel)
}

func armCounts(pr PolicyReport) map[string]float64 {
	m := map[string]float64{}
	for _, a := range pr.Arms {
		m[a.ID] = a.Count
	}
	return m
}

func preferred(pr PolicyReport) string {
	best, n := "", -1.0
	for _, a := range pr.Arms {
		if a.Count > n {
			best, n = a.ID, a.Count
		}
	}
	return best
}

// Two replicas share what their policy learns: 300 requests to A only,
// and within a merge interval or two B's /admin/policy reports them all
// and prefers the same arm; a replica restarted afterwards resumes from
// the shared statistics.
func TestRedisReplicasShareLearning(t *testing.T) {
	addr := redisAddr(t)
	for _, pol := range []string{"thompson", "linucb"} {
		t.Run(pol, func(t *testing.T) { testReplicasShareLearning(t, addr, pol) })
	}
}

func testReplicasShareLearning(t *testing.T, addr, pol string) {
	prefix := testPrefix(t)
	const merge = 500 * time.Millisecond
	yaml := replicaYAML(addr, prefix, merge.String(), "policy: {name: "+pol+"}")
	a, b := startReplica(t, yaml), startReplica(t, yaml)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 75; i++ {
				if code, _ := a.chat(t); code != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	done := time.Now()
	require.Zero(t, failed.Load())
	require.Eventually(t, func() bool { return b.policy(t).Updates >= 300 }, 20*merge, 10*time.Millisecond, "B sees A's 300 updates")
	lag := time.Since(done)
	pa, pb := a.policy(t), b.policy(t)
	t.Logf("B reported %v updates %v after A's last answer (merge interval %v); arm counts A %v, B %v", pb.Updates, lag.Round(time.Millisecond), merge, armCounts(pa), armCounts(pb))
	assert.Equal(t, pol, pb.Name)
	assert.Equal(t, 300.0, pa.Updates)
	assert.Equal(t, pa.Updates, pb.Updates)
	assert.Equal(t, "good", preferred(pa), "A learned the best arm")
	assert.Equal(t, preferred(pa), preferred(pb), "both prefer the same arm")
	require.NotNil(t, pb.Shared)
	assert.Equal(t, "up", pb.Shared.Redis)
	assert.NotEmpty(t, pb.Shared.StatsID)
	assert.Equal(t, pa.Shared.StatsID, pb.Shared.StatsID)
	goodB := 0
	for i := 0; i < 20; i++ {
		if _, m := b.chat(t); m == "good" {
			goodB++
		}
	}
	assert.GreaterOrEqual(t, goodB, 15, "B routes to the arm A learned is best")

	// A restart of B (abrupt: what it learned since its last merge is
	// lost) resumes from the shared statistics at once.
	require.Eventually(t, func() bool { return a.policy(t).Updates >= 320 }, 20*merge, 10*time.Millisecond)
	b.stop()
	b2 := startReplica(t, yaml)
	p2 := b2.policy(t)
	t.Logf("restarted replica: %v updates at start, arm counts %v", p2.Updates, armCounts(p2))
	assert.GreaterOrEqual(t, p2.Updates, 320.0, "a restarted replica resumes from shared state")
	assert.Equal(t, preferred(pa), preferred(p2))
}

// A per-key limit holds across replicas: requests spread over two
// replicas are accepted at most burst + rps × elapsed in total.
func TestRedisKeyLimitAcrossReplicas(t *testing.T) {
	addr, prefix := redisAddr(t), testPrefix(t)
	const rps, burst = 10.0, 5
	yaml := replicaYAML(addr, prefix, "1s", fmt.Sprintf("policy: {name: thompson}\nrate_limits: {per_key: {rps: %v, burst: %d}}", rps, burst))
	rs := []*replica{startReplica(t, yaml), startReplica(t, yaml)}
	var accepted, limited, other atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 1500*time.Millisecond {
				switch code, _ := rs[w%2].chat(t); code {
				case http.StatusOK:
					accepted.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	bound := burst + rps*elapsed
	t.Logf("accepted %d, limited %d over %.2fs on 2 replicas; bound burst + rps×t = %.1f (two unshared buckets would allow %.1f)",
		accepted.Load(), limited.Load(), elapsed, bound, 2*bound)
	assert.Zero(t, other.Load())
	assert.LessOrEqual(t, float64(accepted.Load()), bound, "total accepted ≤ limit × time + burst")
	assert.Positive(t, limited.Load(), "the shared bucket refused some")
}

// Feedback reaching another replica joins the request: B applies the
// deferred update A held back, and it happens once.
func TestRedisFeedbackJoinsAcrossReplicas(t *testing.T) {
	addr, prefix := redisAddr(t), testPrefix(t)
	up := newFakeOpenAI(t)
	yaml := fmt.Sprintf(`
providers: [{name: oai, type: openai, base_url: %s, health_check: false}]
models: [{id: m1, provider: oai}, {id: m2, provider: oai}]
policy: {name: thompson}
log: {dir: ""}
state: {redis: {addr: %q, prefix: %q, merge_interval: 200ms}}
`, up.url(), addr, prefix)
	a, b := startReplica(t, yaml), startReplica(t, yaml)
	code, h, _ := post(t, a.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
	require.Equal(t, http.StatusOK, code)
	id := h.Get(HeaderRequestID)
	code, _, body := post(t, b.url+"/v1/feedback", fmt.Sprintf(`{"request_id":%q,"quality":1}`, id))
	require.Equal(t, http.StatusOK, code, "%s", body)
	var fr FeedbackResponse
	require.NoError(t, json.Unmarshal(body, &fr))
	assert.True(t, fr.Learned, "the deferred update is applied by the replica that got the feedback")
	assert.Equal(t, h.Get(HeaderModel), fr.Model)
	code, _, _ = post(t, a.url+"/v1/feedback", fmt.Sprintf(`{"request_id":%q,"quality":1}`, id))
	assert.Equal(t, http.StatusNotFound, code, "rated once across replicas")
	assert.Equal(t, uint64(1), b.srv.core.PendingStats().Remote)
	a.srv.core.Flush()
	assert.Zero(t, a.srv.core.PendingStats().Expired, "A does not credit it again at expiry")
	require.Eventually(t, func() bool { return a.policy(t).Updates == 1 }, 5*time.Second, 10*time.Millisecond, "A sees B's update")
}

// A promotion, a rollback and an admin swap on A are picked up by B.
func TestRedisPromotionShared(t *testing.T) {
	addr, prefix := redisAddr(t), testPrefix(t)
	yaml := replicaYAML(addr, prefix, "200ms", "policy: {name: thompson}\nshadow: {name: epsilon-greedy}\npromotion: {floor: 0.05}")
	a, b := startReplica(t, yaml), startReplica(t, yaml)
	for i := 0; i < 30; i++ {
		code, _ := a.chat(t)
		require.Equal(t, http.StatusOK, code)
	}
	code, _, body := post(t, a.url+"/admin/promote", `{"force":true}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Eventually(t, func() bool {
		p := b.policy(t)
		return p.Name == "epsilon-greedy" && p.Shadow == "thompson"
	}, 5*time.Second, 10*time.Millisecond, "B adopts A's promotion")
	pb := b.policy(t)
	assert.Contains(t, pb.Version, "+floor:0.05", "with the promotion floor")
	assert.Equal(t, a.policy(t).Shared.StatsID, pb.Shared.StatsID, "the promoted policy keeps its shared statistics")
	assert.Positive(t, pb.Updates, "the shadow learned (importance-weighted) from A's requests")
	require.Eventually(t, func() bool {
		ua := a.policy(t).Updates // A's report publishes what it learned; B's then pulls it
		return b.policy(t).Updates == ua
	}, 5*time.Second, 10*time.Millisecond, "A and B agree on the promoted policy's statistics")

	code, _, body = post(t, a.url+"/admin/rollback", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Eventually(t, func() bool { return b.policy(t).Name == "thompson" }, 5*time.Second, 10*time.Millisecond, "B adopts the rollback")

	code, _, body = post(t, a.url+"/admin/policy", `{"policy":"ucb1"}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Eventually(t, func() bool { return b.policy(t).Name == "ucb1" }, 5*time.Second, 10*time.Millisecond, "B adopts the admin swap")
	for i := 0; i < 10; i++ {
		code, _ := b.chat(t)
		require.Equal(t, http.StatusOK, code)
	}
	require.Eventually(t, func() bool { return a.policy(t).Updates == 10 }, 5*time.Second, 10*time.Millisecond, "the swapped-in policy's statistics are shared too")

	code, _, body = post(t, a.url+"/admin/shadow", `{"policy":"softmax"}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Eventually(t, func() bool { return b.policy(t).Shadow == "softmax" }, 5*time.Second, 10*time.Millisecond, "B adopts the new shadow")
	assert.Equal(t, "ucb1", b.policy(t).Name)
}

// ownRedis runs a redis-server of the test's own (it is stopped and
// restarted), persisting to a temporary directory so that a restart keeps
// its data, as a production Redis does.
type ownRedis struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T, port int, dir string) *ownRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (make redis-up installs it)")
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port = ln.Addr().(*net.TCPAddr).Port
		require.NoError(t, ln.Close())
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "3600 1", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	require.NoError(t, cmd.Start())
	r := &ownRedis{t: t, dir: dir, port: port, cmd: cmd}
	t.Cleanup(r.stop)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", r.addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "redis-server listening")
	return r
}

func (r *ownRedis) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// stop shuts the server down (SIGTERM: it saves its data and exits).
func (r *ownRedis) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_ = r.cmd.Wait()
}

func readyz(t *testing.T, url string) (int, string) {
	res, err := http.Get(url + "/readyz")
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func metricValue(t *testing.T, url, name string) string {
	res, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// Redis stopped mid-load: no request fails, /readyz says degraded (still
// 200), routelab_state_redis_up is 0; a replica started meanwhile serves
// on local state too; when Redis is back the replicas re-merge what they
// learned meanwhile and /readyz is plain ready again.
func TestRedisOutageMidLoad(t *testing.T) {
	redisAddr(t) // CI runs this with the other Redis tests
	rd := startOwnRedis(t, 0, t.TempDir())
	prefix := testPrefix(t)
	yaml := replicaYAMLTimeout(rd.addr(), prefix, "100ms", "200ms", false, "policy: {name: thompson}")
	rs := []*replica{startReplica(t, yaml), startReplica(t, yaml)}

	var ok, failed atomic.Int64
	stopLoad := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		target := rs[w%2] // rs grows below, while the load runs
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				if code, _ := target.chat(t); code == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	require.Eventually(t, func() bool { return ok.Load() >= 100 }, 20*time.Second, 5*time.Millisecond)
	rd.stop()
	before := ok.Load()
	t.Logf("redis stopped after %d requests", before)
	for _, r := range rs {
		require.Eventually(t, func() bool {
			_, body := readyz(t, r.url)
			return strings.Contains(body, "degraded")
		}, 10*time.Second, 10*time.Millisecond, "readyz says degraded")
		code, body := readyz(t, r.url)
		assert.Equal(t, http.StatusOK, code, "degraded is still ready by default")
		t.Logf("readyz while redis is down: %d %q", code, strings.TrimSpace(body))
		assert.Equal(t, "0", metricValue(t, r.url, "routelab_state_redis_up"))
		assert.Equal(t, "down", r.policy(t).Shared.Redis)
	}
	require.Eventually(t, func() bool { return ok.Load() >= before+100 }, 20*time.Second, 5*time.Millisecond, "serving on local state")
	late := startReplica(t, yaml) // starts without Redis
	for i := 0; i < 20; i++ {
		code, _ := late.chat(t)
		require.Equal(t, http.StatusOK, code)
	}
	assert.Equal(t, 20.0, late.policy(t).Updates, "learning locally")
	rs = append(rs, late)
	rd = startOwnRedis(t, rd.port, rd.dir)
	for _, r := range rs {
		require.Eventually(t, func() bool {
			_, body := readyz(t, r.url)
			return body == "ready\n"
		}, 10*time.Second, 10*time.Millisecond, "ready again once redis is back")
		assert.Equal(t, "1", metricValue(t, r.url, "routelab_state_redis_up"))
	}
	close(stopLoad)
	wg.Wait()
	total := float64(ok.Load() + 20)
	t.Logf("%d requests answered, %d failed; re-merging", ok.Load(), failed.Load())
	assert.Zero(t, failed.Load(), "no failed requests")
	for _, r := range rs {
		require.Eventually(t, func() bool { return r.policy(t).Updates == total }, 10*time.Second, 10*time.Millisecond,
			"after the outage every replica's statistics hold all %v updates", total)
	}
}

// BenchmarkChatHandlerRedis is BenchmarkChatHandler with state.redis: each
// request stores its pending decision (one SET) and, with a per-key limit,
// takes from the shared bucket (one Lua call) — the per-request cost of
// sharing, one loopback round trip each. Needs ROUTELAB_REDIS_ADDR.
func BenchmarkChatHandlerRedis(b *testing.B) {
	addr := os.Getenv("ROUTELAB_REDIS_ADDR")
	if addr == "" {
		b.Skip("ROUTELAB_REDIS_ADDR not set (make redis-up)")
	}
	for _, bc := range []struct{ name, yaml string }{
		{"pending", ""},
		{"pending+limit", "rate_limits: {per_key: {rps: 1000000000, burst: 1000000}}"},
	} {
		b.Run(bc.name, func(b *testing.B) { benchChatRedis(b, addr, bc.yaml) })
	}
}

func benchChatRedis(b *testing.B, addr, extra string) {
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
providers: [{name: mem, type: sim, health_check: false}]
models:
  - {id: m1, provider: mem, sim: {}}
  - {id: m2, provider: mem, sim: {}}
  - {id: m3, provider: mem, sim: {}}
log: {dir: ""}
state: {redis: {addr: %q, prefix: "bench:", merge_interval: 1s}}
%s
`, addr, extra)))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: nopSink{},
		Providers: map[string]provider.Provider{"mem": memProvider{}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.shared.c.Close()
	if !srv.shared.c.Up() {
		b.Fatal("redis unreachable")
	}
	h := srv.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(benchRequest))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// A replica started with another policy configuration (a rolling update)
// makes its policies the deployment's; the running replicas adopt them,
// built from the record's spec, with fresh shared statistics.
func TestRedisNewConfigTakesOver(t *testing.T) {
	addr, prefix := redisAddr(t), testPrefix(t)
	a := startReplica(t, replicaYAML(addr, prefix, "100ms", "policy: {name: thompson}"))
	for i := 0; i < 10; i++ {
		code, _ := a.chat(t)
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, 10.0, a.policy(t).Updates)
	b := startReplica(t, replicaYAML(addr, prefix, "100ms", "policy: {name: ucb1, params: {c: \"0.5\"}}"))
	pb := b.policy(t)
	assert.Equal(t, "ucb1", pb.Name)
	assert.Zero(t, pb.Updates, "new configuration, new statistics")
	require.Eventually(t, func() bool { return a.policy(t).Name == "ucb1" }, 5*time.Second, 10*time.Millisecond, "A adopts the new configuration's policy")
	pa := a.policy(t)
	assert.Equal(t, pb.Shared.StatsID, pa.Shared.StatsID)
	assert.Equal(t, pb.Version, pa.Version)
	for i := 0; i < 5; i++ {
		code, _ := a.chat(t)
		require.Equal(t, http.StatusOK, code)
	}
	require.Eventually(t, func() bool { return b.policy(t).Updates == 5 }, 5*time.Second, 10*time.Millisecond, "B sees what A learned with the adopted policy")
}
