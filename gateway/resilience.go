package gateway

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/route"
)

// upstream is a provider with its per-provider limits and health.
type upstream struct {
	name         string
	p            provider.Provider
	timeout      time.Duration
	sem          chan struct{} // nil = unlimited
	queueTimeout time.Duration
	checked      bool // active health checks on
	down         atomic.Bool
	fails        int // consecutive failed probes; health goroutine only
}

var errQueueFull = errors.New("provider concurrency limit reached")

// acquire takes a concurrency slot, waiting at most queueTimeout.
func (u *upstream) acquire(ctx context.Context) error {
	if u.sem == nil {
		return nil
	}
	select {
	case u.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(u.queueTimeout)
	defer t.Stop()
	select {
	case u.sem <- struct{}{}:
		return nil
	case <-t.C:
		return errQueueFull
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *upstream) release() {
	if u.sem != nil {
		<-u.sem
	}
}

// arm is the transport side of one catalogue model: its upstream, breaker,
// fallback chain and metrics. What the model is (prices, context window)
// lives in the decision core's catalogue only: spec points there.
type arm struct {
	id       string
	idHdr    []string      // id as a header value
	idJSON   []byte        // id as a JSON string (answers name it)
	spec     *decision.Arm // the core's catalogue entry; read only
	m        armMetrics
	upstream string // the provider's model name
	// upstreamJSON is upstream as a JSON string (provider.Call.ModelJSON).
	upstreamJSON []byte
	up           *upstream
	breaker      *gobreaker.TwoStepCircuitBreaker[struct{}]
	group        *group // nil: no fallbacks
	chain        []*arm // this arm, then the rest of its group in order
	// members are a cascade model's agree and escalate models (nil for a
	// provider's model): the cascade is available while they all are.
	members []*arm

	// condOut is set while a profile condition holds (condition loop).
	condOut atomic.Bool
	// tripped mirrors "breaker not closed" (set by its state changes), so
	// the hot path reads an atomic instead of the breaker's mutex and clock.
	tripped atomic.Bool
	// condition state machine, condition loop only
	cond      condState
	condUntil time.Time
	condBase  int64

	// live request rate, updated by the condition loop
	qpsBits  atomic.Uint64
	lastReqs int64
}

// armMetrics caches the arm's most used metric children.
type armMetrics struct {
	ok        prometheus.Counter
	latency   prometheus.Observer
	attemptOK prometheus.Counter
	// dec caches the decisions counter of the last (policy, reason) seen.
	dec atomic.Pointer[decCounter]
}

type decCounter struct {
	policy, reason string
	c              prometheus.Counter
}

func (a *arm) decided(m *metrics, pol, reason string) prometheus.Counter {
	if d := a.m.dec.Load(); d != nil && d.policy == pol && d.reason == reason {
		return d.c
	}
	d := &decCounter{policy: pol, reason: reason, c: m.decisions.WithLabelValues(pol, a.id, reason)}
	a.m.dec.Store(d)
	return d.c
}

func (a *arm) qps() float64 { return math.Float64frombits(a.qpsBits.Load()) }

type condState uint8

const (
	condIn condState = iota
	condExcluded
	condProbing
)

type group struct {
	name     string
	arms     []*arm
	statuses []Condition // fall back on these attempt failures
	profile  []Condition // take models out of rotation while these hold
}

// fallsBackOn reports whether the failure e moves the request on to the
// next model of the group.
func (g *group) fallsBackOn(e *provider.Error) bool {
	if e.Client {
		return false
	}
	if len(g.statuses) == 0 {
		return true // no status condition given: any upstream failure
	}
	for _, c := range g.statuses {
		if c.MatchError(e) {
			return true
		}
	}
	return false
}

// available reports whether a is worth calling now: breaker not open,
// provider not down, no profile condition holding (for a cascade: for it
// and for every member).
func (a *arm) available() bool {
	if a.up.down.Load() || a.condOut.Load() {
		return false
	}
	for _, m := range a.members {
		if !m.available() {
			return false
		}
	}
	// Only a tripped breaker needs asking: State moves it from open to
	// half-open once its timeout has passed.
	return !a.tripped.Load() || a.breaker.State() != gobreaker.StateOpen
}

// healthRule is the rule filter step fed by the circuit breakers, the
// active health checks and the profile conditions.
type healthRule struct{ arms map[string]*arm }

func (healthRule) Name() string { return "health" }

// Advisory: a forced model that is down still goes to its fallback chain.
func (healthRule) Advisory() bool { return true }

func (r healthRule) Allow(_ *decision.Features, a *decision.Arm) bool {
	if x := r.arms[a.ID]; x != nil {
		return x.available()
	}
	return true
}

// allowlistRule restricts tenants to their configured models.
type allowlistRule struct{ allowed map[string]map[string]bool }

func (allowlistRule) Name() string { return "tenant_allowlist" }

func (r allowlistRule) Allow(f *decision.Features, a *decision.Arm) bool {
	set, ok := r.allowed[f.Tenant]
	return !ok || set[a.ID]
}

var (
	_ route.Advisory = healthRule{}
	_ route.Rule     = allowlistRule{}
)

func newBreaker(model string, c BreakerConfig, onChange func(string, gobreaker.State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        model,
		MaxRequests: c.HalfOpenRequests,
		Interval:    c.Interval,
		Timeout:     c.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			return n.ConsecutiveFailures >= c.ConsecutiveFailures ||
				(n.Requests >= c.MinRequests && float64(n.TotalFailures) >= c.FailureRatio*float64(n.Requests))
		},
		// Failures that say nothing about the model (the client left, the
		// request was bad, the local queue was full) count as neither
		// success nor failure.
		IsExcluded:    func(err error) bool { return errors.Is(err, errNotCounted) },
		OnStateChange: func(name string, _, to gobreaker.State) { onChange(name, to) },
	})
}

func breakerValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// retryBudget allows retries up to ratio × requests plus minPerSec per
// second, as a token bucket in milli-tokens (lock-free).
type retryBudget struct {
	ratioMilli int64
	minPerSec  float64
	max        int64
	tokens     atomic.Int64
	last       atomic.Int64 // unix nanos of the last refill
}

func newRetryBudget(c RetryConfig, now time.Time) *retryBudget {
	b := &retryBudget{ratioMilli: int64(c.BudgetRatio * 1000), minPerSec: c.BudgetMin, max: int64(max(10, c.BudgetMin*10)) * 1000}
	b.tokens.Store(b.max)
	b.last.Store(now.UnixNano())
	return b
}

// deposit credits one request.
func (b *retryBudget) deposit(now time.Time) {
	add := b.ratioMilli
	if last := b.last.Load(); now.UnixNano()-last > int64(10*time.Millisecond) && b.last.CompareAndSwap(last, now.UnixNano()) {
		add += int64(b.minPerSec * 1000 * float64(now.UnixNano()-last) / 1e9)
	}
	if b.tokens.Add(add) > b.max {
		b.tokens.Store(b.max)
	}
}

// take spends one retry if the budget has it.
func (b *retryBudget) take() bool {
	for {
		t := b.tokens.Load()
		if t < 1000 {
			return false
		}
		if b.tokens.CompareAndSwap(t, t-1000) {
			return true
		}
	}
}

// evalConditions runs the profile-condition state machine of every arm in
// a group with profile conditions: a model whose live profile matches a
// condition is out for the cooldown, then let back in for ProbeRequests
// calls before it is judged again. A group never has all its models out.
func (s *Server) evalConditions(now time.Time) {
	c := s.cfg.Conditions
	if !s.lastTick.IsZero() {
		dt := now.Sub(s.lastTick).Seconds()
		for _, a := range s.armList {
			n := s.core.Profiles().Get(a.id).Requests
			if dt > 0 {
				a.qpsBits.Store(math.Float64bits(float64(n-a.lastReqs) / dt))
			}
			a.lastReqs = n
		}
	}
	s.lastTick = now
	for _, g := range s.groups {
		if len(g.profile) == 0 {
			continue
		}
		out := 0
		for _, a := range g.arms {
			p := s.core.Profiles().Get(a.id)
			bad := false
			for _, cond := range g.profile {
				if cond.MatchProfile(&p) {
					bad = true
					break
				}
			}
			switch a.cond {
			case condIn:
				if bad {
					a.cond, a.condUntil = condExcluded, now.Add(c.Cooldown)
					s.log.Warn("model out of rotation: fallback condition holds", "model", a.id, "group", g.name,
						"error_rate", p.ErrorRate, "latency_ms", p.LatencyMS, "cooldown", c.Cooldown)
				}
			case condExcluded:
				if now.After(a.condUntil) {
					a.cond, a.condBase = condProbing, p.Requests
				}
			case condProbing:
				if p.Requests-a.condBase >= c.ProbeRequests {
					if bad {
						a.cond, a.condUntil = condExcluded, now.Add(c.Cooldown)
					} else {
						a.cond = condIn
						s.log.Info("model back in rotation", "model", a.id, "group", g.name)
					}
				}
			}
			if a.cond == condExcluded {
				out++
			}
		}
		all := out == len(g.arms)
		for _, a := range g.arms {
			a.condOut.Store(a.cond == condExcluded && !all)
		}
	}
}

// checkHealth probes every checked upstream once.
func (s *Server) checkHealth(ctx context.Context) {
	var wg sync.WaitGroup
	for _, u := range s.upstreams {
		hc, ok := u.p.(provider.HealthChecker)
		if !ok || !u.checked {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, s.cfg.Health.Timeout)
			err := hc.Health(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				u.fails++
				if u.fails >= s.cfg.Health.UnhealthyAfter && !u.down.Load() {
					u.down.Store(true)
					s.log.Warn("provider down: health check failed", "provider", u.name, "failures", u.fails, "err", err)
				}
			} else {
				if u.down.Load() {
					s.log.Info("provider up again", "provider", u.name)
				}
				u.fails = 0
				u.down.Store(false)
			}
			up := 1.0
			if u.down.Load() {
				up = 0
			}
			s.m.health.WithLabelValues(u.name).Set(up)
		}()
	}
	wg.Wait()
}

// loop runs f every d until ctx is done.
func loop(ctx context.Context, d time.Duration, f func(time.Time)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
