package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
)

// wsConfig is a production gateway on simulated models: "fast" answers
// at once, "slow" streams 400 tokens at 50/s (8 s), for clients that
// leave mid-stream. extra is appended (rate limits, server: block).
func wsConfig(extra string) string { return wsConfigWith("", extra) }

// wsConfigWith adds models (YAML list items) to wsConfig's.
func wsConfigWith(models, extra string) string {
	return fmt.Sprintf(`
mode: production
auth:
  keys:
    - {name: team-a, tenant: team-a, sha256: %s}
  admin_token_sha256: %s
policy: {name: thompson, params: {seed: "3"}}
providers:
  - {name: sim, type: sim, seed: 11, health_check: false}
models:
  - {id: fast, provider: sim, sim: {ttft_ms: 1, tokens_per_sec: 100000, output_tokens: 12, quality: {"": 0.7}}}
  - {id: slow, provider: sim, sim: {ttft_ms: 1, tokens_per_sec: 50, output_tokens: 400, quality: {"": 0.7}}}
%s
breaker: {consecutive_failures: 1, min_requests: 1000, open_timeout: 1h}
retries: {max: 0}
log: {dir: ""}
%s`, HashKey("sk-team-a"), HashKey("admin-secret"), models, extra)
}

func wsURL(gw *testGW) string { return "ws" + strings.TrimPrefix(gw.url, "http") + "/v1/ws" }

func dialWS(t *testing.T, gw *testGW, key string, hdr ...string) *websocket.Conn {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	c, res, err := websocket.Dial(context.Background(), wsURL(gw), &websocket.DialOptions{HTTPHeader: h})
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// wsAnswer is one request's answer: its chunks and its last message
// (done or error).
type wsAnswer struct {
	chunks  []map[string]any
	content string
	done    *wsDone
	err     *wsErrorMsg
}

type wsErrorMsg struct {
	Error      apiErrorBody `json:"-"`
	RequestID  string       `json:"request_id"`
	Status     int          `json:"status"`
	RetryAfter int64        `json:"retry_after"`
	Code       string       `json:"-"`
}

// readAnswer reads messages up to the one that ends an answer.
func readAnswer(t *testing.T, c *websocket.Conn) wsAnswer {
	t.Helper()
	var a wsAnswer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		typ, b, err := c.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, websocket.MessageText, typ)
		var probe struct {
			Object string          `json:"object"`
			Error  json.RawMessage `json:"error"`
		}
		require.NoError(t, json.Unmarshal(b, &probe), "message %s", b)
		switch {
		case probe.Object == "routelab.done":
			a.done = &wsDone{}
			require.NoError(t, json.Unmarshal(b, a.done))
			return a
		case probe.Error != nil:
			a.err = &wsErrorMsg{}
			require.NoError(t, json.Unmarshal(b, a.err))
			a.err.Error = decodeAPIError(t, b)
			if a.err.Error.Error.Code != nil {
				a.err.Code = *a.err.Error.Error.Code
			}
			return a
		case probe.Object == "chat.completion.chunk":
			var ch struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal(b, &ch))
			for _, c := range ch.Choices {
				a.content += c.Delta.Content
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal(b, &m))
			a.chunks = append(a.chunks, m)
		default:
			t.Fatalf("unexpected message %s", b)
		}
	}
}

func sendWS(t *testing.T, c *websocket.Conn, body string) {
	t.Helper()
	require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(body)))
}

const wsReq = `{"model":%q,"max_tokens":12,"messages":[{"role":"user","content":"tell me about routing"}]%s}`

