package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
	"github.com/routelab/routelab/gateway/provider"
)

// Metadata keys of the gRPC API (lowercase, as gRPC sends them).
const (
	MDRequestID  = "x-routelab-request-id"
	MDPolicy     = "x-routelab-policy"
	MDModel      = "x-routelab-model"
	MDRetryAfter = "retry-after"
	// Request metadata read when the Routing message leaves them empty
	// (the X-Routelab-* request headers' names).
	MDTenant  = "x-routelab-tenant"
	MDTask    = "x-routelab-task"
	MDTags    = "x-routelab-tags"
	MDTimeout = "x-routelab-timeout"
	// ErrorDomain is the ErrorInfo domain of the API's errors.
	ErrorDomain = "routelab"
)

// Opts configures New. Gateway is required, and Listen or Listener.
type Opts struct {
	Gateway *gateway.Server
	// Listen is the TCP address to listen on (the config's grpc.listen).
	Listen string
	// Listener, when set, is used instead of Listen (tests).
	Listener net.Listener
	Logger   *slog.Logger
}

// Service is the gRPC API: a gateway.Service to Attach to the gateway,
// whose Serve runs and drains it.
type Service struct {
	routelabv1.UnimplementedChatServer
	gw  *gateway.Server
	gs  *grpc.Server
	ln  net.Listener
	log *slog.Logger
	lim gateway.FrontLimits
	// health is grpc.health.v1.Health: SERVING until Shutdown.
	health *health.Server
}

var _ gateway.Service = (*Service)(nil)

// New listens and builds the gRPC server with the Chat service, the
// standard health service (grpc.health.v1) and server reflection. Request messages above the gateway's max_body_bytes
// are refused by gRPC itself (ResourceExhausted); server.max_connections
// caps the listener's open connections (its own allowance, beside the
// HTTP listener's).
func New(o Opts) (*Service, error) {
	if o.Gateway == nil {
		return nil, errors.New("grpcapi: no gateway")
	}
	ln := o.Listener
	if ln == nil {
		if o.Listen == "" {
			return nil, errors.New("grpcapi: no listen address (grpc.listen)")
		}
		var err error
		if ln, err = net.Listen("tcp", o.Listen); err != nil {
			return nil, fmt.Errorf("grpc.listen %s: %w", o.Listen, err)
		}
	}
	lim := o.Gateway.FrontLimits()
	s := &Service{gw: o.Gateway, ln: gateway.LimitListener(ln, lim.MaxConnections), log: o.Logger, lim: lim}
	if s.log == nil {
		s.log = slog.Default()
	}
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(int(min(s.lim.MaxBodyBytes, 1<<30)))}
	if lim.IdleTimeout > 0 {
		// A connection without a call for server.idle_timeout is sent a
		// GOAWAY (the client reconnects when it next calls), so idle
		// clients do not hold the listener's places.
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: lim.IdleTimeout}))
	}
	s.gs = grpc.NewServer(opts...)
	routelabv1.RegisterChatServer(s.gs, s)
	s.health = health.NewServer() // "" and routelab.v1.Chat: SERVING until the drain
	healthpb.RegisterHealthServer(s.gs, s.health)
	reflection.Register(s.gs)
	return s, nil
}

// OpenConnections is the number of client connections open on the
// listener (server.max_connections bounds it).
func (s *Service) OpenConnections() int {
	if l, ok := s.ln.(*gateway.ConnLimiter); ok {
		return l.Open()
	}
	return 0
}

// Addr is the address the service listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Name implements gateway.Service.
func (s *Service) Name() string { return "grpc " + s.ln.Addr().String() }

