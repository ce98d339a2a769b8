package decision

import (
	"fmt"
	"math"
	"time"
)

// Status is how an attempt or a request ended. The zero value is StatusOK.
type Status uint8

const (
	StatusOK          Status = iota // answered
	StatusError                     // provider error (5xx, malformed answer, cut stream)
	StatusRateLimited               // 429 from the provider or a local limit
	StatusTimeout                   // deadline exceeded
	// StatusRefused: the request was refused before any attempt (a rate
	// limit, a rule leaving no model, a bad request). Its record has no
	// candidates (Decision.Chosen is -1) and Decision.Reason holds the
	// refusal's error code ("no_model_available", "rate_limit_exceeded",
	// ...). Nothing was decided, so learning from logs skips such rows.
	StatusRefused
)

var statusNames = [...]string{"ok", "error", "rate_limited", "timeout", "refused"}

// String returns the status's log name ("ok", "error", "rate_limited",
// "timeout", "refused").
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ParseStatus is the inverse of Status.String.
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if n == s {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("unknown status %q", s)
}

// Failed reports whether s is anything but StatusOK.
func (s Status) Failed() bool { return s != StatusOK }

// Attempt is one call to one arm within a request's fallback chain.
type Attempt struct {
	Arm      string
	Status   Status
	Latency  time.Duration
	Fallback int // 0 for the chosen arm, 1.. for fallbacks in order
}

// Outcome is what acting on a decision produced. The zero value is a
// successful, instantaneous, free answer of unknown quality.
type Outcome struct {
	// Arm is the arm that produced the final answer (or the last one tried).
	Arm    string
	Status Status
	// Latency is the end-to-end time; TTFT the time to the first token.
	Latency, TTFT time.Duration
	TokensIn      int
	TokensOut     int
	// Cost is the price of the whole request in US dollars.
	Cost float64
	// Quality in [0,1] is valid only when QualityKnown.
	Quality      float64
	QualityKnown bool
	// Attempts is the fallback chain, first attempt first.
	Attempts []Attempt
}

// RewardSource says where a logged reward came from.
type RewardSource uint8

const (
	RewardImmediate RewardSource = iota // computed from the outcome at once
	RewardDelayed                       // quality arrived later as feedback
	RewardDefault                       // feedback never came; configured default
)

var rewardSourceNames = [...]string{"immediate", "delayed", "default"}

// String returns "immediate", "delayed" or "default".
func (r RewardSource) String() string {
	if int(r) < len(rewardSourceNames) {
		return rewardSourceNames[r]
	}
	return fmt.Sprintf("source(%d)", uint8(r))
}

// ParseRewardSource is the inverse of RewardSource.String.
func ParseRewardSource(s string) (RewardSource, error) {
	for i, n := range rewardSourceNames {
		if n == s {
			return RewardSource(i), nil
		}
	}
	return 0, fmt.Errorf("unknown reward source %q", s)
}

// Reward turns an outcome into a scalar in [0,1]:
//
//	r = clamp01( Quality·q + Cost·1/(1+cost/CostRef) + Latency·1/(1+latency/LatencyRef) − Lambda·cost − Failure·failed )
//
// where the Quality, Cost and Latency weights are used as given (they
// should sum to 1 for r to span [0,1]), q is the outcome's quality (or
// UnknownQuality when not known, and 0 for a failure). Each term is bounded,
// so the reward suits Beta-Bernoulli Thompson sampling.
//
// Lambda is a willingness to pay: the reward drops by Lambda per US dollar
// spent, so {Quality: 1, Lambda: λ} (other weights 0) is the cost-aware
// objective quality − λ·cost of the routing literature (clamped to [0,1]).
//
// The zero Reward means DefaultReward().
type Reward struct {
	Quality, Cost, Latency, Failure float64
	// CostRef is the cost in dollars that halves the cost term; LatencyRef
	// the latency that halves the latency term.
	CostRef    float64
	LatencyRef time.Duration
	// UnknownQuality stands in for q when the outcome's quality is unknown.
	UnknownQuality float64
	// Lambda is the reward lost per US dollar of cost (0 = none).
	Lambda float64
}