// TestWebSocketChatEndToEnd streams requests over one connection with a
// real coder/websocket client: the deltas concatenate to the answer REST
// gives for the same request on an identically seeded gateway, every
// chunk names the catalogue model, the decision is logged with the model
// and status, requests on one connection are answered in order, and the
// transport is counted.
func TestWebSocketChatEndToEnd(t *testing.T) {
	gw := startGateway(t, wsConfig(""))
	twin := startGateway(t, wsConfig(""))
	c := dialWS(t, gw, "sk-team-a", HeaderTask, "chat")

	sendWS(t, c, fmt.Sprintf(wsReq, "fast", ""))
	a := readAnswer(t, c)
	require.Nil(t, a.err, "error %+v", a.err)
	require.NotNil(t, a.done)
	require.NotEmpty(t, a.chunks)
	for _, ch := range a.chunks {
		assert.Equal(t, "fast", ch["model"], "every chunk names the catalogue id")
	}
	code, hdr, body := post(t, twin.url+"/v1/chat/completions", fmt.Sprintf(wsReq, "fast", ""), "Authorization", "Bearer sk-team-a", HeaderTask, "chat")
	require.Equal(t, 200, code, "%s", body)
	var rest struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(body, &rest))
	require.Len(t, rest.Choices, 1)
	assert.Equal(t, rest.Choices[0].Message.Content, a.content, "the streamed deltas concatenate to REST's answer")
	assert.Equal(t, 12, a.done.Usage.CompletionTokens)
	assert.Equal(t, rest.Usage.CompletionTokens, a.done.Usage.CompletionTokens)
	assert.Equal(t, a.done.Usage.PromptTokens+a.done.Usage.CompletionTokens, a.done.Usage.TotalTokens)
	assert.Equal(t, "fast", a.done.Model)
	assert.Equal(t, "thompson", a.done.Policy)
	assert.Equal(t, hdr.Get(HeaderPolicy), a.done.Policy)

	rec, ok := gw.sink.get(a.done.RequestID)
	require.True(t, ok, "request %s logged", a.done.RequestID)
	assert.Equal(t, "fast", rec.Outcome.Arm)
	assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
	assert.Equal(t, decision.ReasonForced, rec.Decision.Reason)
	assert.Equal(t, "team-a", rec.Request.Features.Tenant)
	assert.Equal(t, "chat", rec.Request.Features.Task, "the upgrade's X-Routelab-Task holds for the connection")
	assert.Equal(t, 12, rec.Outcome.TokensOut)

	// Two more requests sent at once (one routed, with usage): answered in
	// order on the same connection.
	sendWS(t, c, fmt.Sprintf(wsReq, "auto", `,"stream_options":{"include_usage":true}`))
	sendWS(t, c, fmt.Sprintf(wsReq, "fast", `,"stream":false`))
	routed := readAnswer(t, c)
	require.NotNil(t, routed.done, "error %+v", routed.err)
	last := routed.chunks[len(routed.chunks)-1]
	assert.NotNil(t, last["usage"], "include_usage sends the usage chunk, as on SSE")
	rec, ok = gw.sink.get(routed.done.RequestID)
	require.True(t, ok)
	assert.Equal(t, decision.ReasonPolicy, rec.Decision.Reason)
	assert.Equal(t, routed.done.Model, rec.Outcome.Arm)
	third := readAnswer(t, c)
	require.NotNil(t, third.done, "stream:false still streams over WebSocket")
	assert.NotEqual(t, routed.done.RequestID, third.done.RequestID)

	assert.Equal(t, 3.0, testutil.ToFloat64(gw.srv.m.fronts.requests[transportWebSocket]))
	assert.Zero(t, testutil.ToFloat64(gw.srv.m.fronts.requests[transportHTTP]), "the gateway got no REST request")
	// Metrics are counted once the answer has gone out.
	assert.Eventually(t, func() bool {
		return testutil.ToFloat64(gw.srv.m.requests.WithLabelValues("fast", "200"))+testutil.ToFloat64(gw.srv.m.requests.WithLabelValues("slow", "200")) == 3
	}, 5*time.Second, 2*time.Millisecond, "three answers counted as 200s")
	assert.Equal(t, 1.0, testutil.ToFloat64(gw.srv.m.fronts.wsConns))

	// The done message's request id takes feedback, from the same key only.
	code, _, body = post(t, gw.url+"/v1/feedback", `{"request_id":"`+a.done.RequestID+`","quality":0.9}`, "Authorization", "Bearer sk-team-a")
	assert.Equal(t, 200, code, "%s", body)
	gw.fb.mu.Lock()
	assert.Contains(t, gw.fb.ids, a.done.RequestID)
	gw.fb.mu.Unlock()
}

