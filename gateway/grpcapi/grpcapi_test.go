package grpcapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi"
	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
	"github.com/routelab/routelab/policy"
)

// recSink keeps a copy of every decision the gateway logs.
type recSink struct {
	mu   sync.Mutex
	recs map[string]decision.Record
}

func (s *recSink) Log(rec *decision.Record) {
	c := *rec
	c.Outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
	c.Request.Features.Tags = append([]string(nil), rec.Request.Features.Tags...) // the masking sink reuses its tag buffer
	s.mu.Lock()
	s.recs[rec.Request.ID] = c
	s.mu.Unlock()
}

func (s *recSink) get(t *testing.T, id string) decision.Record {
	t.Helper()
	var r decision.Record
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var ok bool
		r, ok = s.recs[id]
		return ok
	}, 5*time.Second, 2*time.Millisecond, "request %s logged", id)
	return r
}

func (s *recSink) all() []decision.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []decision.Record
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out
}

func hash(k string) string { return gateway.HashKey(k) }

// config: a production gateway on simulated models. "fast" answers at
// once with 12 tokens (max_tokens 12), "slow" streams 400 tokens at 50/s,
// "huge" (its provider has one slot) streams 20000 tokens at once; all
// have a context window of 2000 tokens. sk-limited may send one
// request per 100 s.
func config(extra string) string {
	return fmt.Sprintf(`
mode: production
auth:
  keys:
    - {name: team-a, tenant: team-a, sha256: %s}
    - {name: limited, tenant: team-b, sha256: %s, rate_limit: {rps: 0.01, burst: 1}}
  admin_token_sha256: %s
policy: {name: thompson, params: {seed: "3"}}
providers:
  - {name: sim, type: sim, seed: 11, health_check: false}
  - {name: one, type: sim, seed: 5, max_concurrency: 1, queue_timeout: 100ms, health_check: false}
models:
  - {id: fast, provider: sim, context_window: 2000, sim: {ttft_ms: 1, tokens_per_sec: 100000, output_tokens: 12, quality: {"": 0.7}}}
  - {id: slow, provider: sim, context_window: 2000, sim: {ttft_ms: 1, tokens_per_sec: 50, output_tokens: 400, quality: {"": 0.7}}}
  - {id: huge, provider: one, context_window: 2000, sim: {ttft_ms: 1, tokens_per_sec: 1000000, output_tokens: 20000, quality: {"": 0.7}}}
breaker: {consecutive_failures: 1, min_requests: 1000, open_timeout: 1h}
retries: {max: 0}
log: {dir: ""}
%s`, hash("sk-team-a"), hash("sk-limited"), hash("admin-secret"), extra)
}

type testGW struct {
	srv  *gateway.Server
	svc  *grpcapi.Service
	sink *recSink
	conn *grpc.ClientConn
	chat routelabv1.ChatClient
	http string
	addr string // gRPC
	// access holds the access log (when the config enables it).
	access *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start serves a gateway with the gRPC API attached, both on loopback,
// through gateway.Server.Serve (which drains both at the end), and dials
// it with a real grpc-go client.
func start(t *testing.T) *testGW { return startWith(t, "") }

func startWith(t *testing.T, extra string) *testGW {
	t.Helper()
	cfg, err := gateway.ParseConfig([]byte(config(extra)))
	require.NoError(t, err)
	sink := &recSink{recs: map[string]decision.Record{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	access := &lockedBuffer{}
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: sink, Logger: log, AccessLog: access})
	require.NoError(t, err)
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	svc, err := grpcapi.New(grpcapi.Opts{Gateway: srv, Listener: gln, Logger: log})
	require.NoError(t, err)
	srv.Attach(svc)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, hln) }()
	conn, err := grpc.NewClient(svc.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return &testGW{srv: srv, svc: svc, sink: sink, conn: conn, chat: routelabv1.NewChatClient(conn), http: "http://" + hln.Addr().String(),
		addr: svc.Addr().String(), access: access}
}

func withKey(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
}

