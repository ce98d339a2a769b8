package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// ChatCall is one chat completion arriving through a front end other than
// the gateway's own HTTP server (the gRPC API, package grpcapi).
// Server.Chat runs it through the same path as POST /v1/chat/completions.
type ChatCall struct {
	// Credential is the bearer token (what follows "Bearer " in an
	// Authorization header); it authenticates the call and owns its
	// request id, as on REST.
	Credential string
	// Body is the OpenAI chat-completions request JSON.
	Body []byte
	// Hints are the X-Routelab-* routing hints.
	Hints Hints
	// Stream answers as a stream (ChatSink.Start, Chunk, End) whatever
	// Body's "stream" member says.
	Stream bool
	// Path and Remote describe the call in the access log: the method
	// ("/routelab.v1.Chat/Stream") and the client's address.
	Path, Remote string
}

// Chat answers call through the gateway's one chat path, as REST does:
// the in-flight cap (server.max_inflight), authentication, the key's and
// tenant's rate limits, max_body_bytes, the routing limits, the decision
// core with its rules, fallbacks and retries, decision logging and
// metrics. It returns once the answer has gone to out. ctx ends the call
// as a client leaving ends a REST request: the attempt is not counted
// against the model. A call refused by the in-flight cap gets Fail (503
// server_busy, retry after 1 s) without a request id. Calls are counted
// as transport "grpc" in routelab_chat_requests_total.
func (s *Server) Chat(ctx context.Context, call *ChatCall, out ChatSink) {
	s.chatVia(ctx, transportGRPC, call, out)
}

func (s *Server) chatVia(ctx context.Context, t transport, call *ChatCall, out ChatSink) {
	if s.access != nil {
		al := &accessSink{ChatSink: out, t0: time.Now()}
		defer s.logAccess(ctx, t, call, al)
		out = al
	}
	if aerr := s.admit(); aerr != nil {
		out.Fail(aerr, "", time.Second)
		s.m.requests.WithLabelValues("", codeString(aerr.Status)).Inc()
		s.noteRefusal(aerr, "", nil, nil)
		return
	}
	defer s.leave()
	s.chat(ctx, &chatIn{t0: time.Now(), transport: t, cred: call.Credential, hints: call.Hints,
		body: &givenBody{b: call.Body, max: s.cfg.MaxBodyBytes}, stream: call.Stream}, out)
}

// givenBody is a request body another transport has read.
type givenBody struct {
	b   []byte
	max int64
}

func (g *givenBody) readBody() ([]byte, *APIError) {
	if int64(len(g.b)) > g.max {
		return nil, apiErr(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			fmt.Sprintf("request of %d bytes exceeds the %d byte limit (max_body_bytes)", len(g.b), g.max))
	}
	return g.b, nil
}

// FrontLimits are the limits a front end applies itself.
type FrontLimits struct {
	// MaxBodyBytes is max_body_bytes, for bounding reads.
	MaxBodyBytes int64
	// WriteTimeout is server.write_timeout: how long one answer message
	// may wait for a client that does not read.
	WriteTimeout time.Duration
	// MaxConnections is server.max_connections (-1 = unlimited), for
	// LimitListener: each listener gets its own allowance.
	MaxConnections int
	// IdleTimeout is server.idle_timeout: how long a connection with no
	// request in progress stays open.
	IdleTimeout time.Duration
}

// FrontLimits returns the configured limits for front ends.
func (s *Server) FrontLimits() FrontLimits {
	return FrontLimits{MaxBodyBytes: s.cfg.MaxBodyBytes, WriteTimeout: s.srv.WriteTimeout, MaxConnections: s.srv.MaxConnections,
		IdleTimeout: s.srv.IdleTimeout}
}

// accessSink notes what the access log line of a request needs.
type accessSink struct {
	ChatSink
	t0     time.Time
	id     string
	model  string
	status int
}

func (a *accessSink) RequestID(id string) { a.id = id; a.ChatSink.RequestID(id) }
func (a *accessSink) Fail(e *APIError, model string, wait time.Duration) {
	a.status, a.model = e.Status, model
	a.ChatSink.Fail(e, model, wait)
}
func (a *accessSink) Answer(model string, body []byte) {
	a.status, a.model = http.StatusOK, model
	a.ChatSink.Answer(model, body)
}
func (a *accessSink) Start(model string) error {
	a.status, a.model = http.StatusOK, model
	return a.ChatSink.Start(model)
}

// logAccess writes the access log line of a WebSocket or gRPC request,
// as the REST middleware does for an HTTP request.
func (s *Server) logAccess(ctx context.Context, t transport, call *ChatCall, a *accessSink) {
	key, tenant := s.keys.identifyToken(call.Credential)
	if tenant == "" {
		tenant = clip(call.Hints.Tenant)
	}
	s.access.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("id", a.id), slog.String("key", key), slog.String("tenant", tenant),
		slog.String("method", strings.ToUpper(t.String())), slog.String("path", clip(call.Path)), slog.Int("status", a.status),
		slog.Float64("latency_ms", float64(time.Since(a.t0).Microseconds())/1000), slog.String("model", a.model),
		slog.String("remote", call.Remote))
}

// Service is a front end served beside the HTTP listener (the gRPC API).
// Server.Serve starts it and drains it with the HTTP server, before the
// decision core flushes and the policies are checkpointed.
type Service interface {
	// Name names the service in errors and logs.
	Name() string
	// Serve serves until Shutdown or Stop; it returns nil after them.
	Serve() error
	// Shutdown stops taking calls and waits for those in flight until ctx
	// ends, then cuts them.
	Shutdown(ctx context.Context) error
	// Stop cuts everything at once.
	Stop()
}

// Attach adds a front end that Serve runs; call it before Serve.
func (s *Server) Attach(svc Service) { s.services = append(s.services, svc) }

// startServices starts the attached services; the channel reports the
// first that fails.
func (s *Server) startServices() <-chan error {
	errc := make(chan error, len(s.services))
	for _, svc := range s.services {
		go func() {
			if err := svc.Serve(); err != nil {
				errc <- fmt.Errorf("%s: %w", svc.Name(), err)
			}
		}()
	}
	return errc
}

func (s *Server) stopServices() {
	for _, svc := range s.services {
		svc.Stop()
	}
}

// drainFronts drains the WebSocket connections and the attached services
// until ctx ends; the channel yields their joint error once all are done.
func (s *Server) drainFronts(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		errs := make(chan error, len(s.services)+1)
		go func() { errs <- s.ws.drain(ctx) }()
		for _, svc := range s.services {
			go func() {
				if err := svc.Shutdown(ctx); err != nil {
					errs <- fmt.Errorf("%s: %w", svc.Name(), err)
					return
				}
				errs <- nil
			}()
		}
		var all []error
		for range len(s.services) + 1 {
			all = append(all, <-errs)
		}
		done <- errors.Join(all...)
	}()
	return done
}
