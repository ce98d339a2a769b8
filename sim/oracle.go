package sim

import (
	"math"
	"time"

	"github.com/routelab/routelab/decision"
)

// The oracle and the actor share one model of a request on an arm, so the
// expected reward the oracle reports is the mean of what the actor draws:
//
//   - outage (modifier): fails with the outage's status at once (fail_fast
//     latency, or the timeout for a "timeout" outage);
//   - rate limit: a request that finds the token bucket below 1 gets
//     StatusRateLimited after fail_fast;
//   - otherwise the request waits W for a free server (FIFO queue over
//     Capacity servers, known at arrival) and is served in
//     S = latency_multiplier·(X + prompt·per_prompt_token + completion·per_output_token)
//     with X log-normal(median, sigma); latency L = W + S. L > timeout is
//     StatusTimeout (latency = timeout); else with probability error_rate
//     StatusError (latency L); else an answer of quality Bernoulli(q),
//     cost (prompt·price_in + completion·price_out)/1000·price_multiplier.
//     Failed requests cost nothing.
//
// The expectation over X uses 12-node Gauss–Hermite quadrature (nodes
// cached per arm) while the timeout lies more than 5 sigma out: accurate to
// 1e-9 (sigma <= 1) or 1e-6 (sigma 1.5) for the smooth latency term, with
// the mass past the timeout (< 3e-7) counted at the nodes beyond it. When
// the timeout cuts the distribution closer in (a long queue, a heavy
// tail), the tail beyond the cut is the exact normal tail probability and
// the body is 32-node Gauss–Legendre: slower, equally accurate.
// TestQuadratureIsPrecise and TestQuadratureMatchesMonteCarlo check both
// paths. Everything else — queue wait, bucket, outage, quality, price — is
// a known function of the state at arrival, so the expectation is
// otherwise exact. The oracle is myopic: it values each request against
// the providers' state at that moment (which earlier choices shaped), not
// against a counterfactual history.

// rewardCoef is a decision.Reward unpacked for the inner loops.
type rewardCoef struct {
	wq, wc, wl, wf float64
	cref, lref     float64 // dollars, seconds
	invLref        float64
	// linear: the weights keep an answer's reward within [0,1] unclamped
	// and a failure's at 0, as the default weights do.
	linear bool
}

func newRewardCoef(r decision.Reward) rewardCoef {
	c := rewardCoef{wq: r.Quality, wc: r.Cost, wl: r.Latency, wf: r.Failure, cref: r.CostRef, lref: r.LatencyRef.Seconds()}
	c.invLref = 1 / c.lref
	c.linear = c.wq+c.wc+c.wl <= 1 && c.wf >= c.wc+c.wl
	return c
}

func clamp01(v float64) float64 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// fail is the reward of a failed request with latency l (seconds): quality
// 0 and cost 0, as decision.Reward.Of computes it.
func (c *rewardCoef) fail(l float64) float64 {
	return clamp01(c.wc + c.wl/(1+l/c.lref) - c.wf)
}

// answered is the expected reward of a request that did not time out,
// with latency l (seconds): an error with probability e, else an answer of
// quality Bernoulli(q) at the given cost term.
func (c *rewardCoef) answered(l, q, e, costTerm float64) float64 {
	lt := c.wl / (1 + l/c.lref)
	ok := q*clamp01(c.wq+costTerm+lt) + (1-q)*clamp01(costTerm+lt)
	return (1-e)*ok + e*clamp01(c.wc+lt-c.wf)
}

