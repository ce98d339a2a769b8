package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sony/gobreaker/v2"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/mask"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// Response headers set on every chat completion.
const (
	HeaderRequestID = "X-Routelab-Request-Id"
	HeaderModel     = "X-Routelab-Model"
	HeaderPolicy    = "X-Routelab-Policy"
	// Request headers the gateway reads.
	HeaderTenant  = "X-Routelab-Tenant"
	HeaderTask    = "X-Routelab-Task"
	HeaderTags    = "X-Routelab-Tags"
	HeaderTimeout = "X-Routelab-Timeout"
)

// FeedbackLogger writes delayed feedback to the decision log. quality and
// reward are nil when not given.
type FeedbackLogger interface {
	LogFeedback(requestID string, at time.Time, reward, quality *float64, source string) error
}

// Opts configures New. Config and Registry are required.
type Opts struct {
	Config   *Config
	Registry *policy.Registry
	// Sink receives every decision record (the decision log), and a record
	// with status refused and no candidates for every refused request of
	// an authenticated caller (refused.go); optional.
	Sink route.Sink
	// SinkStats, optional, feeds the log queue metrics.
	SinkStats SinkStats
	// Collectors, optional, are served on /metrics beside the gateway's
	// own (the log shipper's).
	Collectors []prometheus.Collector
	// Feedback, optional, logs delayed feedback beside the decisions.
	Feedback FeedbackLogger
	// Providers overrides or adds providers by name (tests inject fakes).
	Providers map[string]provider.Provider
	// HTTPClient is shared by the HTTP providers; nil = a pooled default.
	HTTPClient *http.Client
	// Encoder, optional, builds feature vectors for contextual policies;
	// nil means policy.NewEncoder(Config.EncoderSpec()): the config's
	// `encoder:` block or policy.DefaultEncoderSpec(TaskNames()).
	Encoder policy.Encoder
	Logger  *slog.Logger
	Now     func() time.Time
	// AuditLog and AccessLog, optional, replace the files named by the
	// config's audit_log.path and access_log.path (tests).
	AuditLog, AccessLog io.Writer
	// CodeVersion, optional, names the binary in the provenance of the
	// checkpoints the gateway writes (the CLI passes its --version string);
	// empty = artifact.CodeVersion(), from the build information.
	CodeVersion string
}

// Server is the gateway: an http.Handler plus its background loops.
type Server struct {
	cfg       *Config
	reg       *policy.Registry
	core      *route.Core
	log       *slog.Logger
	m         *metrics
	now       func() time.Time
	codeVer   string
	feedback  FeedbackLogger
	arms      map[string]*arm
	armList   []*arm
	groups    []*group
	upstreams []*upstream
	aliases   map[string]bool
	keys      *keyring
	tenants   *tenantLimits
	budget    *retryBudget
	engine    *gin.Engine
	ids       *idSource
	// prompt: the encoder reads the prompt text (a text block), so
	// fillFeatures fills Features.Prompt.
	prompt bool
	// requestsSeen counts chat requests given an id (checkpoint provenance).
	requestsSeen atomic.Int64
	draining     atomic.Bool
	connLimiter  atomic.Pointer[ConnLimiter] // the HTTP listener's, once Serve runs
	recs         sync.Pool
	policyMu     sync.Mutex // serialises admin swaps
	promo        *promoter
	pm           *promotionMetrics
	created      int64
	lastTick     time.Time       // condition loop only
	models       []byte          // GET /v1/models body
	srv          ServerConfig    // Config.Server with defaults filled
	lim          RequestLimits   // Config.Limits with defaults filled
	inflight     atomic.Int64    // requests in /v1/* handlers
	trusted      map[string]bool // keys that may name the tenant (tenant_header)
	ckpt         *checkpointer
	audit        *slog.Logger
	access       *slog.Logger // nil = access log off
	masker       *mask.Masker // nil = masking off
	allowMeta    map[string]bool
	closers      []io.Closer
	ws           *wsConns         // ws.go
	services     []Service        // transport.go
	sinks        sync.Pool        // *httpSink (sink.go)
	policyHdr    policyHdr        // hotpath.go
	tlsr         *tlsReloader     // nil = no TLS (tls.go)
	refusals     route.Sink       // decision log rows of refused requests (refused.go)
	refused      *refusalCounters // routelab_refused_total{code} (refused.go)
	shared       *sharedState     // nil without state.redis (shared.go)
}