func request(model string) *routelabv1.ChatRequest {
	n := int32(12)
	return &routelabv1.ChatRequest{Model: model, MaxTokens: &n,
		Messages: []*routelabv1.Message{{Role: "user", Content: "tell me about routing"}}}
}

// TestCompleteAndStream: the unary and the streaming method answer the
// same request identically on identically seeded gateways (the deltas
// concatenate to the unary content), name the model, policy and request
// id in the message and the header metadata, and are logged with the
// model and status.
func TestCompleteAndStream(t *testing.T) {
	a, b := start(t), start(t)
	var hdr metadata.MD
	req := request("fast")
	req.Routing = &routelabv1.Routing{Task: "chat", Tags: []string{"ab", "c=d"}}
	res, err := a.chat.Complete(withKey("sk-team-a"), req, grpc.Header(&hdr))
	require.NoError(t, err)
	require.Len(t, res.Choices, 1)
	content := res.Choices[0].GetMessage().GetContent()
	assert.Len(t, strings.Fields(content), 12)
	assert.Equal(t, "assistant", res.Choices[0].GetMessage().GetRole())
	assert.Equal(t, "stop", res.Choices[0].FinishReason)
	assert.Equal(t, "fast", res.Model)
	assert.Equal(t, "thompson", res.Policy)
	assert.Equal(t, int32(12), res.GetUsage().GetCompletionTokens())
	assert.Equal(t, []string{res.RequestId}, hdr.Get(grpcapi.MDRequestID))
	assert.Equal(t, []string{"fast"}, hdr.Get(grpcapi.MDModel))
	assert.Equal(t, []string{"thompson"}, hdr.Get(grpcapi.MDPolicy))
	rec := a.sink.get(t, res.RequestId)
	assert.Equal(t, "fast", rec.Outcome.Arm)
	assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
	assert.Equal(t, "team-a", rec.Request.Features.Tenant)
	assert.Equal(t, "chat", rec.Request.Features.Task)
	assert.Equal(t, []string{"ab", "c=d"}, rec.Request.Features.Tags)

	req.IncludeUsage = true
	st, err := b.chat.Stream(withKey("sk-team-a"), req)
	require.NoError(t, err)
	var (
		deltas string
		chunks []*routelabv1.ChatChunk
	)
	for {
		c, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		chunks = append(chunks, c)
		for _, ch := range c.Choices {
			deltas += ch.GetDelta().GetContent()
		}
	}
	require.GreaterOrEqual(t, len(chunks), 3)
	assert.Equal(t, content, deltas, "the streamed deltas concatenate to the unary answer")
	usage, last := chunks[len(chunks)-2], chunks[len(chunks)-1]
	assert.Empty(t, usage.Choices, "include_usage: a usage chunk before the end")
	assert.Equal(t, int32(12), usage.GetUsage().GetCompletionTokens())
	assert.True(t, last.Done)
	assert.Equal(t, "fast", last.Model)
	assert.Equal(t, "thompson", last.Policy)
	assert.Equal(t, int32(12), last.GetUsage().GetCompletionTokens())
	for _, c := range chunks[:len(chunks)-1] {
		assert.Equal(t, "fast", c.Model, "every chunk names the catalogue id")
		assert.False(t, c.Done)
	}
	h, err := st.Header()
	require.NoError(t, err)
	assert.Equal(t, []string{last.RequestId}, h.Get(grpcapi.MDRequestID))
	rec = b.sink.get(t, last.RequestId)
	assert.Equal(t, "fast", rec.Outcome.Arm)
	assert.Equal(t, decision.StatusOK, rec.Outcome.Status)
	assert.Positive(t, rec.Outcome.TTFT)

	// A routed request takes the policy's path; without Routing, the
	// X-Routelab-* names as metadata are the hints.
	mctx := metadata.AppendToOutgoingContext(withKey("sk-team-a"), grpcapi.MDTask, "math", grpcapi.MDTags, "x=1,y")
	res, err = a.chat.Complete(mctx, request("auto"))
	require.NoError(t, err)
	rec = a.sink.get(t, res.RequestId)
	assert.Equal(t, decision.ReasonPolicy, rec.Decision.Reason)
	assert.Equal(t, res.Model, rec.Outcome.Arm)
	assert.Equal(t, "math", rec.Request.Features.Task)
	assert.Equal(t, []string{"x=1", "y"}, rec.Request.Features.Tags)
}

