package gateway

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// Refusals: a chat request refused before any attempt — a key or tenant
// rate limit, a bad or oversized request, a forced model that does not
// exist or is not the tenant's, a rule filter leaving no model
// (no_model_available) — is never silently lost. Every refusal is counted
// in routelab_refused_total{code}; a refusal of an authenticated caller is
// also logged as a decision-log row with status "refused"
// (decision.StatusRefused), no candidates, chosen index -1 and the error
// code in the reason column, so that `routelab logs inspect` shows what
// the gateway turned away beside what it served. Unauthenticated requests
// (401) and server_busy (503 before authentication) are counted, and
// appear in the access log, but write no row: an anonymous client must not
// be able to write to the decision log. Refusal rows are themselves
// bounded (refusalRowsPerSec, burst refusalRowsBurst) so that a key
// holder hammering a limit cannot crowd real decisions out of the log's
// queue; refusals beyond that are counted in
// routelab_refused_unlogged_total{code}.
const (
	refusalRowsPerSec = 500
	refusalRowsBurst  = 2000
)

// refusalCounters are routelab_refused_total{code} and
// routelab_refused_unlogged_total{code}, and the bucket of refusal rows.
type refusalCounters struct {
	all, unlogged *prometheus.CounterVec
	rows          *rate.Limiter
}

func newRefusalCounters(reg *prometheus.Registry) *refusalCounters {
	c := &refusalCounters{
		all: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "routelab_refused_total",
			Help: "Chat requests refused before any upstream attempt, by error code (rate_limit_exceeded, no_model_available, model_not_found, invalid_request, server_busy, missing_api_key, ...).",
		}, []string{"code"}),
		unlogged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "routelab_refused_unlogged_total",
			Help: "Refusals of authenticated requests not written to the decision log because refusal rows exceeded their rate (500/s).",
		}, []string{"code"}),
		rows: rate.NewLimiter(refusalRowsPerSec, refusalRowsBurst),
	}
	reg.MustRegister(c.all, c.unlogged)
	return c
}

// WithLabelValues is the routelab_refused_total counter of one code.
func (c *refusalCounters) WithLabelValues(code string) prometheus.Counter {
	return c.all.WithLabelValues(code)
}

// refuse answers a chat request refused before any attempt, counts it and,
// when cl (the authenticated caller) is known, logs it through sink. f,
// optional, is what the request was already known to be (features filled
// before the rule filter); without it the row names the caller's tenant.
func (s *Server) refuse(w http.ResponseWriter, e *APIError, id string, cl *caller, f *decision.Features) {
	s.noteRefusal(e, id, cl, f)
	s.reject(w, e)
}

// noteRefusal counts a refusal already answered and logs it as refuse
// says, on any transport.
func (s *Server) noteRefusal(e *APIError, id string, cl *caller, f *decision.Features) {
	code := ""
	if e.Code != nil {
		code = *e.Code
	}
	s.refused.WithLabelValues(code).Inc()
	if cl == nil || s.refusals == nil {
		return
	}
	if !s.refused.rows.Allow() {
		s.refused.unlogged.WithLabelValues(code).Inc()
		return
	}
	rec := decision.Record{Time: s.now()}
	rec.Request.ID = id
	if f != nil {
		rec.Request.Features = *f // the sink copies what it keeps
	} else {
		tenant := cl.tenant
		if tenant == "" {
			tenant = cl.key
		}
		rec.Request.Features = decision.Features{Tenant: tenant, Time: rec.Time}
	}
	p := s.core.Policy()
	rec.Decision = decision.Decision{Policy: p.Name(), PolicyVersion: policy.VersionOf(p), Reason: code, Chosen: -1}
	rec.Outcome = decision.Outcome{Status: decision.StatusRefused}
	s.refusals.Log(&rec)
}
