// Package gateway is routelab's live router: an OpenAI-compatible HTTP
// server (gin) that routes every chat completion through the decision core
// (package route) and logs the decision for learning.
//
// Build it from a validated config and a policy registry, then serve:
//
//	cfg, err := gateway.LoadConfig("")            // "" = embedded development config
//	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: logWriter})
//	err = srv.Serve(ctx, listener)                // graceful drain when ctx ends
//
// One request takes this path:
//
//	connection cap (LimitListener; idle keep-alive connections make room) → TLS/mTLS (tls.go, optional) →
//	header/body read timeouts → in-flight cap → auth (hashed API keys, or
//	JWTs verified against a JWKS file) → scope → per-key and per-tenant token
//	buckets (429 with the bucket's real wait as Retry-After) →
//	decode (provider.ParseRequest) → features (tenant, task, prompt tokens,
//	time, tags) → core.Decide (rule filter: context window, breakers,
//	health checks, profile conditions, tenant allowlist; then the policy, or
//	Forced for an explicit model, which passes the same rules) → act: the
//	chosen model, retried within a retry budget with jittered backoff, then
//	its fallback group in order while the failure matches the group's
//	status conditions, each fallback target checked by core.Check →
//	core.Complete (reward, policy update or its deferral, profiles, log
//	sink, pending store) → metrics.
//
// The gateway applies no rule and computes no reward itself: route.Core
// does. Its arm type holds only transport (upstream, breaker, fallback
// chain, metrics) and reads prices from the core's catalogue arm. A forced
// model outside the tenant's allowlist is answered 404 model_not_found;
// any other rule rejection 503 no_model_available, naming the rule.
// A cascade model (decision.Cascade, cascade.go) is an arm whose upstream
// is the cascade itself: it asks its agree members at once through their
// own breakers and limits, compares their answers with
// decision.AnswerKey, escalates on disagreement and prices the answer at
// what was asked (provider.Result.Cost).
// Breakers count only the model's own failures: client errors, clients
// leaving and local queue limits are excluded.
//
// No client can hold resources by being slow or large: bodies are read
// incrementally under server.read_timeout; every write to the client
// (each stream chunk) has a deadline, so a client that stops reading fails
// the attempt and frees its provider slot; tags, metadata, task and
// tenant names are bounded (limits:) before the pending store keeps them.
// The tenant is the key's (or the key's name) unless the key is trusted
// with tenant_header, so rotating X-Routelab-Tenant escapes no limit.
//
// Every attempt is recorded in decision.Outcome.Attempts. Streams are relayed
// chunk by chunk as Server-Sent Events; once a chunk has reached the client
// nothing is retried, and a later failure ends the stream with an OpenAI
// error event. Delayed ratings arrive at POST /v1/feedback: the handler
// validates the body, calls core.Feedback (which computes the reward and,
// when the request's update was deferred, lets the deciding policy learn),
// writes the feedback log row and answers. A routed answer of unknown
// quality waits for its feedback (or the feedback ttl, or the shutdown
// drain, which flushes the core's pending store) so that every request
// updates the policy exactly once.
//
// A shadow policy runs beside the serving one and learns importance-weighted
// from every request (shadow.learn: weighted|frozen|matched); the gateway
// keeps a running off-policy estimate of shadow versus incumbent (IPS with a
// paired normal interval, refused on low overlap) and promotes the shadow
// only when the interval's lower bound beats the incumbent by a margin over
// a minimum sample. The promoted policy serves with an exploration floor
// (promotion.floor) so the reverse estimate stays unbiased; rollback is one
// call, and automatic when live reward drops below a guard. The admin API
// takes the CLI's policy spec strings or a policy artifact upload
// (artifactadmin.go).
//
// Policies load from policy artifacts (package artifact: `policy: {file:
// PATH}`, `shadow: {file: PATH}`, or uploaded to POST /admin/policy and
// /admin/shadow), checked against the config's encoder, reward and models.
// With `checkpoint.dir` the serving and shadow policies are checkpointed as
// artifacts periodically, after every swap and on drain (checkpoint.go),
// and restored from there at start-up; an unusable checkpoint is a warning
// and a fresh policy, never a failed start. Every promotion, rollback and
// admin swap is appended to checkpoint.dir/history.jsonl
// (artifact.HistoryRecord: who, when, estimate with interval, forced,
// from/to with state checksums) before it is made.
//
// Security: request ids are 128 random bits plus a MAC binding them to the
// bearer credential (reqid.go; a JWT's subject), so feedback is accepted
// only from the key that made the request, under that key's rate limit.
// Every route needs a scope (authz.go: chat, feedback, admin-read,
// admin-write); a valid credential without it gets 403 insufficient_scope
// naming the scope. Keys without an admin token are refused at start-up.
// JWT bearer tokens (jwt.go, github.com/golang-jwt/jwt/v5) are checked
// against a JWKS file reloaded on change: RS256/ES256, issuer, audience,
// expiry; the tenant and scopes come from claims. TLS and mTLS (tls.go)
// reload the certificate, key and client CAs on change and on SIGHUP.
// Requests refused before any attempt (limits, rules, bad input) are
// counted and, for an authenticated caller, logged as rows with status
// refused (refused.go).
// Admin changes and refusals go to the audit log, requests (optionally) to
// the access log (privacy.go). Tags and metadata pass through package mask
// and the metadata allowlist before reaching the decision log sink, and
// optionally prompts before they leave for an upstream. Upstream failures
// reach clients as the model and a generic cause; details go to the server
// log. During the drain new connections get 503 (drain.go).
//
// Transports: REST, the WebSocket at GET /v1/ws (ws.go) and the gRPC API
// (package gateway/grpcapi, attached with Server.Attach, driving
// Server.Chat) are front ends of one request path, Server.chat
// (chat.go): it does everything above and hands the answer to a
// ChatSink (sink.go: REST's JSON/SSE httpSink, wsSink, the gRPC sinks).
// A client leaving mid-stream ends the request the same way on each.
//
// Endpoints: POST /v1/chat/completions, GET /v1/ws, GET /v1/models, POST /v1/feedback,
// GET /admin/models, GET|POST /admin/policy, POST /admin/shadow,
// GET /admin/shadow/status, POST /admin/promote, POST /admin/rollback,
// /healthz, /readyz, /metrics. docs/config.md is the configuration reference.
//
// With `state: {redis: ...}` replicas share learned statistics, rate-limit
// buckets, the policy record (swaps, promotions) and pending feedback
// through package sharedstate (shared.go; docs/scale-out.md); without
// Redis they keep serving on local state and /readyz says "degraded".
package gateway
