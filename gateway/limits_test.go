package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// serveGateway runs the gateway with Serve (the production http.Server,
// listener cap included) on a loopback listener; wrap, optional, wraps the
// listener first.
func serveGateway(t *testing.T, yaml string, providers map[string]provider.Provider, wrap func(net.Listener) net.Listener) (*Server, string) {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: newRecSink(), Providers: providers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return srv, "http://" + ln.Addr().String()
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Finding 2: clients declaring a 1 MiB body and trickling it were never cut
// and each reserved the declared length up front.
func TestSlowBodiesAreCutWithinTheReadTimeout(t *testing.T) {
	const n, readTimeout = 200, 300 * time.Millisecond
	_, url := serveGateway(t, fmt.Sprintf(`
server: {read_timeout: %v}
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, readTimeout), nil, nil)
	addr := strings.TrimPrefix(url, "http://")
	base := heapInUse()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		conns = append(conns, c)
		_, err = io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{\"model\":")
		require.NoError(t, err)
	}
	// Every connection is now waiting on its body.
	time.Sleep(readTimeout / 3)
	grown := int64(heapInUse()) - int64(base)
	t.Logf("heap growth with %d slow 1 MiB bodies: %.1f MiB", n, float64(grown)/(1<<20))
	assert.Less(t, grown, int64(n*(128<<10)), "the declared body length must not be reserved up front")

	var cut atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(start.Add(readTimeout + 3*time.Second))
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				res.Body.Close()
				// 408 at read_timeout, or 503 server_busy at once when
				// more than max_inflight are waiting on their bodies.
				if res.StatusCode == http.StatusRequestTimeout || res.StatusCode == http.StatusServiceUnavailable {
					cut.Add(1)
				}
				return
			}
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				cut.Add(1) // closed by the server
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(n), cut.Load(), "every slow body is cut (408, 503 or closed) by read_timeout")
	assert.Less(t, time.Since(start), readTimeout+3*time.Second)
}

// endless streams 16 KiB chunks until emit fails or ctx ends, and answers
// Complete at once.
type endless struct {
	streams atomic.Int64
	ended   chan error
}

func (e *endless) Name() string { return "endless" }

func (e *endless) Complete(_ context.Context, c *provider.Call) (provider.Result, error) {
	return provider.Result{Body: []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)}, nil
}

func (e *endless) Stream(ctx context.Context, _ *provider.Call, emit func([]byte) error) (provider.Result, error) {
	e.streams.Add(1)
	chunk := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"` +
		strings.Repeat("a", 16<<10) + `"},"finish_reason":null}]}`)
	for {
		if err := ctx.Err(); err != nil {
			e.ended <- err
			return provider.Result{}, err
		}
		if err := emit(chunk); err != nil {
			e.ended <- err
			return provider.Result{}, err
		}
	}
}

// smallBuffers shrinks the send buffer of accepted connections, so that a
// client that does not read blocks the server's writes quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// Finding 2: a stream whose client never reads held its provider slot
// (the blocked write never failed), so other requests got 503.
func TestStalledStreamReleasesItsProviderSlot(t *testing.T) {
	up := &endless{ended: make(chan error, 4)}
	_, url := serveGateway(t, `
server: {write_timeout: 300ms}
request_timeout: 60s
providers: [{name: p, type: openai, base_url: http://127.0.0.1:1, max_concurrency: 1, queue_timeout: 100ms, health_check: false}]
models: [{id: m, provider: p}]
log: {dir: ""}
`, map[string]provider.Provider{"p": up}, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	d := net.Dialer{Control: nil}
	c, err := d.Dial("tcp", strings.TrimPrefix(url, "http://"))
	require.NoError(t, err)
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	body := fmt.Sprintf(msgBody, "m", `,"stream":true`)
	_, err = fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	require.NoError(t, err)
	// The client never reads: the stream's writes block, then fail at
	// write_timeout, which ends the attempt and frees the only slot.
	select {
	case err := <-up.ended:
		assert.ErrorIs(t, err, provider.ErrClientGone)
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled stream still holds the provider slot after 5s (write_timeout 300ms)")
	}
	for i := range 5 {
		code, _, b := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "m", ""))
		assert.Equal(t, 200, code, "request %d: %s", i, b)
	}
}

func TestInFlightCap(t *testing.T) {
	up := newFakeOpenAI(t)
	up.set("slow")
	up.delay = 500 * time.Millisecond
	gw := startGateway(t, fmt.Sprintf(`
server: {max_inflight: 1}
providers: [{name: p, type: openai, base_url: %s, health_check: false}]
models: [{id: m, provider: p}]
log: {dir: ""}
`, up.url()))
	url := gw.url + "/v1/chat/completions"
	first := make(chan int, 1)
	go func() {
		code, _, _ := post(t, url, fmt.Sprintf(msgBody, "m", ""))
		first <- code
	}()
	require.Eventually(t, func() bool { return up.calls.Load() == 1 }, 2*time.Second, time.Millisecond)
	code, hdr, b := post(t, url, fmt.Sprintf(msgBody, "m", ""))
	assert.Equal(t, 503, code)
	assert.Equal(t, "server_busy", *decodeAPIError(t, b).Error.Code)
	assert.Equal(t, "1", hdr.Get("Retry-After"))
	assert.Equal(t, 200, <-first)
	code, _, _ = post(t, url, fmt.Sprintf(msgBody, "m", ""))
	assert.Equal(t, 200, code, "the slot is free again")
}

func TestLimitListenerCapsOpenConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := LimitListener(raw, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", raw.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	a := <-accepted
	<-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted with a cap of 2")
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, a.Close())
	_ = a.Close() // a second Close must not free a second place
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("closing a connection did not let a waiting one in")
	}
	select {
	case <-accepted:
		t.Fatal("closing one connection twice let two in")
	case <-time.After(200 * time.Millisecond):
	}
}