// TestReflection: reflection lists and describes the services; the
// standard health service answers SERVING.
func TestReflection(t *testing.T) {
	gw := start(t)
	rc, err := reflectionpb.NewServerReflectionClient(gw.conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	require.NoError(t, rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	res, err := rc.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	assert.Contains(t, names, "routelab.v1.Chat")
	assert.Contains(t, names, "grpc.reflection.v1.ServerReflection")
	assert.Contains(t, names, "grpc.health.v1.Health")

	require.NoError(t, rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "routelab.v1.Chat"}}))
	res, err = rc.Recv()
	require.NoError(t, err)
	assert.NotEmpty(t, res.GetFileDescriptorResponse().GetFileDescriptorProto(), "the service's descriptor is served")
	require.NoError(t, rc.CloseSend())

	h, err := healthpb.NewHealthClient(gw.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, h.Status)
}

// errorInfo returns the status's code and ErrorInfo detail.
func errorInfo(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo, *errdetails.RetryInfo) {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "a gRPC status: %v", err)
	var (
		info  *errdetails.ErrorInfo
		retry *errdetails.RetryInfo
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	require.NotNil(t, info, "an ErrorInfo detail in %v", st.Details())
	assert.Equal(t, grpcapi.ErrorDomain, info.Domain)
	return st.Code(), info, retry
}

// TestErrors: authentication failures and the gateway's errors arrive as
// mapped gRPC statuses with the REST error code, on both methods.
func TestErrors(t *testing.T) {
	gw := start(t)
	long := request("auto")
	long.Messages[0].Content = strings.Repeat("word ", 3000) // ~3750 tokens > every context window
	empty := request("fast")
	empty.Messages = nil
	slow := request("slow")
	slow.MaxTokens = nil
	slow.Routing = &routelabv1.Routing{Timeout: "100ms"}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		req    *routelabv1.ChatRequest
		code   codes.Code
		reason string
		http   string
	}{
		{"no credential", context.Background(), request("fast"), codes.Unauthenticated, "missing_api_key", "401"},
		{"unknown key", withKey("sk-nope"), request("fast"), codes.Unauthenticated, "invalid_api_key", "401"},
		{"admin token", withKey("admin-secret"), request("fast"), codes.Unauthenticated, "invalid_api_key", "401"},
		{"no messages", withKey("sk-team-a"), empty, codes.InvalidArgument, "invalid_request", "400"},
		{"unknown model", withKey("sk-team-a"), request("gpt-9"), codes.NotFound, "model_not_found", "404"},
		{"no model fits", withKey("sk-team-a"), long, codes.Unavailable, "no_model_available", "503"},
		{"timeout", withKey("sk-team-a"), slow, codes.DeadlineExceeded, "upstream_timeout", "504"},
	} {
		for _, method := range []string{"Complete", "Stream"} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				gw := gw
				if tc.code == codes.DeadlineExceeded {
					gw = start(t) // a timeout opens the model's breaker (consecutive_failures: 1)
				}
				var err error
				if method == "Complete" {
					_, err = gw.chat.Complete(tc.ctx, tc.req)
				} else {
					var st grpc.ServerStreamingClient[routelabv1.ChatChunk]
					st, err = gw.chat.Stream(tc.ctx, tc.req)
					require.NoError(t, err)
					if tc.code == codes.DeadlineExceeded {
						// The slow stream starts, then its deadline cuts it.
						for err == nil {
							_, err = st.Recv()
						}
					} else {
						_, err = st.Recv()
					}
				}
				code, info, _ := errorInfo(t, err)
				assert.Equal(t, tc.code, code, "%v", err)
				assert.Equal(t, tc.reason, info.Reason)
				assert.Equal(t, tc.http, info.Metadata["http_status"])
				assert.True(t, strings.HasPrefix(info.Metadata["request_id"], "rl-"), "request id in %v", info.Metadata)
				if tc.reason == "invalid_request" {
					assert.Equal(t, "messages", info.Metadata["param"])
				}
			})
		}
	}

	t.Run("rate limit", func(t *testing.T) {
		_, err := gw.chat.Complete(withKey("sk-limited"), request("fast"))
		require.NoError(t, err)
		var hdr metadata.MD
		_, err = gw.chat.Complete(withKey("sk-limited"), request("fast"), grpc.Header(&hdr))
		code, info, retry := errorInfo(t, err)
		assert.Equal(t, []string{info.Metadata["request_id"]}, hdr.Get(grpcapi.MDRequestID), "header metadata with the error")
		assert.NotEmpty(t, hdr.Get(grpcapi.MDRetryAfter))
		assert.Equal(t, codes.ResourceExhausted, code)
		assert.Equal(t, "rate_limit_exceeded", info.Reason)
		require.NotNil(t, retry, "a RetryInfo detail")
		assert.GreaterOrEqual(t, retry.RetryDelay.AsDuration(), 60*time.Second, "0.01 rps: ~100 s to the next token")
		st, err := gw.chat.Stream(withKey("sk-limited"), request("fast"))
		require.NoError(t, err)
		_, err = st.Recv()
		code, _, _ = errorInfo(t, err)
		assert.Equal(t, codes.ResourceExhausted, code)
		h, err := st.Header()
		require.NoError(t, err)
		assert.NotEmpty(t, h.Get(grpcapi.MDRetryAfter), "retry-after metadata, as REST's Retry-After")
	})
}