// New builds the gateway from a validated config.
func New(o Opts) (*Server, error) {
	if o.Config == nil {
		return nil, fmt.Errorf("gateway: no config")
	}
	if o.Registry == nil {
		return nil, fmt.Errorf("gateway: no policy registry")
	}
	c := o.Config
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	s := &Server{cfg: c, reg: o.Registry, log: o.Logger, now: o.Now, feedback: o.Feedback, codeVer: o.CodeVersion,
		arms: map[string]*arm{}, aliases: map[string]bool{}, srv: c.Server, lim: c.Limits}
	s.srv.fillDefaults()
	s.lim.fillDefaults()
	s.trusted = map[string]bool{}
	for _, k := range c.Auth.Keys {
		if k.TenantHeader || c.Auth.TrustTenantHeader {
			s.trusted[k.Name] = true
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.created = s.now().Unix()
	ids, err := newIDSource()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.ids = ids
	if err := s.setupLogs(&o); err != nil {
		return nil, err
	}
	s.m = newMetrics(o.SinkStats)
	for _, c := range o.Collectors {
		if err := s.m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
	}
	s.promo, s.pm = newPromoter(c.Promotion), newPromotionMetrics(s.m.reg, s)
	for _, a := range c.Aliases {
		s.aliases[a] = true
	}

	// Providers.
	client := o.HTTPClient
	if client == nil {
		client = provider.NewHTTPClient(provider.HTTPOpts{})
	}
	ups := map[string]*upstream{}
	for i := range c.Providers {
		pc := &c.Providers[i]
		p := o.Providers[pc.Name]
		if p == nil {
			var err error
			if p, err = buildProvider(pc, c.Models, client, s.now); err != nil {
				return nil, fmt.Errorf("providers[%d]: %w", i, err)
			}
		}
		u := &upstream{name: pc.Name, p: p, timeout: pc.Timeout, queueTimeout: pc.QueueTimeout, checked: pc.HealthCheck == nil || *pc.HealthCheck}
		if pc.MaxConcurrency > 0 {
			u.sem = make(chan struct{}, pc.MaxConcurrency)
		}
		ups[pc.Name] = u
		s.upstreams = append(s.upstreams, u)
		s.m.health.WithLabelValues(u.name).Set(1)
	}

	// Catalogue.
	cat := make([]decision.Arm, 0, len(c.Models))
	for _, mc := range c.Models {
		a := &arm{id: mc.ID, idHdr: []string{mc.ID}, upstream: mc.Upstream, up: ups[mc.Provider]}
		a.m.ok = s.m.requests.WithLabelValues(mc.ID, "200")
		a.m.latency = s.m.latency.WithLabelValues(mc.ID)
		a.m.attemptOK = s.m.attempts.WithLabelValues(mc.ID, decision.StatusOK.String())
		if a.upstream == "" {
			a.upstream = mc.ID
		}
		a.idJSON, a.upstreamJSON = provider.QuoteJSON(mc.ID), provider.QuoteJSON(a.upstream)
		a.breaker = newBreaker(mc.ID, c.Breaker, func(name string, st gobreaker.State) {
			a.tripped.Store(st != gobreaker.StateClosed)
			s.m.breaker.WithLabelValues(name).Set(breakerValue(st))
			s.log.Warn("circuit breaker", "model", name, "state", st.String())
		})
		s.m.breaker.WithLabelValues(mc.ID).Set(0)
		a.chain = []*arm{a}
		s.arms[mc.ID] = a
		s.armList = append(s.armList, a)
		priceIn, priceOut, window := c.catalogueTerms(&mc)
		cat = append(cat, decision.Arm{ID: mc.ID, Provider: mc.Provider, PriceIn: priceIn, PriceOut: priceOut,
			ContextWindow: window, Quality: mc.Quality, LatencyMS: mc.LatencyMS})
	}
	// Cascade models call other catalogue models: built once all arms are.
	for _, mc := range c.Models {
		if mc.Cascade == nil {
			continue
		}
		a := s.arms[mc.ID]
		cp, timeout := s.newCascade(mc.ID, mc.Cascade)
		a.up = &upstream{name: "cascade", p: cp, timeout: timeout}
		a.members = append(slices.Clone(cp.agree), cp.esc)
	}
	for _, fc := range c.Fallbacks {
		g := &group{name: fc.Name}
		for _, w := range fc.When {
			cond, _ := ParseCondition(w) // validated
			if cond.IsStatus() {
				g.statuses = append(g.statuses, cond)
			} else {
				g.profile = append(g.profile, cond)
			}
		}
		for _, id := range fc.Models {
			g.arms = append(g.arms, s.arms[id])
		}
		for _, a := range g.arms {
			a.group = g
			for _, b := range g.arms {
				if b != a {
					a.chain = append(a.chain, b)
				}
			}
		}
		s.groups = append(s.groups, g)
	}
	allowed := map[string]map[string]bool{} // tenant → models; enforced by allowlistRule only
	for _, t := range c.Tenants {
		if len(t.Models) > 0 {
			set := map[string]bool{}
			for _, m := range t.Models {
				set[m] = true
			}
			allowed[t.Name] = set
		}
	}

	// Decision core.
	enc := o.Encoder
	if enc == nil {
		// Contextual policies (linucb, lin-thompson, …) need a vector: the
		// config's encoder block, or the default over what the gateway
		// knows of every request.
		if enc, err = policy.NewEncoder(c.EncoderSpec()); err != nil {
			return nil, fmt.Errorf("feature encoder: %w", err)
		}
	}
	s.prompt = policy.NeedsPrompt(enc)
	rw, _ := c.Reward.Reward() // validated
	env := artifactEnv{enc: encoderSpecOf(enc, c), reward: rw}
	for _, mc := range c.Models {
		env.catalogue = append(env.catalogue, mc.ID)
	}
	s.ckpt = &checkpointer{env: env}
	pol, err := buildPolicy(o.Registry, "policy", &c.Policy, env)
	if err != nil {
		return nil, err
	}
	if p := s.restoreCheckpoint(ServingCheckpoint, env); p != nil {
		if err := applyBudget(p, "policy", &c.Policy); err != nil {
			return nil, err
		}
		pol = p
	}
	var shadow policy.Policy
	if c.Shadow != nil && (c.Shadow.Name != "" || c.Shadow.File != "") {
		if shadow, err = buildPolicy(o.Registry, "shadow", c.Shadow, env); err != nil {
			return nil, err
		}
	}
	// A shadow checkpoint exists only while a shadow ran (set by the
	// config, the admin API or a promotion): restore it even when the
	// config names none, so a restart after a promotion keeps the demoted
	// policy under evaluation.
	if p := s.restoreCheckpoint(ShadowCheckpoint, env); p != nil {
		if err := applyBudget(p, "shadow", c.Shadow); err != nil {
			return nil, err
		}
		shadow = p
	}
	if err := s.setupShared(); err != nil {
		return nil, err
	}
	rules := []route.Rule{route.ContextWindowRule{}, healthRule{arms: s.arms}}
	if len(allowed) > 0 {
		rules = append(rules, allowlistRule{allowed: allowed})
	}
	s.refusals = newMaskingSink(o.Sink, s.masker, s.allowMeta)
	s.refused = newRefusalCounters(s.m.reg)
	s.core, err = route.NewCore(route.CoreOpts{
		Catalogue: cat, Policy: pol, Shadow: shadow, Rules: rules, Reward: rw, Sink: promotionSink{s: s, next: s.refusals},
		Profiles: route.NewProfiles(route.ProfileOpts{Priors: cat}), Encoder: enc, Now: s.now,
		Pending:     route.PendingOpts{MaxEntries: c.Feedback.MaxEntries, MaxBytes: max(c.Feedback.MaxBytes, 0), TTL: c.Feedback.TTL, Defer: c.Feedback.deferUpdates(), Backend: s.pendingBackend()},
		ShadowLearn: c.shadowLearn(),
	})
	if err != nil {
		return nil, fmt.Errorf("decision core: %w", err)
	}
	for _, a := range s.armList {
		a.spec = s.core.Arm(a.id)
	}
	s.m.registerPending(s.core.PendingStats)
	s.attachShared(pol, shadow)
	s.keys = newKeyring(c)
	if err := s.setupJWT(); err != nil {
		return nil, err
	}
	s.tenants = newTenantLimits(c)
	s.budget = newRetryBudget(c.Retries, s.now())
	s.recs.New = func() any { return new(decision.Record) }
	s.models = s.modelList()
	s.ws = newWSConns()
	s.engine = s.routes()
	return s, nil
}

func buildProvider(pc *ProviderConfig, models []ModelConfig, client *http.Client, now func() time.Time) (provider.Provider, error) {
	key := ""
	if pc.APIKeyEnv != "" {
		key = os.Getenv(pc.APIKeyEnv)
	}
	switch pc.Type {
	case "openai":
		return provider.NewOpenAI(provider.OpenAIOpts{Name: pc.Name, BaseURL: pc.BaseURL, APIKey: key, Headers: pc.Headers, Client: client})
	case "anthropic":
		return provider.NewAnthropic(provider.AnthropicOpts{Name: pc.Name, BaseURL: pc.BaseURL, APIKey: key, DefaultMaxTokens: pc.DefaultMaxTokens, Client: client, Now: now})
	case "sim":
		sm := map[string]provider.SimModel{}
		for _, m := range models {
			if m.Provider != pc.Name || m.Sim == nil {
				continue
			}
			up := m.Upstream
			if up == "" {
				up = m.ID
			}
			sm[up] = provider.SimModel{TTFTMS: m.Sim.TTFTMS, TTFTSigma: m.Sim.TTFTSigma, TokensPerSec: m.Sim.TokensPerSec,
				OutputTokens: m.Sim.OutputTokens, ErrorRate: m.Sim.ErrorRate, RateLimitRPS: m.Sim.RateLimitRPS, Quality: m.Sim.Quality}
		}
		return provider.NewSim(provider.SimOpts{Name: pc.Name, Models: sm, Seed: pc.Seed, TimeScale: pc.TimeScale, Now: now})
	}
	return nil, fmt.Errorf("type %q is not openai, anthropic or sim", pc.Type)
}

// Core returns the decision core (policy swaps, profiles).
func (s *Server) Core() *route.Core { return s.core }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Start runs the background loops (health checks, profile conditions)
// until ctx is done.
func (s *Server) Start(ctx context.Context) {
	go loop(ctx, s.cfg.Conditions.Every, s.evalConditions)
	s.startShared(ctx)
	if s.cfg.Checkpoint.Dir != "" {
		every := s.cfg.Checkpoint.Every
		if every <= 0 {
			every = time.Minute
		}
		go loop(ctx, every, s.checkpointTick)
	}
	go func() {
		s.checkHealth(ctx)
		loop(ctx, s.cfg.Health.Interval, func(time.Time) { s.checkHealth(ctx) })
	}()
}

// Serve accepts connections on ln until ctx is done, then shuts down
// gracefully: /readyz turns 503, new connections are refused, in-flight
// requests (streams included) finish within the shutdown timeout.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	bg, stop := context.WithCancel(context.Background())
	defer stop()
	s.Start(bg)
	ln = LimitListener(ln, s.srv.MaxConnections)
	lim, _ := ln.(*ConnLimiter)
	ln, err := s.wrapTLS(bg, ln)
	if err != nil {
		return err
	}
	hs := s.httpServer()
	if lim != nil {
		hs.ConnState = lim.ConnState
		s.m.registerConnLimiter(lim)
		s.connLimiter.Store(lim)
	}
	errc := make(chan error, 1)
	// The drain listener keeps the socket open through Shutdown: /readyz
	// (every path) answers 503 during the drain instead of refusing.
	dl := newDrainListener(ln)
	defer dl.closeAll()
	go func() { errc <- hs.Serve(dl) }()
	serr := s.startServices()
	select {
	case err := <-errc:
		s.stopServices()
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case err := <-serr:
		s.stopServices()
		_ = hs.Close()
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down: draining in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// WebSocket connections (hijacked, so not Shutdown's) and the other
	// front ends (gRPC) drain alongside.
	fronts := s.drainFronts(sctx)
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-fronts; err != nil {
		s.log.Warn("drain", "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Updates still waiting for feedback learn their immediate reward;
	// then the policies learned so far are checkpointed.
	s.core.Flush()
	s.closeShared()
	if err := s.Checkpoint(); err != nil {
		s.log.Warn("policy checkpoint on drain failed", "err", err)
	}
	s.closeLogs()
	return nil
}

// httpServer is the http.Server Serve runs. Its ReadTimeout and
// WriteTimeout stay 0: they would cut streams longer than them (an expired
// read deadline cancels the request's context). The body read deadline
// (bodyDeadline) and the per-write deadlines (writeDeadline) apply the
// server: block's read_timeout and write_timeout instead.
func (s *Server) httpServer() *http.Server {
	return &http.Server{Handler: s.engine, ReadHeaderTimeout: s.srv.ReadHeaderTimeout, IdleTimeout: s.srv.IdleTimeout,
		MaxHeaderBytes: s.srv.MaxHeaderBytes, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
}

// bodyDeadline arms the connection's read deadline for the request body:
// a client trickling its body is cut at server.read_timeout. Handlers
// that read the body to its end disarm it (readBody) so that a long
// stream is not cancelled by it.
func (s *Server) bodyDeadline(c *gin.Context) {
	if c.Request.ContentLength != 0 && s.srv.ReadTimeout > 0 {
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(s.srv.ReadTimeout))
	}
	c.Next()
}

// closeWhenCrowded answers with "Connection: close" while a client
// connection waits for a place at server.max_connections (see
// LimitListener): this connection then frees its place when the answer
// ends.
func (s *Server) closeWhenCrowded(c *gin.Context) {
	if l := s.connLimiter.Load(); l != nil && l.Crowded() {
		c.Header("Connection", "close")
	}
	c.Next()
}

// limitInFlight answers 503 server_busy beyond server.max_inflight
// concurrent /v1/* requests.
func (s *Server) limitInFlight(c *gin.Context) {
	if s.srv.MaxInFlight < 0 {
		c.Next()
		return
	}
	if e := s.admit(); e != nil {
		c.Writer.Header().Set("Retry-After", "1")
		s.refuse(c.Writer, e, "", nil, nil)
		c.Abort()
		return
	}
	defer s.leave()
	c.Next()
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	if s.access != nil {
		e.Use(s.accessLog)
	}
	e.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		s.log.Error("panic in handler", "path", c.Request.URL.Path, "panic", err)
		writeAPIError(c.Writer, apiErr(http.StatusInternalServerError, typeServer, "internal_error", "internal error"))
	}))
	open := map[string]bool{}
	for _, p := range s.cfg.OpenPaths {
		open[p] = true
	}
	guard := func(path string, h gin.HandlerFunc) gin.HandlerFunc {
		if open[path] {
			return h
		}
		return s.adminGuard(path, h)
	}
	e.Use(s.bodyDeadline, s.closeWhenCrowded)
	e.POST("/v1/chat/completions", s.limitInFlight, s.handleChat)
	e.GET("/v1/models", s.handleModels)
	e.POST("/v1/feedback", s.limitInFlight, s.handleFeedback)
	e.GET("/v1/ws", s.handleWS) // in-flight cap per message, not per connection
	e.GET("/healthz", guard("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") }))
	e.GET("/readyz", guard("/readyz", s.handleReady))
	mh := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})
	e.GET("/metrics", guard("/metrics", func(c *gin.Context) { mh.ServeHTTP(c.Writer, c.Request) }))
	e.GET("/admin/models", guard("/admin/models", s.handleAdminModels))
	e.GET("/admin/policy", guard("/admin/policy", s.handleGetPolicy))
	e.POST("/admin/policy", guard("/admin/policy", s.handleSetPolicy(false)))
	e.POST("/admin/shadow", guard("/admin/shadow", s.handleSetPolicy(true)))
	e.GET("/admin/shadow/status", guard("/admin/shadow/status", s.handleShadowStatus))
	e.POST("/admin/promote", guard("/admin/promote", s.handlePromote))
	e.POST("/admin/rollback", guard("/admin/rollback", s.handleRollback))
	e.NoRoute(func(c *gin.Context) {
		writeAPIError(c.Writer, apiErr(http.StatusNotFound, typeNotFound, "not_found", "no route "+clip(c.Request.Method)+" "+clip(c.Request.URL.Path)))
	})
	e.NoMethod(func(c *gin.Context) {
		writeAPIError(c.Writer, apiErr(http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed", "method "+clip(c.Request.Method)+" not allowed on "+clip(c.Request.URL.Path)))
	})
	return e
}

func (s *Server) handleReady(c *gin.Context) {
	if s.draining.Load() {
		c.String(http.StatusServiceUnavailable, "draining\n")
		return
	}
	for _, a := range s.armList {
		if a.available() {
			s.readyDetail(c)
			return
		}
	}
	c.String(http.StatusServiceUnavailable, "no model available\n")
}