// At the connection cap, a new connection takes the place of the one idle
// longest between keep-alive requests; a connection with a request in
// flight is never closed for it, and with every place busy the newcomer
// waits until one turns idle.
func TestLimitListenerReclaimsIdleConnections(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := LimitListener(raw, 2).(*ConnLimiter)
	lim.minIdle = 100 * time.Millisecond
	release := make(chan struct{})
	hs := &http.Server{ConnState: lim.ConnState, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = hs.Serve(lim) }()
	defer hs.Close()
	url := "http://" + raw.Addr().String()
	get := func(path string) (string, error) {
		// One client per call: its own keep-alive connection, left idle.
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{}}
		res, err := c.Get(url + path)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	slow := make(chan string, 1)
	go func() { b, err := get("/slow"); slow <- fmt.Sprint(b, err) }()
	require.Eventually(t, func() bool { return lim.Open() == 1 }, 2*time.Second, 5*time.Millisecond)
	b, err := get("/") // the second place, then idle
	require.NoError(t, err)
	assert.Equal(t, "ok", b)
	assert.Equal(t, 2, lim.Open())

	t0 := time.Now()
	b, err = get("/") // at the cap: takes the idle connection's place, once idle for minIdle
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(t0), 50*time.Millisecond, "reclaimed a connection idle for less than minIdle")
	assert.Equal(t, "ok", b)
	assert.Equal(t, uint64(1), lim.Reclaimed())
	assert.Equal(t, 2, lim.Open())

	// The slow request's connection is busy and the last one idle: one
	// more reclaims the idle one again, never the busy one.
	b, err = get("/")
	require.NoError(t, err)
	assert.Equal(t, "ok", b)
	assert.Equal(t, uint64(2), lim.Reclaimed())
	select {
	case r := <-slow:
		t.Fatalf("the busy connection was closed: %s", r)
	default:
	}

	// Both places busy: a newcomer waits, and gets in once the slow
	// request ends and its connection turns idle.
	go func() { b, err := get("/slow"); slow <- fmt.Sprint(b, err) }()
	require.Eventually(t, func() bool { return lim.Reclaimed() == 3 }, 2*time.Second, 5*time.Millisecond)
	waiting := make(chan string, 1)
	go func() { b, err := get("/"); waiting <- fmt.Sprint(b, err) }()
	select {
	case r := <-waiting:
		t.Fatalf("a third connection was served with both places busy: %s", r)
	case <-time.After(200 * time.Millisecond):
	}
	release <- struct{}{}
	assert.Equal(t, "ok<nil>", <-slow)
	assert.Equal(t, "ok<nil>", <-waiting)
	close(release)
	assert.Equal(t, "ok<nil>", <-slow)
}

