package gateway

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/route"
)

// SinkStats reports a decision log writer's queue depth and dropped rows
// for the metrics; the serve command adapts the decisionlog writer to it.
type SinkStats func() (queueDepth int, dropped uint64)

type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	ttft        *prometheus.HistogramVec
	success     *successRates
	decisions   *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	cascades    *prometheus.CounterVec
	retries     prometheus.Counter
	breaker     *prometheus.GaugeVec
	health      *prometheus.GaugeVec
	rateLimited *prometheus.CounterVec
	overhead    prometheus.Histogram
	feedback    *prometheus.CounterVec
	inflight    prometheus.Gauge
	fronts      *frontMetrics // transport.go
}

func newMetrics(stats SinkStats) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, fronts: newFrontMetrics(reg)}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "Chat completion requests by answering model and HTTP status code.",
	}, []string{"model", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "model_latency_seconds", Help: "End-to-end latency of answered requests by answering model.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5, 10, 20, 40, 80},
	}, []string{"model"})
	m.ttft = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "routelab_ttft_seconds", Help: "Time to first token of streamed answers by model.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10},
	}, []string{"model"})
	m.success = newSuccessRates()
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_decisions_total", Help: "Routing decisions by policy, chosen arm and reason (policy or forced).",
	}, []string{"policy", "arm", "reason"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_upstream_attempts_total", Help: "Upstream calls by model and status.",
	}, []string{"model", "status"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_fallbacks_total", Help: "Moves from a failed model to the next in its fallback group.",
	}, []string{"from", "to"})
	m.cascades = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_cascade_total", Help: "Requests served by a cascade model, by how: agreed (its agree models gave one answer), escalated, or failed.",
	}, []string{"model", "outcome"})
	m.retries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "routelab_retries_total", Help: "Same-model retries (within the retry budget).",
	})
	m.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "routelab_breaker_state", Help: "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
	}, []string{"model"})
	m.health = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "routelab_provider_up", Help: "Active health check result per provider (1 up, 0 down).",
	}, []string{"provider"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_rate_limited_total", Help: "Requests refused by a local rate limit, by scope (key, tenant).",
	}, []string{"scope"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "routelab_gateway_overhead_seconds", Help: "Time per request spent in the gateway outside upstream calls and backoff waits.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
	})
	m.feedback = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "routelab_feedback_total", Help: "Delayed feedback by result (applied, unknown, invalid).",
	}, []string{"result"})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "routelab_inflight_requests", Help: "Chat completion requests in flight.",
	})
	reg.MustRegister(m.requests, m.latency, m.ttft, m.success, m.decisions, m.attempts, m.fallbacks, m.cascades, m.retries,
		m.breaker, m.health, m.rateLimited, m.overhead, m.feedback, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if stats != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "routelab_log_queue_depth", Help: "Decision log rows waiting for the disk.",
			}, func() float64 { d, _ := stats(); return float64(d) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "routelab_log_dropped_total", Help: "Decision log rows dropped because the queue was full.",
			}, func() float64 { _, n := stats(); return float64(n) }),
		)
	}
	return m
}

