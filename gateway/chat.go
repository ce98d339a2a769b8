package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/gin-gonic/gin"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/route"
)

// errNotCounted marks attempt failures that say nothing about the model's
// health (the client left, the request was bad): the breaker ignores them.
var errNotCounted = errors.New("not the model's fault")

var jsonContentType = []string{"application/json"}

func codeString(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 429:
		return "429"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// reject answers a request that never reached routing.
func (s *Server) reject(w http.ResponseWriter, e *APIError) {
	writeAPIError(w, e)
	s.m.requests.WithLabelValues("", codeString(e.Status)).Inc()
}

// readBody reads the request body incrementally up to max_body_bytes: the
// declared Content-Length is checked but never preallocated, so a client
// declaring a large body and trickling it reserves nothing it has not
// sent. A body not read within server.read_timeout gets 408. Once the
// body is read the read deadline is disarmed (bodyDeadline armed it).
func (s *Server) readBody(r *http.Request, w http.ResponseWriter) ([]byte, *APIError) {
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, apiErr(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			fmt.Sprintf("request body of %d bytes exceeds the %d byte limit", r.ContentLength, limit))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err == nil && int64(len(body)) > limit {
		return nil, apiErr(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large",
			fmt.Sprintf("request body exceeds the %d byte limit", limit))
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, apiErr(http.StatusRequestTimeout, typeInvalidRequest, "request_timeout",
				fmt.Sprintf("request body not received within server.read_timeout (%v)", s.srv.ReadTimeout))
		}
		return nil, apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_body", "could not read request body: "+err.Error())
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	return body, nil
}

// requestTimeout is request_timeout, shortened by the client's timeout
// hint (X-Routelab-Timeout: a Go duration or seconds), never lengthened.
func (s *Server) requestTimeout(h string) time.Duration {
	t := s.cfg.RequestTimeout
	if h != "" {
		d, err := time.ParseDuration(h)
		if err != nil {
			if sec, err2 := strconv.ParseFloat(h, 64); err2 == nil {
				d, err = time.Duration(sec*float64(time.Second)), nil
			}
		}
		if err == nil && d > 0 && d < t {
			t = d
		}
	}
	return t
}

// handleChat is POST /v1/chat/completions: the REST transport of chat.
func (s *Server) handleChat(c *gin.Context) {
	h := s.getHTTPSink(c.Writer, c.Request)
	defer s.putHTTPSink(h)
	r := c.Request
	h.in = chatIn{t0: time.Now(), transport: transportHTTP, cred: bearer(r), hints: headerHints(r.Header), body: h}
	if cl := s.chat(r.Context(), &h.in, h); cl != nil {
		c.Set(ctxCaller, cl) // for the access log (JWT subjects included)
	}
}

// chatIn is one chat request, whatever transport carried it.
type chatIn struct {
	t0        time.Time
	transport transport
	// cred is the bearer credential: it authenticates the request and
	// owns its id.
	cred  string
	hints Hints
	// body reads the request JSON within max_body_bytes; it is called
	// only once the caller passed its key's rate limit.
	body bodySource
	// stream answers as a stream whatever the body's "stream" says
	// (WebSocket, gRPC Stream).
	stream bool
}

// bodySource is where a request's JSON comes from.
type bodySource interface {
	readBody() ([]byte, *APIError)
}

// chat is the one request path of every transport (REST, WebSocket,
// gRPC): auth, id, scope, the key's rate limit, the body, parse, tenant
// and its rate limit, features, core.Decide, the upstream attempts with
// retries and fallbacks, core.Complete, metrics. The answer goes to out.
// A request refused before any attempt is counted and, for an
// authenticated caller, logged (refused.go). It returns the authenticated
// caller (nil when authentication failed).
func (s *Server) chat(cctx context.Context, in *chatIn, out ChatSink) *caller {
	t0 := in.t0
	cl, aerr := s.keys.authenticateToken(in.cred)
	id := s.nextID(ownerOf(cl, in.cred))
	out.RequestID(id)
	s.m.transport(in.transport)
	reject := func(e *APIError, wait time.Duration, f *decision.Features) {
		s.noteRefusal(e, id, cl, f) // logged before the client hears of it
		out.Fail(e, "", wait)
		s.m.requests.WithLabelValues("", codeString(e.Status)).Inc()
	}
	if aerr != nil {
		cl = nil
		reject(aerr, 0, nil)
		return nil
	}
	if cl.scopes&scopeChat == 0 {
		var hdr http.Header
		if hs, ok := out.(*httpSink); ok {
			hdr = hs.w.Header()
		}
		reject(scopeErr(hdr, scopeChat, in.transport.route()), 0, nil)
		return cl
	}
	if ok, wait := s.takeKey(cctx, cl); !ok {
		s.m.rateLimited.WithLabelValues("key").Inc()
		reject(apiErr(http.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded", "rate limit of this API key exceeded"), wait, nil)
		return cl
	}
	body, aerr := in.body.readBody()
	if aerr != nil {
		reject(aerr, 0, nil)
		return cl
	}
	req, err := provider.ParseRequest(s.maskPrompt(body))
	if err != nil {
		var re *provider.RequestError
		e := apiErr(http.StatusBadRequest, typeInvalidRequest, "invalid_request", err.Error())
		if errors.As(err, &re) {
			e = e.withParam(re.Param)
		}
		reject(e, 0, nil)
		return cl
	}
	tenant, aerr := s.tenantOf(cl, &in.hints, req)
	if aerr != nil {
		reject(aerr, 0, nil)
		return cl
	}
	if ok, wait := s.takeTenant(cctx, tenant); !ok {
		s.m.rateLimited.WithLabelValues("tenant").Inc()
		reject(apiErr(http.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded", "rate limit of tenant "+strconv.Quote(tenant)+" exceeded"), wait,
			&decision.Features{Tenant: tenant, Time: s.now()})
		return cl
	}
	forced := ""
	if !s.aliases[req.Model] {
		if s.arms[req.Model] == nil {
			reject(apiErr(http.StatusNotFound, typeInvalidRequest, "model_not_found",
				fmt.Sprintf("the model %q does not exist; use one of GET /v1/models or %q to route", clip(req.Model), s.cfg.Aliases[0])).withParam("model"), 0,
				&decision.Features{Tenant: tenant, Time: s.now()})
			return cl
		}
		forced = req.Model
	}

	ctx, cancel := context.WithTimeout(cctx, s.requestTimeout(in.hints.Timeout))
	defer cancel()
	if d, ok := out.(interface{ deadline(time.Time) }); ok {
		dl, _ := ctx.Deadline()
		d.deadline(dl)
	}
	rec := s.recs.Get().(*decision.Record)
	defer s.recs.Put(rec)
	rec.Time = time.Time{}
	rec.Request.ID, rec.Request.Forced = id, forced
	if aerr := s.fillFeatures(&rec.Request.Features, &in.hints, req, tenant); aerr != nil {
		reject(aerr, 0, &decision.Features{Tenant: tenant, Time: s.now()})
		return cl
	}
	if err := s.core.Decide(ctx, &rec.Request, &rec.Decision); err != nil {
		reject(s.decideError(err, forced, tenant), 0, &rec.Request.Features)
		return cl
	}
	d := &rec.Decision
	out.Policy(d.Policy)
	chosen := s.arms[d.Arm().ID]
	o := &rec.Outcome
	*o = decision.Outcome{Attempts: o.Attempts[:0]}
	s.budget.deposit(t0)
	s.m.inflight.Inc()

	stream := req.Stream || in.stream
	var ar attemptResult
	if stream {
		ar = s.serveStream(ctx, out, req, rec, chosen, t0)
	} else {
		ar = s.serveComplete(ctx, out, req, rec, chosen)
	}
	final, perr := ar.arm, ar.err

	o.Arm = final.id
	o.Latency = time.Since(t0)
	if perr == nil {
		o.Status = decision.StatusOK
		if !stream {
			o.TTFT = o.Latency
		}
		o.TokensIn, o.TokensOut = ar.res.Usage.PromptTokens, ar.res.Usage.CompletionTokens
		o.Cost = final.cost(&ar.res)
		o.Quality, o.QualityKnown = ar.res.Quality, ar.res.QualityKnown
	} else {
		o.Status = perr.Status
	}
	// The core computes the reward, learns (or, for a routed answer of
	// unknown quality, defers learning until feedback), logs and keeps the
	// decision for feedback.
	if err := s.core.Complete(rec); err != nil {
		s.log.Warn("policy update failed", "request_id", id, "err", err)
	}
	// The answer (or its last bytes) goes out only now, so that a client
	// holding the request id finds its decision logged and ready for
	// feedback.
	ar.finish()
	s.m.inflight.Dec()

	m := s.m
	if ar.code == http.StatusOK {
		final.m.ok.Inc()
	} else {
		m.requests.WithLabelValues(final.id, codeString(ar.code)).Inc()
	}
	if perr == nil {
		final.m.latency.Observe(o.Latency.Seconds())
		if stream {
			m.ttft.WithLabelValues(final.id).Observe(o.TTFT.Seconds())
		}
	}
	chosen.decided(m, d.Policy, d.Reason).Inc()
	m.success.observe(d.Reason, perr == nil)
	m.overhead.Observe((time.Since(t0) - ar.wait).Seconds())
	return cl
}

// take takes a token from l (nil = unlimited) at now. When none is left
// it takes nothing and returns how long until one is.
func take(l *rate.Limiter, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	r := l.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second // burst 0: never; validated against
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return true, 0
	}
	r.CancelAt(now)
	return false, d
}

// retryAfter is a Retry-After value: d rounded up to whole seconds, at
// least 1 (0 or unknown → 1).
func retryAfter(d time.Duration) string {
	sec := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(sec, 1), 10)
}

// decideError maps a failed Decide to the client's answer: a forced model
// outside the tenant's allowlist is not found (as for an unknown model);
// any other rule rejection, or an empty candidate set, means no model is
// available, naming the rule.
func (s *Server) decideError(err error, forced, tenant string) *APIError {
	var re *route.RuleError
	switch {
	case errors.As(err, &re) && re.Rule == (allowlistRule{}).Name():
		return apiErr(http.StatusNotFound, typeInvalidRequest, "model_not_found",
			fmt.Sprintf("the model %q is not available to tenant %q", forced, tenant)).withParam("model")
	case errors.Is(err, route.ErrRuleRejected) || errors.Is(err, route.ErrNoCandidates):
		return apiErr(http.StatusServiceUnavailable, typeUnavailable, "no_model_available", "no model is available for this request: "+err.Error())
	}
	return apiErr(http.StatusInternalServerError, typeServer, "routing_failed", "routing failed: "+err.Error())
}

// attemptResult is what acting on a decision upstream produced.
type attemptResult struct {
	arm  *arm            // the arm that answered, or was tried last
	res  provider.Result // its result
	err  *provider.Error // the final error; nil on success
	wait time.Duration   // time spent waiting on upstreams and backoffs
	// code is the HTTP status the client gets (200 once a stream started)
	// and finish writes the answer, or the stream's end.
	code   int
	finish func()
}

// attemptFn makes one upstream call for arm a.
type attemptFn func(ctx context.Context, a *arm, call *provider.Call) (provider.Result, error)

// run walks the fallback chain of chosen, with same-model retries inside
// the retry budget, recording every attempt in rec.Outcome.Attempts. A
// fallback target is tried only when the decision core's rules (health,
// tenant allowlist, context window, ...) allow it for this request. It
// returns the arm that answered (or was tried last), its result, the final
// error (nil on success) and the time spent waiting on upstreams and
// backoffs; code and finish are left to the caller. started reports
// whether a stream has reached the client, after which nothing can be
// retried.
func (s *Server) run(ctx context.Context, rec *decision.Record, req *provider.Request, chosen *arm, started func() bool, fn attemptFn) attemptResult {
	o := &rec.Outcome
	call := provider.Call{Req: req, ID: rec.Request.ID, Task: rec.Request.Features.Task}
	var (
		last    = chosen
		lastErr *provider.Error
		wait    time.Duration
		tried   int
	)
	for i, a := range chosen.chain {
		if i > 0 {
			if chosen.group == nil || !chosen.group.fallsBackOn(lastErr) {
				break
			}
			if s.core.Check(a.id, &rec.Request.Features) != nil {
				continue
			}
			s.m.fallbacks.WithLabelValues(last.id, a.id).Inc()
		}
		var bo *backoff.ExponentialBackOff
		for try := 0; ; try++ {
			call.Model, call.ModelJSON = a.upstream, a.upstreamJSON
			res, perr, lat := s.attempt(ctx, a, &call, fn)
			wait += lat
			st := decision.StatusOK
			if perr != nil {
				st = perr.Status
			}
			o.Attempts = append(o.Attempts, decision.Attempt{Arm: a.id, Status: st, Latency: lat, Fallback: tried})
			if st == decision.StatusOK {
				a.m.attemptOK.Inc()
			} else {
				s.m.attempts.WithLabelValues(a.id, st.String()).Inc()
			}
			last = a
			if perr == nil {
				return attemptResult{arm: a, res: res, wait: wait}
			}
			lastErr = perr
			if perr.Client || started() || ctx.Err() != nil {
				return attemptResult{arm: a, res: res, err: perr, wait: wait}
			}
			if !perr.Retryable || try >= s.cfg.Retries.Max || !s.budget.take() {
				break
			}
			if bo == nil {
				bo = &backoff.ExponentialBackOff{InitialInterval: s.cfg.Retries.InitialBackoff, RandomizationFactor: s.cfg.Retries.Jitter,
					Multiplier: 2, MaxInterval: s.cfg.Retries.MaxBackoff}
				bo.Reset()
			}
			dl := bo.NextBackOff()
			if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < dl {
				break // no time left to wait and retry; fall back at once
			}
			t := time.NewTimer(dl)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return attemptResult{arm: a, res: res, err: perr, wait: wait + dl}
			}
			wait += dl
			s.m.retries.Inc()
		}
		tried++
	}
	return attemptResult{arm: last, err: lastErr, wait: wait}
}

// attempt makes one call through the breaker and the provider's
// concurrency limit and timeout.
func (s *Server) attempt(ctx context.Context, a *arm, call *provider.Call, fn attemptFn) (provider.Result, *provider.Error, time.Duration) {
	done, err := a.breaker.Allow()
	if err != nil {
		return provider.Result{}, &provider.Error{Status: decision.StatusError, Message: "circuit breaker open for model " + a.id, Err: err}, 0
	}
	t := time.Now()
	if err := a.up.acquire(ctx); err != nil {
		done(errNotCounted)
		pe := &provider.Error{Status: decision.StatusRateLimited, HTTPStatus: 0, Message: "provider " + a.up.name + ": " + err.Error(), Err: err}
		if ctx.Err() != nil {
			pe.Status = decision.StatusTimeout
		}
		return provider.Result{}, pe, time.Since(t)
	}
	// A per-attempt deadline only when it is earlier than the request's.
	actx := ctx
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > a.up.timeout {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, a.up.timeout)
		defer cancel()
	}
	res, err := fn(actx, a, call)
	a.up.release()
	lat := time.Since(t)
	if err == nil {
		done(nil)
		return res, nil, lat
	}
	var pe *provider.Error
	switch {
	case errors.Is(err, provider.ErrClientGone):
		done(errNotCounted)
		return res, &provider.Error{Status: decision.StatusError, Message: "client disconnected", Err: err}, lat
	case errors.As(err, &pe):
	default:
		pe = provider.TransportError(actx, err)
	}
	if pe.Client || errors.Is(ctx.Err(), context.Canceled) {
		done(errNotCounted)
	} else {
		done(pe)
	}
	return res, pe, lat
}