// While a connection waits for a place, the gateway answers with
// "Connection: close": the client's next request goes on a new connection
// and the waiting one gets the place, before any idle connection would be
// reclaimed (1 s) and without closing a connection under a client.
func TestCrowdedAnswersCloseTheirConnection(t *testing.T) {
	srv, url := serveGateway(t, `
server: {max_connections: 1}
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, nil, nil)
	a := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	postOn := func(c *http.Client) (*http.Response, error) {
		res, err := c.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(fmt.Sprintf(msgBody, "s", "")))
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return res, err
	}
	res, err := postOn(a)
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.False(t, res.Close, "not crowded: the connection stays open")

	b := make(chan error, 1)
	go func() {
		res, err := postOn(&http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second})
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("status %d", res.StatusCode)
		}
		b <- err
	}()
	time.Sleep(100 * time.Millisecond) // b's connection is accepted and waits for the place
	res, err = postOn(a)
	require.NoError(t, err)
	assert.True(t, res.Close, "crowded: the answer closes its connection")
	require.NoError(t, <-b)
	assert.Zero(t, srv.connLimiter.Load().Reclaimed(), "b got the place when a's answer closed its connection, not by the idle reclaim")
}

// A connection whose client has sent bytes the server has not read yet
// (the next request) is not idle, whatever ConnState last said; the peek
// does not wait for the Read the server has pending on it.
func TestHasPendingInput(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer raw.Close()
	client, err := net.Dial("tcp", raw.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := raw.Accept()
	require.NoError(t, err)
	defer server.Close()
	assert.False(t, hasPendingInput(server))
	_, err = client.Write([]byte("POST"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasPendingInput(server) }, 2*time.Second, time.Millisecond)
	buf := make([]byte, 4)
	_, err = io.ReadFull(server, buf)
	require.NoError(t, err)
	assert.False(t, hasPendingInput(server), "read")
	read := make(chan error, 1)
	go func() { _, err := server.Read(buf); read <- err }()
	time.Sleep(20 * time.Millisecond) // the Read is pending
	done := make(chan bool, 1)
	go func() { done <- hasPendingInput(server) }()
	select {
	case p := <-done:
		assert.False(t, p)
	case <-time.After(2 * time.Second):
		t.Fatal("hasPendingInput waited for the pending Read")
	}
	_, _ = client.Write([]byte("x"))
	require.NoError(t, <-read)
	assert.False(t, hasPendingInput(&limitConn{Conn: fakeConn{}}), "a conn without a socket")
}

type fakeConn struct{ net.Conn }

func TestOversizedHeadersGet431(t *testing.T) {
	_, url := serveGateway(t, `
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, nil, nil)
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(fmt.Sprintf(msgBody, "s", "")))
	require.NoError(t, err)
	req.Header.Set(HeaderTags, strings.Repeat("x", 900<<10))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode, "server.max_header_bytes (64 KiB)")
}

