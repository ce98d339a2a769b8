package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spyPolicy always picks the first candidate and records every update.
type spyPolicy struct {
	mu      sync.Mutex
	rewards []float64
}

func (*spyPolicy) Name() string { return "spy" }
func (*spyPolicy) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	for i := range cands {
		probs[i] = 0
	}
	probs[0] = 1
	return 0, nil
}
func (p *spyPolicy) Update(_ *decision.Features, _ []decision.Arm, _ int, r float64) error {
	p.mu.Lock()
	p.rewards = append(p.rewards, r)
	p.mu.Unlock()
	return nil
}
func (p *spyPolicy) seen() []float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]float64(nil), p.rewards...)
}

// startSpyGateway serves one OpenAI-compatible upstream, whose answers have
// no judged quality, with the spy policy; now is the gateway's clock.
func startSpyGateway(t *testing.T, extra string, now func() time.Time) (*testGW, *spyPolicy) {
	t.Helper()
	oai := newFakeOpenAI(t)
	t.Setenv("RL_TEST_OAI_KEY", "k")
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
policy: {name: spy}
providers:
  - {name: oai, type: openai, base_url: %s, api_key_env: RL_TEST_OAI_KEY, health_check: false}
models:
  - {id: gpt-fake, provider: oai, upstream: gpt-up, price_in: 0.001, price_out: 0.002}
log: {dir: ""}
%s`, oai.url(), extra)))
	require.NoError(t, err)
	spy := &spyPolicy{}
	reg := policy.NewRegistry()
	reg.MustRegister("spy", "test spy", func(policy.Params) (policy.Policy, error) { return spy, nil })
	srv, err := New(Opts{Config: cfg, Registry: reg, Sink: newRecSink(), Feedback: &fbLog{}, Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testGW{srv: srv, url: hs.URL}, spy
}

func TestDeferredUpdatesLearnOncePerRequest(t *testing.T) {
	var mu sync.Mutex
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	gw, spy := startSpyGateway(t, "feedback: {ttl: 1m}", now)

	ask := func() string {
		code, hdr, body := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
		require.Equal(t, 200, code, "%s", body)
		return hdr.Get(HeaderRequestID)
	}
	rated, unrated := ask(), ask()
	assert.Empty(t, spy.seen(), "quality unknown: the updates wait for feedback")

	code, _, body := post(t, gw.url+"/v1/feedback", `{"request_id":"`+rated+`","reward":0.9}`)
	require.Equal(t, 200, code, "%s", body)
	assert.Contains(t, string(body), `"learned":true`)
	assert.Equal(t, []float64{0.9}, spy.seen(), "feedback is the one update of the rated request")

	advance(2 * time.Minute)
	ask() // any traffic sweeps what outlived the ttl
	got := spy.seen()
	require.Len(t, got, 2, "the unrated request learns its immediate reward once, after the ttl")
	assert.Greater(t, got[1], 0.0)
	assert.Less(t, got[1], 1.0)

	code, _, _ = post(t, gw.url+"/v1/feedback", `{"request_id":"`+unrated+`","reward":0.1}`)
	assert.Equal(t, 404, code, "too late: it already learned its default")
	assert.Len(t, spy.seen(), 2, "no second update")

	res, err := http.Get(gw.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	for _, want := range []string{
		`routelab_deferred_updates_total{result="waiting"} 3`,
		`routelab_deferred_updates_total{result="feedback"} 1`,
		`routelab_deferred_updates_total{result="default"} 1`,
		`routelab_feedback_evicted_total 0`,
	} {
		assert.Contains(t, string(b), want)
	}
}

func TestDeferUpdatesOffLearnsAtCompletionOnly(t *testing.T) {
	gw, spy := startSpyGateway(t, "feedback: {defer_updates: false}", nil)
	code, hdr, _ := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
	require.Equal(t, 200, code)
	require.Len(t, spy.seen(), 1, "learned at completion")
	code, _, body := post(t, gw.url+"/v1/feedback", `{"request_id":"`+hdr.Get(HeaderRequestID)+`","reward":0.9}`)
	require.Equal(t, 200, code)
	assert.Contains(t, string(body), `"learned":false`)
	assert.Len(t, spy.seen(), 1, "feedback is logged, not counted a second time")
}

func TestShutdownFlushesDeferredUpdates(t *testing.T) {
	gw, spy := startSpyGateway(t, "feedback: {ttl: 1h}", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.srv.Serve(ctx, ln) }()
	for range 2 {
		code, _, body := post(t, "http://"+ln.Addr().String()+"/v1/chat/completions", fmt.Sprintf(msgBody, "auto", ""))
		require.Equal(t, 200, code, "%s", body)
	}
	assert.Empty(t, spy.seen(), "waiting for feedback")
	cancel()
	require.NoError(t, <-served)
	assert.Len(t, spy.seen(), 2, "the drain credits both deferred updates their immediate reward")
	assert.Zero(t, gw.srv.Core().PendingStats().Waiting)
}