// TestCodeMapping is the whole table, including statuses the live tests
// cannot provoke (the chat path answers no 403).
func TestCodeMapping(t *testing.T) {
	for httpStatus, want := range map[int]codes.Code{
		400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.NotFound,
		408: codes.DeadlineExceeded, 413: codes.InvalidArgument, 429: codes.ResourceExhausted, 500: codes.Internal,
		502: codes.Unavailable, 503: codes.Unavailable, 504: codes.DeadlineExceeded, 418: codes.Unknown,
	} {
		assert.Equal(t, want, grpcapi.Code(httpStatus), "HTTP %d (%s)", httpStatus, http.StatusText(httpStatus))
	}
}

// TestClientCancelsMidStream: cancelling a stream ends the request as a
// REST client leaving does: logged as failed, not counted against the
// model (its breaker opens on one failure), in-flight slot released.
func TestClientCancelsMidStream(t *testing.T) {
	gw := start(t)
	ctx, cancel := context.WithCancel(withKey("sk-team-a"))
	req := request("slow")
	req.MaxTokens = nil
	st, err := gw.chat.Stream(ctx, req)
	require.NoError(t, err)
	_, err = st.Recv()
	require.NoError(t, err)
	cancel()
	var recs []decision.Record
	require.Eventually(t, func() bool { recs = gw.sink.all(); return len(recs) == 1 }, 10*time.Second, 5*time.Millisecond)
	rec := recs[0]
	assert.Equal(t, "slow", rec.Outcome.Arm)
	assert.True(t, rec.Outcome.Status.Failed())
	assert.Less(t, rec.Outcome.Latency, 7*time.Second, "the 8 s stream ended when the client left")
	// The breaker opens on one counted failure: the next request still
	// reaches the model.
	res, err := gw.chat.Complete(withKey("sk-team-a"), request("slow"))
	require.NoError(t, err)
	assert.Equal(t, "slow", res.Model)
}