func isBreakerErr(err error) bool {
	return errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests)
}

// failure maps the final error of a request to the client's answer.
func failure(ctx context.Context, pe *provider.Error) *APIError {
	switch {
	case pe.Client:
		code := pe.HTTPStatus
		if code == 0 {
			code = http.StatusBadRequest
		}
		return apiErr(code, typeInvalidRequest, "upstream_rejected_request", "the upstream rejected the request: "+pe.Message)
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || pe.Status == decision.StatusTimeout:
		return apiErr(http.StatusGatewayTimeout, typeTimeout, "upstream_timeout", "upstream timed out: "+pe.Error())
	case pe.Status == decision.StatusRateLimited && pe.HTTPStatus == http.StatusTooManyRequests:
		return apiErr(http.StatusTooManyRequests, typeRateLimit, "upstream_rate_limited", "every upstream tried is rate limited: "+pe.Error())
	case pe.HTTPStatus == 0 && (errors.Is(pe.Err, errQueueFull) || pe.Err != nil && isBreakerErr(pe.Err)):
		return apiErr(http.StatusServiceUnavailable, typeUnavailable, "upstream_unavailable", pe.Error())
	}
	return apiErr(http.StatusBadGateway, typeUpstream, "upstream_error", "upstream failed: "+pe.Error())
}