// Serve implements gateway.Service: it serves until Shutdown or Stop.
func (s *Service) Serve() error {
	if err := s.gs.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// Shutdown implements gateway.Service: new calls are refused, calls in
// flight finish until ctx ends, then they are cut.
func (s *Service) Shutdown(ctx context.Context) error {
	s.health.Shutdown() // probes see NOT_SERVING while calls drain
	done := make(chan struct{})
	go func() { s.gs.GracefulStop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.gs.Stop()
		<-done
		return fmt.Errorf("calls cut at the shutdown timeout: %w", ctx.Err())
	}
}

// Stop implements gateway.Service.
func (s *Service) Stop() { s.gs.Stop() }

// Complete implements routelabv1.ChatServer.
func (s *Service) Complete(ctx context.Context, req *routelabv1.ChatRequest) (*routelabv1.ChatResponse, error) {
	call, err := chatCall(ctx, req, false)
	if err != nil {
		return nil, err
	}
	call.Path = "/routelab.v1.Chat/Complete"
	out := &unarySink{}
	s.gw.Chat(ctx, call, out)
	_ = grpc.SetHeader(ctx, out.md)
	if out.err != nil {
		return nil, statusOf(out.err, out.id, out.wait)
	}
	resp, err := decodeCompletion(out.body)
	if err != nil {
		s.log.Warn("grpc: undecodable completion", "request_id", out.id, "err", err)
		return nil, status.Errorf(codes.Internal, "request %s: the answer could not be converted: %v", out.id, err)
	}
	resp.RequestId, resp.Policy, resp.Model = out.id, out.policy, out.model
	return resp, nil
}

// Stream implements routelabv1.ChatServer.
func (s *Service) Stream(req *routelabv1.ChatRequest, st grpc.ServerStreamingServer[routelabv1.ChatChunk]) error {
	ctx := st.Context()
	call, err := chatCall(ctx, req, true)
	if err != nil {
		return err
	}
	call.Path = "/routelab.v1.Chat/Stream"
	// The chat path runs beside the sends, so that a client that stops
	// reading costs it no more than server.write_timeout per message (as
	// REST's write deadline): a blocked Send cannot be interrupted, but the
	// attempt ends and frees its provider slot.
	out := newStreamSink(s.lim.WriteTimeout)
	go func() {
		defer close(out.ops)
		s.gw.Chat(ctx, call, out)
	}()
	out.pump(st)
	if out.err != nil {
		if !out.sent {
			_ = st.SetHeader(out.md)
		}
		return statusOf(out.err, out.id, out.wait)
	}
	return out.sendErr
}

// chatCall turns a request into the gateway's: the credential from the
// authorization metadata, the routing hints and the OpenAI JSON body.
func chatCall(ctx context.Context, req *routelabv1.ChatRequest, stream bool) (*gateway.ChatCall, error) {
	cred, remote := "", ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			cred = strings.TrimSpace(v[7:])
			break
		}
	}
	body, err := encodeRequest(req, stream)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "request: %v", err)
	}
	call := &gateway.ChatCall{Credential: cred, Body: body, Stream: stream, Remote: remote}
	r := req.GetRouting()
	for i, t := range r.GetTags() {
		if strings.Contains(t, ",") {
			return nil, status.Errorf(codes.InvalidArgument, "routing.tags[%d]: %q contains a comma", i, clip(t))
		}
	}
	// The Routing fields, else the X-Routelab-* names as metadata.
	call.Hints = gateway.Hints{
		Tenant:  firstOf(r.GetTenant(), md, MDTenant),
		Task:    firstOf(r.GetTask(), md, MDTask),
		Tags:    firstOf(strings.Join(r.GetTags(), ","), md, MDTags),
		Timeout: firstOf(r.GetTimeout(), md, MDTimeout),
	}
	return call, nil
}