// DefaultReward: quality 0.6, cost 0.2 (CostRef $0.002), latency 0.2
// (LatencyRef 2s), failure 1 (a failed request earns 0), unknown quality 0.5.
func DefaultReward() Reward {
	return Reward{Quality: 0.6, Cost: 0.2, Latency: 0.2, Failure: 1, CostRef: 0.002, LatencyRef: 2 * time.Second, UnknownQuality: 0.5}
}

// OrDefault returns r, or DefaultReward() when r is the zero Reward.
func (r Reward) OrDefault() Reward {
	if r == (Reward{}) {
		return DefaultReward()
	}
	return r
}

// Validate reports a weight or reference that cannot be used, naming it.
func (r Reward) Validate() error {
	r = r.OrDefault()
	for _, w := range []struct {
		name string
		v    float64
	}{{"quality", r.Quality}, {"cost", r.Cost}, {"latency", r.Latency}, {"failure", r.Failure}, {"lambda", r.Lambda}} {
		if w.v < 0 || math.IsNaN(w.v) || math.IsInf(w.v, 0) {
			return fmt.Errorf("reward weight %s: %v must be a finite number >= 0", w.name, w.v)
		}
	}
	if r.Quality+r.Cost+r.Latency == 0 {
		return fmt.Errorf("reward weights quality, cost and latency are all zero")
	}
	if r.CostRef <= 0 || math.IsNaN(r.CostRef) || math.IsInf(r.CostRef, 0) {
		return fmt.Errorf("reward cost_ref: %v must be > 0", r.CostRef)
	}
	if r.LatencyRef <= 0 {
		return fmt.Errorf("reward latency_ref: %v must be > 0", r.LatencyRef)
	}
	if r.UnknownQuality < 0 || r.UnknownQuality > 1 || math.IsNaN(r.UnknownQuality) {
		return fmt.Errorf("reward unknown_quality: %v outside [0,1]", r.UnknownQuality)
	}
	return nil
}

// Of returns the reward of o.
func (r Reward) Of(o *Outcome) float64 {
	r = r.OrDefault()
	return r.of(o)
}

// of is Of for a Reward already resolved by OrDefault; the decision core
// calls it on every request, so it skips the zero check and the copies.
func (r *Reward) of(o *Outcome) float64 {
	q := r.UnknownQuality
	if o.QualityKnown {
		q = o.Quality
	}
	failed := 0.0
	if o.Status.Failed() {
		q, failed = 0, 1
	}
	return r.terms(q, o.Cost, o.Latency, failed)
}

// Terms is the reward formula on its inputs; failed is 0 or 1 (or, for an
// expectation, the failure probability, though the clamp makes that an
// approximation).
func (r Reward) Terms(quality, cost float64, latency time.Duration, failed float64) float64 {
	r = r.OrDefault()
	return r.terms(quality, cost, latency, failed)
}

func (r *Reward) terms(quality, cost float64, latency time.Duration, failed float64) float64 {
	v := r.Quality*quality +
		r.Cost/(1+cost/r.CostRef) +
		r.Latency/(1+latency.Seconds()/r.LatencyRef.Seconds()) -
		r.Lambda*cost -
		r.Failure*failed
	// Clamp to [0,1]; NaN passes through as math.Min/Max would pass it.
	if v <= 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// ForDecision is the reward credited to d's chosen arm for outcome o: the
// outcome's reward when the chosen arm answered (also after same-model
// retries), and a failure's reward (with the chosen arm's own first-attempt
// latency) when its first attempt failed and then a fallback had to answer
// instead, or nothing answered. The decision core and the log reader's
// delayed-reward join both use it.
func (r Reward) ForDecision(d *Decision, o *Outcome) float64 {
	r = r.OrDefault()
	return r.forDecision(d, o)
}

// forDecision is ForDecision on a Reward whose defaults are resolved.
func (r *Reward) forDecision(d *Decision, o *Outcome) float64 {
	n := len(o.Attempts)
	if n > 1 && len(d.Candidates) > 0 {
		chosen, first := d.Arm().ID, &o.Attempts[0]
		// The last attempt produced the answer (or was the last one tried).
		if first.Arm == chosen && first.Status.Failed() && (o.Status.Failed() || o.Attempts[n-1].Arm != chosen) {
			return r.terms(0, 0, first.Latency, 1)
		}
	}
	return r.of(o)
}