func TestWebSocketAuth(t *testing.T) {
	gw := startGateway(t, wsConfig(""))
	for _, tc := range []struct {
		name, key, code string
	}{
		{"no key", "", "missing_api_key"},
		{"unknown key", "sk-nope", "invalid_api_key"},
		{"admin token is not an API key", "admin-secret", "invalid_api_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.key != "" {
				h.Set("Authorization", "Bearer "+tc.key)
			}
			c, res, err := websocket.Dial(context.Background(), wsURL(gw), &websocket.DialOptions{HTTPHeader: h})
			require.Error(t, err)
			require.Nil(t, c)
			require.NotNil(t, res)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
			assert.Equal(t, `Bearer realm="routelab"`, res.Header.Get("WWW-Authenticate"))
		})
	}
	// A key in the query string is not a credential.
	_, res, err := websocket.Dial(context.Background(), wsURL(gw)+"?api_key=sk-team-a", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
}

// TestWebSocketLimits: the key's rate limit answers 429 with retry_after
// per message, a bad request is a 400 message and the connection goes
// on, and a message above max_body_bytes closes the connection (1009).
func TestWebSocketLimits(t *testing.T) {
	gw := startGateway(t, wsConfig(`
max_body_bytes: 2000
rate_limits: {per_key: {rps: 0.01, burst: 2}}
`))
	c := dialWS(t, gw, "sk-team-a")
	sendWS(t, c, `{"model":"fast","messages":[]}`)
	bad := readAnswer(t, c)
	require.NotNil(t, bad.err)
	assert.Equal(t, 400, bad.err.Status)
	assert.Equal(t, "invalid_request", bad.err.Code)
	assert.NotEmpty(t, bad.err.RequestID)

	sendWS(t, c, fmt.Sprintf(wsReq, "fast", ""))
	ok := readAnswer(t, c)
	require.NotNil(t, ok.done, "error %+v", ok.err)

	sendWS(t, c, fmt.Sprintf(wsReq, "fast", ""))
	limited := readAnswer(t, c)
	require.NotNil(t, limited.err, "the third request exceeds burst 2")
	assert.Equal(t, 429, limited.err.Status)
	assert.Equal(t, "rate_limit_exceeded", limited.err.Code)
	assert.GreaterOrEqual(t, limited.err.RetryAfter, int64(60), "0.01 rps: the next token is ~100 s away")
	assert.Equal(t, 1.0, testutil.ToFloat64(gw.srv.m.rateLimited.WithLabelValues("key")))
	// The answered request was logged before its done message; the two
	// refused ones (bad JSON, rate limit) are refusal rows, as on REST.
	assert.Equal(t, 1, gw.sink.len()-gw.sink.count(decision.StatusRefused), "one answered request")
	assert.Equal(t, 2, gw.sink.count(decision.StatusRefused), "the refused requests are logged as refused")

	big := fmt.Sprintf(wsReq, "fast", `,"metadata":{"pad":"`+strings.Repeat("x", 3000)+`"}`)
	sendWS(t, c, big)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	require.Error(t, err)
	assert.Equal(t, websocket.StatusMessageTooBig, websocket.CloseStatus(err), "err %v", err)
}