// firstOf is v, else the first value of metadata key k.
func firstOf(v string, md metadata.MD, k string) string {
	if v != "" {
		return v
	}
	if vs := md.Get(k); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// wireRequest is the chat-completions JSON the gateway parses.
type wireRequest struct {
	Model         string            `json:"model"`
	Messages      []wireMessage     `json:"messages"`
	MaxTokens     *int32            `json:"max_tokens,omitempty"`
	Temperature   *float64          `json:"temperature,omitempty"`
	TopP          *float64          `json:"top_p,omitempty"`
	Stop          []string          `json:"stop,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Stream        bool              `json:"stream,omitempty"`
	StreamOptions *streamOptions    `json:"stream_options,omitempty"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

func encodeRequest(req *routelabv1.ChatRequest, stream bool) ([]byte, error) {
	w := wireRequest{Model: req.GetModel(), Messages: make([]wireMessage, 0, len(req.GetMessages())),
		MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, Stop: req.GetStop(), Metadata: req.GetMetadata(), Stream: stream}
	for _, m := range req.GetMessages() {
		w.Messages = append(w.Messages, wireMessage{Role: m.GetRole(), Content: m.GetContent()})
	}
	if stream && req.GetIncludeUsage() {
		w.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	return json.Marshal(w)
}

// wireCompletion is the part of chat.completion and
// chat.completion.chunk objects the API passes on.
type wireCompletion struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Created int64  `json:"created"`
	Choices []struct {
		Index   int32 `json:"index"`
		Message *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *provider.Usage `json:"usage"`
}

func usageOf(u *provider.Usage) *routelabv1.Usage {
	if u == nil {
		return nil
	}
	return &routelabv1.Usage{PromptTokens: int32(u.PromptTokens), CompletionTokens: int32(u.CompletionTokens), TotalTokens: int32(u.TotalTokens)}
}

func decodeCompletion(b []byte) (*routelabv1.ChatResponse, error) {
	var w wireCompletion
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	r := &routelabv1.ChatResponse{Id: w.ID, Model: w.Model, Created: w.Created, Usage: usageOf(w.Usage)}
	for _, c := range w.Choices {
		ch := &routelabv1.Choice{Index: c.Index, FinishReason: deref(c.FinishReason)}
		if c.Message != nil {
			ch.Message = &routelabv1.Message{Role: c.Message.Role, Content: deref(c.Message.Content)}
		}
		r.Choices = append(r.Choices, ch)
	}
	return r, nil
}

func decodeChunk(b []byte) (*routelabv1.ChatChunk, error) {
	var w wireCompletion
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	r := &routelabv1.ChatChunk{Id: w.ID, Model: w.Model, Created: w.Created, Usage: usageOf(w.Usage)}
	for _, c := range w.Choices {
		ch := &routelabv1.ChunkChoice{Index: c.Index, FinishReason: deref(c.FinishReason)}
		if c.Delta != nil {
			ch.Delta = &routelabv1.Delta{Role: c.Delta.Role, Content: deref(c.Delta.Content)}
		}
		r.Choices = append(r.Choices, ch)
	}
	return r, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Code maps the gateway's HTTP status to a gRPC code.
func Code(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusInternalServerError:
		return codes.Internal
	}
	return codes.Unknown
}

// statusOf is the gRPC status of a gateway error: the mapped code, the
// message, an ErrorInfo (reason = the REST error code) and, with a wait,
// a RetryInfo.
func statusOf(e *gateway.APIError, id string, wait time.Duration) error {
	st := status.New(Code(e.Status), e.Message)
	info := &errdetails.ErrorInfo{Domain: ErrorDomain, Reason: "unknown", Metadata: map[string]string{
		"type": e.Type, "http_status": strconv.Itoa(e.Status)}}
	if e.Code != nil {
		info.Reason = *e.Code
	}
	if id != "" {
		info.Metadata["request_id"] = id
	}
	if e.Param != nil {
		info.Metadata["param"] = *e.Param
	}
	if e.Status == http.StatusTooManyRequests {
		// As REST's Retry-After: whole seconds, at least 1.
		wait = max(time.Second, (wait+time.Second-1)/time.Second*time.Second)
	}
	var err error
	if wait > 0 {
		st, err = st.WithDetails(info, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	} else {
		st, err = st.WithDetails(info)
	}
	if err != nil {
		return status.Error(Code(e.Status), e.Message) // details always marshal
	}
	return st.Err()
}