// registerPending exports the decision core's pending-store counters:
// routelab_deferred_updates_total{result} (waiting, feedback, default) and
// routelab_feedback_evicted_total, and the store's size
// (routelab_feedback_waiting, routelab_feedback_bytes,
// routelab_feedback_offheap_bytes).
func (m *metrics) registerPending(stats func() route.PendingStats) {
	const help = "Policy updates deferred for feedback (waiting), then applied from feedback or, without it, from the immediate reward (default)."
	for _, r := range []struct {
		result string
		get    func(route.PendingStats) uint64
	}{
		{"waiting", func(s route.PendingStats) uint64 { return s.Deferred }},
		{"feedback", func(s route.PendingStats) uint64 { return s.FromFeedback }},
		{"default", func(s route.PendingStats) uint64 { return s.Expired }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "routelab_deferred_updates_total", Help: help, ConstLabels: prometheus.Labels{"result": r.result},
		}, func() float64 { return float64(r.get(stats())) }))
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "routelab_feedback_evicted_total", Help: "Decisions dropped from the feedback store because it was full, in entries or bytes (deferred ones learn their immediate reward).",
	}, func() float64 { return float64(stats().Evicted) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "routelab_feedback_waiting", Help: "Decisions held in the feedback store (feedback.max_entries bounds it).",
	}, func() float64 { return float64(stats().Waiting) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "routelab_feedback_bytes", Help: "Bytes the feedback store's decisions hold, as feedback.max_bytes counts them.",
	}, func() float64 { return float64(stats().Bytes) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "routelab_feedback_offheap_bytes", Help: "Memory the feedback store has mapped outside the Go heap for its decisions' slots, ids and numbers (in the process's RSS, not in Go's heap statistics).",
	}, func() float64 { return float64(stats().Mapped) }))
}

// registerConnLimiter exports the HTTP listener's connection cap
// (server.max_connections): routelab_connections_open and
// routelab_connections_reclaimed_total.
func (m *metrics) registerConnLimiter(l *ConnLimiter) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "routelab_connections_open", Help: "Client connections open on the HTTP listener (server.max_connections bounds it).",
	}, func() float64 { return float64(l.Open()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "routelab_connections_reclaimed_total", Help: "Idle keep-alive connections closed to make room for a new one at server.max_connections.",
	}, func() float64 { return float64(l.Reclaimed()) }))
}

// successRates is route_success_rate{source}: an exponentially weighted
// success rate (weight 0.01 per request, so roughly the last 100
// requests) per decision source ("policy", "forced"). The two known
// sources update lock-free (a compare-and-swap loop: every request's
// update applies, in some order, as under a mutex); any other source
// goes to a map under mu.
type successRates struct {
	desc   *prometheus.Desc
	policy ewma
	forced ewma
	mu     sync.Mutex
	rate   map[string]float64
}

// ewma is one lock-free rate: its float64 bits, or unseen before the
// first request.
type ewma struct{ bits atomic.Uint64 }

// unseen is a NaN no update produces (rates stay in [0,1]).
const unseen = math.MaxUint64

func (e *ewma) observe(x float64) {
	for {
		old := e.bits.Load()
		r := x
		if old != unseen {
			r = math.Float64frombits(old)
			r += 0.01 * (x - r)
		}
		if e.bits.CompareAndSwap(old, math.Float64bits(r)) {
			return
		}
	}
}

func newSuccessRates() *successRates {
	s := &successRates{
		desc: prometheus.NewDesc("route_success_rate", "EWMA (weight 0.01) of request success by decision source.", []string{"source"}, nil),
		rate: map[string]float64{},
	}
	s.policy.bits.Store(unseen)
	s.forced.bits.Store(unseen)
	return s
}

func (s *successRates) observe(source string, ok bool) {
	x := 0.0
	if ok {
		x = 1
	}
	switch source {
	case decision.ReasonPolicy:
		s.policy.observe(x)
		return
	case decision.ReasonForced:
		s.forced.observe(x)
		return
	}
	s.mu.Lock()
	r, seen := s.rate[source]
	if !seen {
		r = x
	} else {
		r += 0.01 * (x - r)
	}
	s.rate[source] = r
	s.mu.Unlock()
}

func (s *successRates) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *successRates) Collect(ch chan<- prometheus.Metric) {
	for _, e := range []struct {
		src string
		r   *ewma
	}{{decision.ReasonPolicy, &s.policy}, {decision.ReasonForced, &s.forced}} {
		if b := e.r.bits.Load(); b != unseen {
			r := math.Float64frombits(b)
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, r, e.src)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for src, r := range s.rate {
		if !math.IsNaN(r) {
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, r, src)
		}
	}
}