// expected is the expected reward of sending r to a (with effective
// parameters p) at r.t.
func (c *rewardCoef) expected(w *world, a *arm, p *params, r *request) float64 {
	if p.hasOutage {
		if p.outage == decision.StatusTimeout {
			return c.fail(w.timeout)
		}
		return c.fail(a.failFast)
	}
	if a.rl && a.bucket(r.t) < 1 {
		return c.fail(a.failFast)
	}
	wait := a.wait(r.t)
	b := float64(r.prompt)*a.perIn + float64(r.compl)*a.perOut
	cost := (float64(r.prompt)*a.priceIn + float64(r.compl)*a.priceOut) * p.priceMul
	costTerm := c.wc / (1 + cost/c.cref)
	q, e := p.quality, p.errRate
	if wait+p.latMul*(a.tail5+b) <= w.timeout || a.sigma == 0 {
		// The timeout lies beyond 5 sigma of the latency (probability
		// < 3e-7): Gauss–Hermite on the integrand, where the far nodes
		// past the timeout count as timeouts. (With sigma 0 all nodes
		// coincide: exact.)
		shift := wait + p.latMul*b
		if c.linear {
			// No clamp can bind and a failure earns 0: the reward is
			// linear in the latency term, so only that is integrated.
			var pOK, lat float64
			for i := range a.nodes {
				l := shift + p.latMul*a.nodes[i]
				if l <= w.timeout {
					pOK += w.qw[i]
					lat += w.qw[i] / (1 + l*c.invLref)
				}
			}
			return (1 - e) * ((q*c.wq+costTerm)*pOK + c.wl*lat)
		}
		var sum float64
		for i := range a.nodes {
			l := shift + p.latMul*a.nodes[i]
			var v float64
			if l > w.timeout {
				v = c.fail(w.timeout)
			} else {
				v = c.answered(l, q, e, costTerm)
			}
			sum += w.qw[i] * v
		}
		return sum
	}
	// The timeout cuts the latency distribution at z*: the tail beyond it
	// is exact (normal tail), the body is Gauss–Legendre on [z*−12, z*].
	xMax := (w.timeout-wait)/p.latMul - b
	if xMax <= 0 {
		return c.fail(w.timeout)
	}
	zs := (math.Log(xMax) - a.mu) / a.sigma
	tail := 0.5 * math.Erfc(zs/math.Sqrt2)
	sum := tail * c.fail(w.timeout)
	lo := math.Max(zs-12, -12)
	if lo >= zs {
		return sum
	}
	half := (zs - lo) / 2
	for i := range w.lx {
		z := lo + half*(w.lx[i]+1)
		l := wait + p.latMul*(math.Exp(a.mu+a.sigma*z)+b)
		phi := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
		sum += half * w.lw[i] * phi * c.answered(l, q, e, costTerm)
	}
	return sum
}

// act draws the outcome of sending r to arm ai (effective parameters p),
// books the provider's queue and rate limit, and returns the virtual time
// at which the request completes.
func (w *world) act(seed uint64, ai int, p *params, r *request, o *decision.Outcome) (done float64) {
	a := &w.arms[ai]
	o.Arm = a.id
	o.TokensIn = r.prompt
	fail := func(st decision.Status, l float64) float64 {
		o.Status, o.Latency, o.TTFT, o.TokensOut, o.Cost = st, secs(l), 0, 0, 0
		o.Quality, o.QualityKnown = 0, false
		return r.t + l
	}
	if p.hasOutage {
		if p.outage == decision.StatusTimeout {
			return fail(decision.StatusTimeout, w.timeout)
		}
		return fail(p.outage, a.failFast)
	}
	if a.rl {
		tok := a.bucket(r.t)
		a.lastRefill = r.t
		if tok < 1 {
			a.tokens = tok
			return fail(decision.StatusRateLimited, a.failFast)
		}
		a.tokens = tok - 1
	}
	wait := a.wait(r.t)
	x := math.Exp(a.mu + a.sigma*normal(seed, r.idx, ai))
	ttft := p.latMul * (x + float64(r.prompt)*a.perIn)
	service := ttft + p.latMul*float64(r.compl)*a.perOut
	a.occupy(r.t+wait, service)
	l := wait + service
	if l > w.timeout {
		return fail(decision.StatusTimeout, w.timeout)
	}
	if u01(seed, r.idx, ai, drawError) < p.errRate {
		return fail(decision.StatusError, l)
	}
	o.Status = decision.StatusOK
	o.Latency, o.TTFT = secs(l), secs(wait+ttft)
	o.TokensOut = r.compl
	o.Cost = (float64(r.prompt)*a.priceIn + float64(r.compl)*a.priceOut) * p.priceMul
	o.QualityKnown = true
	o.Quality = 0
	if u01(seed, r.idx, ai, drawQuality) < p.quality {
		o.Quality = 1
	}
	return r.t + l
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