// serveComplete acts on a non-streaming request; finish sends the answer.
func (s *Server) serveComplete(ctx context.Context, out ChatSink, req *provider.Request, rec *decision.Record, chosen *arm) attemptResult {
	ar := s.run(ctx, rec, req, chosen, func() bool { return false },
		func(ctx context.Context, a *arm, call *provider.Call) (provider.Result, error) {
			return a.up.p.Complete(ctx, call)
		})
	if ar.err != nil {
		e := s.clientFailure(ctx, ar.err, ar.arm, rec.Request.ID)
		model, wait := ar.arm.id, ar.err.RetryAfter
		ar.code, ar.finish = e.Status, func() { out.Fail(e, model, wait) }
		return ar
	}
	// The body names the catalogue id, as the header does, not the
	// upstream's model name.
	body, err := provider.AppendWithModel(make([]byte, 0, len(ar.res.Body)+len(ar.arm.idJSON)), ar.res.Body, ar.arm.idJSON)
	if err != nil {
		s.log.Warn("answer passed on with the upstream's model name", "request_id", rec.Request.ID, "model", ar.arm.id, "err", err)
	}
	model := ar.arm.id
	ar.code, ar.finish = http.StatusOK, func() { out.Answer(model, body) }
	return ar
}

// relay passes a stream's chunks to a ChatSink, naming the catalogue id
// in every chunk.
type relay struct {
	out     ChatSink
	arm     *arm
	model   []byte // arm's catalogue id as a JSON string, for every chunk
	started bool
	gone    bool // the client left: Start or Chunk failed
	first   time.Duration
	t0      time.Time
	buf     []byte
}