// Finding 3: one 900 KB X-Routelab-Tags header was kept (as tags) by the
// pending feedback store for 15 minutes.
func TestTagsAndMetadataAreBounded(t *testing.T) {
	gw := startGateway(t, fastSim) // httptest: no header size limit, so the tag limits answer
	url := gw.url + "/v1/chat/completions"
	body := fmt.Sprintf(msgBody, "auto", "")
	huge := strings.Repeat("tag-aaaaaaaaaaaaa,", 900<<10/18)
	base := heapInUse()
	for range 20 {
		code, _, b := post(t, url, body, HeaderTags, huge)
		require.Equal(t, 400, code)
		e := decodeAPIError(t, b)
		require.NotNil(t, e.Error.Code)
		assert.Equal(t, "tags_too_large", *e.Error.Code)
		assert.Contains(t, e.Error.Message, "limits.max_tags_bytes")
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("heap growth after 20 requests with a 900 KB tags header: %.2f MiB", float64(grown)/(1<<20))
	assert.Less(t, grown, int64(4<<20), "nothing of the huge header is retained")

	for _, tc := range []struct {
		name, body, hdr, code, limit string
	}{
		{"too many tags", body, strings.Repeat("a,", 40), "too_many_tags", "limits.max_tags"},
		{"tag too long", body, strings.Repeat("a", 300), "tag_too_long", "limits.max_tag_bytes"},
		{"metadata too long", fmt.Sprintf(msgBody, "auto", `,"metadata":{"k":"`+strings.Repeat("v", 300)+`"}`), "", "tag_too_long", "limits.max_tag_bytes"},
		{"task too long", fmt.Sprintf(msgBody, "auto", `,"metadata":{"task":"`+strings.Repeat("v", 300)+`"}`), "", "task_too_long", "limits.max_tag_bytes"},
		{"tags and metadata together", fmt.Sprintf(msgBody, "auto", `,"metadata":{"k":"`+strings.Repeat("v", 100)+`"}`),
			strings.TrimSuffix(strings.Repeat(strings.Repeat("t", 100)+",", 10), ","), "tags_too_large", "limits.max_tags_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, b := post(t, url, tc.body, HeaderTags, tc.hdr)
			require.Equal(t, 400, code, "%s", b)
			e := decodeAPIError(t, b)
			require.NotNil(t, e.Error.Code)
			assert.Equal(t, tc.code, *e.Error.Code)
			assert.Contains(t, e.Error.Message, tc.limit)
		})
	}
	code, hdr, _ := post(t, url, body, HeaderTags, strings.TrimSuffix(strings.Repeat("t,", 16), ","))
	require.Equal(t, 200, code, "16 tags are within the default limit")
	rec, ok := gw.sink.get(hdr.Get(HeaderRequestID))
	require.True(t, ok)
	assert.Len(t, rec.Request.Features.Tags, 16)
}

// Finding 8: a key without a tenant chose its tenant with the header and
// so escaped the per-tenant limit (20/20 instead of 1/20).
func TestTenantHeaderCannotEscapeTenantLimits(t *testing.T) {
	gw := startGateway(t, fmt.Sprintf(`
mode: production
auth:
  keys:
    - {name: plain, sha256: %s}
    - {name: owned, tenant: t1, sha256: %s}
    - {name: front, tenant_header: true, sha256: %s}
  admin_token_sha256: %s
rate_limits: {per_tenant: {rps: 0.001, burst: 1}}
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: s, provider: sim, sim: {ttft_ms: 1, output_tokens: 2}}]
log: {dir: ""}
`, HashKey("k-plain"), HashKey("k-owned"), HashKey("k-front"), HashKey("adm")))
	url := gw.url + "/v1/chat/completions"
	body := fmt.Sprintf(msgBody, "s", "")
	rotate := func(key string) (ok int, tenants map[string]bool) {
		tenants = map[string]bool{}
		for i := range 20 {
			code, hdr, _ := post(t, url, body, "Authorization", "Bearer "+key, HeaderTenant, "rot-"+key+"-"+strconv.Itoa(i))
			if code == 200 {
				ok++
				rec, found := gw.sink.get(hdr.Get(HeaderRequestID))
				require.True(t, found)
				tenants[rec.Request.Features.Tenant] = true
			} else {
				require.Equal(t, 429, code)
			}
		}
		return ok, tenants
	}
	ok, tenants := rotate("k-plain")
	assert.Equal(t, 1, ok, "a key without a tenant is its own tenant: rotating the header does not help")
	assert.Equal(t, map[string]bool{"plain": true}, tenants)
	ok, tenants = rotate("k-owned")
	assert.Equal(t, 1, ok)
	assert.Equal(t, map[string]bool{"t1": true}, tenants, "a key's tenant wins over the header")
	ok, tenants = rotate("k-front")
	assert.Equal(t, 20, ok, "a key trusted with tenant_header names each request's tenant")
	assert.Len(t, tenants, 20)
}

// Finding 8: the upstream's Retry-After was dropped for a constant 1.
func TestUpstreamRetryAfterIsPropagated(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"slow down"}}`)
	}))
	defer up.Close()
	gw := startGateway(t, fmt.Sprintf(`
