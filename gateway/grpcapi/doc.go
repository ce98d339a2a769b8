// Package grpcapi is routelab's gRPC API: the routelab.v1.Chat service
// (proto/routelab/v1/chat.proto; generated code in routelabv1, rebuilt by
// `make proto`) with a unary Complete and a server-streaming Stream, plus
// the standard health service and server reflection. It is a thin transport: every call goes through
// gateway.Server.Chat, the same path as REST's POST /v1/chat/completions
// (in-flight cap, API key from the `authorization: Bearer <key>`
// metadata, per-key and per-tenant rate limits, max_body_bytes, routing
// through route.Core with its rules, fallbacks and retries, decision
// logging, metrics). A call's context ending (the client cancelling or
// leaving) ends the request as a REST client leaving does.
//
//	svc, err := grpcapi.New(grpcapi.Opts{Gateway: srv, Listen: cfg.GRPC.Listen})
//	srv.Attach(svc)            // srv.Serve runs it and drains it with HTTP
//	err = srv.Serve(ctx, httpListener)
//
// Requests mirror the chat-completions JSON (model, messages, max_tokens,
// temperature, top_p, stop, metadata, include_usage) plus Routing, the
// X-Routelab-Tenant/-Task/-Tags/-Timeout equivalents. Responses carry
// x-routelab-request-id, -policy and -model header metadata and the
// request id and policy in the message. Errors are the REST errors as
// gRPC statuses (Code: 400 InvalidArgument, 401 Unauthenticated, 403
// PermissionDenied, 404 NotFound, 429 ResourceExhausted, 502/503
// Unavailable, 408/504 DeadlineExceeded) with an ErrorInfo detail whose
// reason is the REST error code, and a RetryInfo detail (and retry-after
// metadata) where REST sends Retry-After.
//
// The API is off unless the gateway config sets grpc.listen. It serves
// plaintext gRPC (h2c): put it on loopback or behind a TLS-terminating
// proxy.
package grpcapi