func (e *relay) start(a *arm) error {
	e.started = true
	e.first = time.Since(e.t0)
	if err := e.out.Start(a.id); err != nil {
		e.gone = true
		return provider.ErrClientGone
	}
	return nil
}

func (e *relay) emit(chunk []byte) error {
	if !e.started {
		if err := e.start(e.arm); err != nil {
			return err
		}
	}
	// Every chunk names the catalogue id (a chunk that is not a JSON object
	// goes out as it came).
	e.buf, _ = provider.AppendWithModel(e.buf[:0], chunk, e.model)
	if err := e.out.Chunk(e.buf); err != nil {
		e.gone = true
		return provider.ErrClientGone
	}
	return nil
}

// serveStream relays a streaming request; finish sends the stream's end
// (usage chunk and the end, or an error).
func (s *Server) serveStream(ctx context.Context, out ChatSink, req *provider.Request, rec *decision.Record, chosen *arm, t0 time.Time) attemptResult {
	e := &relay{out: out, t0: t0}
	ar := s.run(ctx, rec, req, chosen, func() bool { return e.started },
		func(ctx context.Context, a *arm, call *provider.Call) (provider.Result, error) {
			e.arm, e.model = a, a.idJSON
			return a.up.p.Stream(ctx, call, e.emit)
		})
	rec.Outcome.TTFT = e.first
	final := ar.arm
	if ar.err != nil {
		ae := s.clientFailure(ctx, ar.err, ar.arm, rec.Request.ID)
		if !e.started {
			model, wait := final.id, ar.err.RetryAfter
			ar.code, ar.finish = ae.Status, func() { out.Fail(ae, model, wait) }
			return ar
		}
		// The stream has begun: it ends with the error (the OpenAI SDKs
		// raise an SSE error event) and no regular end.
		ar.code, ar.finish = http.StatusOK, func() {
			if !e.gone {
				out.End(ae, provider.Usage{})
			}
		}
		return ar
	}
	if !e.started {
		e.arm, e.model = final, final.idJSON
		_ = e.start(final) // a client already gone fails End too
		rec.Outcome.TTFT = e.first
	}
	res := ar.res
	ar.code, ar.finish = http.StatusOK, func() {
		u := res.Usage
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		if req.IncludeUsage && !e.gone {
			uc := provider.Completion{ID: res.ChunkID, Object: "chat.completion.chunk", Created: res.Created, Model: final.id,
				Choices: []provider.Choice{}, Usage: &u}
			if uc.ID == "" {
				uc.ID, uc.Created = "chatcmpl-"+rec.Request.ID, s.now().Unix()
			}
			b, _ := json.Marshal(uc) // plain fields always marshal
			if out.Chunk(b) != nil {
				e.gone = true
			}
		}
		if !e.gone {
			out.End(nil, u)
		}
	}
	return ar
}