// TestWebSocketInFlightCap: server.max_inflight counts WebSocket requests,
// not connections.
func TestWebSocketInFlightCap(t *testing.T) {
	gw := startGateway(t, wsConfig("server: {max_inflight: 1}"))
	a := dialWS(t, gw, "sk-team-a")
	b := dialWS(t, gw, "sk-team-a")
	sendWS(t, a, fmt.Sprintf(`{"model":"slow","messages":[{"role":"user","content":"hi"}]}`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := a.Read(ctx) // the first chunk: a's request is in flight
	require.NoError(t, err)
	sendWS(t, b, fmt.Sprintf(wsReq, "fast", ""))
	busy := readAnswer(t, b)
	require.NotNil(t, busy.err)
	assert.Equal(t, 503, busy.err.Status)
	assert.Equal(t, "server_busy", busy.err.Code)
	assert.Equal(t, int64(1), busy.err.RetryAfter)
	require.NoError(t, a.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool { return gw.srv.inflight.Load() == 0 }, 10*time.Second, 5*time.Millisecond, "a's slot is released when it leaves")
	sendWS(t, b, fmt.Sprintf(wsReq, "fast", ""))
	assert.NotNil(t, readAnswer(t, b).done)
}

// TestWebSocketClientLeavesMidStream: a client closing the connection
// mid-stream ends the request as a REST client aborting a stream does:
// logged with the same status, not counted against the model (its
// breaker opens on one failure and stays closed), the provider slot and
// the in-flight slot freed.
func TestWebSocketClientLeavesMidStream(t *testing.T) {
	statuses := map[string]decision.Status{}
	for _, via := range []string{"rest", "websocket"} {
		t.Run(via, func(t *testing.T) {
			gw := startGateway(t, wsConfig(""))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			body := `{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`
			if via == "rest" {
				rctx, rcancel := context.WithCancel(ctx)
				req, err := http.NewRequestWithContext(rctx, http.MethodPost, gw.url+"/v1/chat/completions", strings.NewReader(body))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer sk-team-a")
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				buf := make([]byte, 64)
				_, err = res.Body.Read(buf) // the first chunk has arrived
				require.NoError(t, err)
				rcancel()
				_ = res.Body.Close()
			} else {
				c := dialWS(t, gw, "sk-team-a")
				sendWS(t, c, body)
				_, _, err := c.Read(ctx)
				require.NoError(t, err)
				require.NoError(t, c.CloseNow())
			}
			recs := gw.sink.all(t, 1)
			require.Len(t, recs, 1)
			rec := recs[0]
			assert.Equal(t, "slow", rec.Outcome.Arm)
			assert.True(t, rec.Outcome.Status.Failed())
			assert.Less(t, rec.Outcome.Latency, 7*time.Second, "the 8 s stream ended when the client left")
			statuses[via] = rec.Outcome.Status
			br := gw.srv.arms["slow"].breaker
			assert.Equal(t, "closed", br.State().String(), "a client leaving is not the model's failure")
			assert.Zero(t, br.Counts().TotalFailures)
			require.Eventually(t, func() bool { return gw.srv.inflight.Load() == 0 }, 5*time.Second, 5*time.Millisecond)
		})
	}
	assert.Equal(t, statuses["rest"], statuses["websocket"], "logged as a REST client abort is")
}

// TestWebSocketDrain: Serve's drain closes idle WebSocket connections
// with 1001 and lets an answer in progress end first.
func TestWebSocketDrain(t *testing.T) {
	srv, url := serveGateway(t, wsConfig("shutdown_timeout: 20s"), nil, nil)
	gw := &testGW{srv: srv, url: url}
	idle := dialWS(t, gw, "sk-team-a")
	busy := dialWS(t, gw, "sk-team-a")
	sendWS(t, busy, `{"model":"slow","max_tokens":40,"messages":[{"role":"user","content":"hi"}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := busy.Read(ctx)
	require.NoError(t, err)
	drained := make(chan error, 1)
	go func() { drained <- srv.ws.drain(ctx) }()
	_, _, err = idle.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "idle connection: %v", err)
	a := readAnswer(t, busy)
	require.NotNil(t, a.done, "the answer in progress ends normally: %+v", a.err)
	_, _, err = busy.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "then it closes: %v", err)
	require.NoError(t, <-drained)
	var ce websocket.CloseError
	assert.True(t, errors.As(err, &ce))
}

// TestWebSocketFallback: a WebSocket request takes the REST path's
// fallbacks: the forced model fails before streaming, its fallback group
// answers, the done message names the model that answered and the log
// row records both attempts.
func TestWebSocketFallback(t *testing.T) {
	gw := startGateway(t, wsConfigWith(`  - {id: broken, provider: sim, sim: {ttft_ms: 1, error_rate: 1, quality: {"": 0.7}}}`,
		`fallbacks: [{name: g, models: [broken, fast], when: ["status in (5xx)"]}]`))
	c := dialWS(t, gw, "sk-team-a")
	sendWS(t, c, fmt.Sprintf(wsReq, "broken", ""))
	a := readAnswer(t, c)
	require.NotNil(t, a.done, "error %+v", a.err)
	assert.Equal(t, "fast", a.done.Model)
	assert.Len(t, strings.Fields(a.content), 12)
	rec, ok := gw.sink.get(a.done.RequestID)
	require.True(t, ok)
	assert.Equal(t, "broken", rec.Request.Forced)
	assert.Equal(t, "fast", rec.Outcome.Arm)
	require.Len(t, rec.Outcome.Attempts, 2)
	assert.Equal(t, "broken", rec.Outcome.Attempts[0].Arm)
	assert.Equal(t, decision.StatusError, rec.Outcome.Attempts[0].Status)
	assert.Equal(t, "fast", rec.Outcome.Attempts[1].Arm)
	assert.Equal(t, 1, rec.Outcome.Attempts[1].Fallback)
}

// TestWebSocketStalledReaderReleasesItsProviderSlot: a client that stops
// reading its stream is disconnected at server.write_timeout, which ends
// the attempt and frees the provider's only slot, as REST's write
// deadline does.
func TestWebSocketStalledReaderReleasesItsProviderSlot(t *testing.T) {
	cfg := wsConfigWith(`  - {id: huge, provider: one, sim: {ttft_ms: 1, tokens_per_sec: 1000000, output_tokens: 40000, quality: {"": 0.7}}}`,
		"server: {write_timeout: 300ms}")
	// "huge" has a provider of its own, with one slot.
	cfg = strings.Replace(cfg, "models:", "  - {name: one, type: sim, seed: 5, max_concurrency: 1, queue_timeout: 100ms, health_check: false}\nmodels:", 1)
	srv, url := serveGateway(t, cfg, nil, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	gw := &testGW{srv: srv, url: url}
	// A client with a small receive buffer that never reads.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}}
	h := http.Header{"Authorization": {"Bearer sk-team-a"}}
	stalled, _, err := websocket.Dial(context.Background(), wsURL(gw), &websocket.DialOptions{HTTPHeader: h, HTTPClient: &http.Client{Transport: tr}})
	require.NoError(t, err)
	defer stalled.CloseNow()
	sendWS(t, stalled, `{"model":"huge","messages":[{"role":"user","content":"go on"}]}`)
	// The stalled stream's attempt ends at write_timeout and frees the
	// only slot: another client's request to the same provider is answered.
	other := dialWS(t, gw, "sk-team-a")
	require.Eventually(t, func() bool {
		sendWS(t, other, `{"model":"huge","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
		return readAnswer(t, other).done != nil
	}, 20*time.Second, 50*time.Millisecond, "the provider slot was freed")
	// The write that timed out cut the connection (no close frame could be
	// written to a client that does not read).
	assert.Error(t, stalledErr(stalled), "the stalled client was disconnected")
}

// stalledErr reads what the stalled client finally gets: its buffered
// chunks, then the connection's end.
func stalledErr(c *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}