providers: [{name: p, type: openai, base_url: %s, health_check: false}]
models: [{id: m, provider: p}]
retries: {max: 0}
log: {dir: ""}
`, up.URL+"/v1"))
	for _, extra := range []string{"", `,"stream":true`} {
		code, hdr, b := post(t, gw.url+"/v1/chat/completions", fmt.Sprintf(msgBody, "m", extra))
		require.Equal(t, 429, code, "%s", b)
		assert.Equal(t, "7", hdr.Get("Retry-After"), "stream=%v", extra != "")
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", 90 * time.Second: "90"} {
		assert.Equal(t, want, retryAfter(d), "%v", d)
	}
}

func TestServerAndLimitsConfig(t *testing.T) {
	const base = "providers: [{name: p, type: sim}]\nmodels: [{id: m, provider: p, sim: {}}]\n"
	c, err := ParseConfig([]byte(base))
	require.NoError(t, err)
	assert.Equal(t, ServerConfig{ReadHeaderTimeout: defReadHeaderTimeout, ReadTimeout: defReadTimeout, WriteTimeout: defWriteTimeout,
		IdleTimeout: defIdleTimeout, MaxHeaderBytes: defMaxHeaderBytes, MaxConnections: defMaxConnections, MaxInFlight: defMaxInFlight}, c.Server)
	assert.Equal(t, RequestLimits{MaxTags: defMaxTags, MaxTagBytes: defMaxTagBytes, MaxTagsBytes: defMaxTagsBytes, MaxArtifactBytes: DefaultMaxArtifactBytes}, c.Limits)
	c, err = ParseConfig([]byte(base + "server: {max_connections: -1, max_inflight: -1}\n"))
	require.NoError(t, err, "-1 is unlimited")
	assert.Equal(t, -1, c.Server.MaxConnections)
	for _, tc := range []struct{ yaml, want string }{
		{"server: {read_timeout: -1s}", "server.read_timeout"},
		{"server: {write_timeout: -1s}", "server.write_timeout"},
		{"server: {max_header_bytes: -1}", "server.max_header_bytes"},
		{"server: {max_connections: -2}", "server.max_connections"},
		{"server: {max_inflight: -2}", "server.max_inflight"},
		{"limits: {max_tags: -1}", "limits.max_tags"},
		{"limits: {max_tag_bytes: -1}", "limits.max_tag_bytes"},
		{"limits: {max_tags_bytes: -1}", "limits.max_tags_bytes"},
		{"server: {bogus: 1}", "bogus"},
	} {
		_, err := ParseConfig([]byte(base + tc.yaml + "\n"))
		require.Error(t, err, tc.yaml)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "7": 7 * time.Second, " 2 ": 2 * time.Second, "-3": 0, "soon": 0, "999999999": 24 * time.Hour,
		now.Add(30 * time.Second).Format(http.TimeFormat): 30 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		assert.Equal(t, want, provider.ParseRetryAfter(v, now), "%q", v)
	}
}

// Finding 2 as reported: many clients open a stream and never read; the
// normal requests that follow must not get 503 once write_timeout passed.
func TestStalledStreamsDoNotStarveOthers(t *testing.T) {
	up := &endless{ended: make(chan error, 64)}
	srv, url := serveGateway(t, `
server: {write_timeout: 300ms}
providers: [{name: p, type: openai, base_url: http://127.0.0.1:1, max_concurrency: 4, queue_timeout: 5s, health_check: false}]
models: [{id: m, provider: p}]
log: {dir: ""}
`, map[string]provider.Provider{"p": up}, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	const stalled = 12
	body := fmt.Sprintf(msgBody, "m", `,"stream":true`)
	for range stalled {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		require.NoError(t, err)
		defer c.Close()
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		_, err = fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return up.streams.Load() == stalled }, 10*time.Second, 10*time.Millisecond,
		"every stalled stream got a slot in turn")
	require.Eventually(t, func() bool { return srv.inflight.Load() == 0 }, 10*time.Second, 10*time.Millisecond,
		"every stalled stream ended")
	ok := 0
	for range 20 {
		if code, _, _ := post(t, url+"/v1/chat/completions", fmt.Sprintf(msgBody, "m", "")); code == 200 {
			ok++
		}
	}
	assert.Equal(t, 20, ok)
}