// TestStalledStreamReleasesItsProviderSlot: a client that stops reading
// a stream costs the chat path at most server.write_timeout per message
// once the HTTP/2 window and the send queue are full: the attempt ends
// as a client leaving (not counted against the model) and frees the
// provider's only slot.
func TestStalledStreamReleasesItsProviderSlot(t *testing.T) {
	gw := startWith(t, "server: {write_timeout: 300ms}")
	// A client whose stream window stays at 64 KiB (no BDP growth) and
	// which never calls Recv.
	conn, err := grpc.NewClient(gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithCancel(withKey("sk-team-a"))
	defer cancel()
	_, err = routelabv1.NewChatClient(conn).Stream(ctx, &routelabv1.ChatRequest{Model: "huge",
		Messages: []*routelabv1.Message{{Role: "user", Content: "go on"}}})
	require.NoError(t, err)
	var recs []decision.Record
	require.Eventually(t, func() bool { recs = gw.sink.all(); return len(recs) == 1 }, 20*time.Second, 10*time.Millisecond,
		"the stalled stream's request ended")
	rec := recs[0]
	assert.Equal(t, "huge", rec.Outcome.Arm)
	assert.True(t, rec.Outcome.Status.Failed())
	// The only slot of the provider is free again, and the model's breaker
	// (open at one counted failure) closed.
	res, err := gw.chat.Complete(withKey("sk-team-a"), request("huge"))
	require.NoError(t, err)
	assert.Equal(t, "huge", res.Model)
}

// TestAccessLog: each gRPC call gets an access log line, as a REST
// request does.
func TestAccessLog(t *testing.T) {
	gw := startWith(t, "access_log: {enabled: true}")
	res, err := gw.chat.Complete(withKey("sk-team-a"), request("fast"))
	require.NoError(t, err)
	_, err = gw.chat.Complete(withKey("sk-nope"), request("fast"))
	require.Error(t, err)
	lines := strings.Split(strings.TrimSpace(gw.access.String()), "\n")
	require.Len(t, lines, 2, "%s", gw.access.String())
	var ok, denied struct {
		ID, Key, Tenant, Method, Path, Model, Remote string
		Status                                       int
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &ok))
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &denied))
	assert.Equal(t, res.RequestId, ok.ID)
	assert.Equal(t, "team-a", ok.Key)
	assert.Equal(t, "team-a", ok.Tenant)
	assert.Equal(t, "GRPC", ok.Method)
	assert.Equal(t, "/routelab.v1.Chat/Complete", ok.Path)
	assert.Equal(t, 200, ok.Status)
	assert.Equal(t, "fast", ok.Model)
	assert.True(t, strings.HasPrefix(ok.Remote, "127.0.0.1:"), ok.Remote)
	assert.Equal(t, "unknown", denied.Key)
	assert.Equal(t, 401, denied.Status)
}

// TestIdleConnectionsFreeTheirPlace: a gRPC connection without a call for
// server.idle_timeout is sent a GOAWAY and closes, so an idle client does
// not hold one of the listener's max_connections places; its next call
// reconnects.
func TestIdleConnectionsFreeTheirPlace(t *testing.T) {
	gw := startWith(t, "server: {max_connections: 1, idle_timeout: 300ms}")
	_, err := gw.chat.Complete(withKey("sk-team-a"), request("fast"))
	require.NoError(t, err)
	assert.Equal(t, 1, gw.svc.OpenConnections())
	require.Eventually(t, func() bool { return gw.svc.OpenConnections() == 0 }, 5*time.Second, 20*time.Millisecond,
		"the idle connection kept its place")

	other, err := grpc.NewClient(gw.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer other.Close()
	ctx, cancel := context.WithTimeout(withKey("sk-team-a"), 5*time.Second)
	defer cancel()
	_, err = routelabv1.NewChatClient(other).Complete(ctx, request("fast"))
	require.NoError(t, err, "a new client gets the freed place")
	require.NoError(t, other.Close())
	require.Eventually(t, func() bool { return gw.svc.OpenConnections() == 0 }, 5*time.Second, 20*time.Millisecond)
	_, err = gw.chat.Complete(withKey("sk-team-a"), request("fast"))
	require.NoError(t, err, "the first client reconnects")
}
