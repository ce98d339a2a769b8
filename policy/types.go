package policy

import (
	"context"
	"errors"
	"time"
)

// Features describe one request as the policy sees it. The zero value is a
// valid, context-free request: no tenant, no task, unknown size and time.
type Features struct {
	// Tenant is the caller's tenant or team; empty means unknown.
	Tenant string
	// Task is the task type ("code", "chat", "math", ...); empty means unknown.
	Task string
	// PromptTokens is the estimated prompt size in tokens; 0 means unknown.
	PromptTokens int
	// Time is when the request arrived (virtual time in the simulator). The
	// zero Time means unknown; policies use it for time-of-day effects.
	Time time.Time
	// Tags are caller-supplied labels ("key=value"), in any order.
	Tags []string
	// Vector is the dense feature vector used by contextual policies. Its
	// length must match the policy's dimension; nil for context-free policies.
	Vector []float64
}

// Hour returns the hour of day (0-23) of f.Time in UTC, or -1 when unknown.
func (f *Features) Hour() int {
	if f == nil || f.Time.IsZero() {
		return -1
	}
	return f.Time.UTC().Hour()
}

// Arm is one candidate model. ID is unique within a catalogue; policies key
// their learned statistics by it, so candidate sets may change per request.
//
// The profile fields (LatencyMS, Quality, ErrorRate) are live estimates
// filled in by the caller's model profile library; zero means unknown.
type Arm struct {
	ID       string
	Provider string
	// PriceIn and PriceOut are US dollars per 1,000 input / output tokens.
	PriceIn, PriceOut float64
	// ContextWindow is the model's maximum context in tokens; 0 = unlimited.
	ContextWindow int

	// LatencyMS is the recent (EWMA) end-to-end latency in milliseconds.
	LatencyMS float64
	// Quality is the expected answer quality in [0,1].
	Quality float64
	// ErrorRate is the recent failure rate in [0,1].
	ErrorRate float64
}

// Policy chooses among candidates and learns from rewards. Implementations
// are safe for concurrent use.
type Policy interface {
	// Name is the policy's registry name, e.g. "thompson".
	Name() string
	// Select fills probs[i] with the probability of choosing cands[i]
	// (summing to 1) and returns the chosen index. probs is the caller's
	// buffer with len(probs) >= len(cands), so the hot path need not
	// allocate.
	Select(ctx context.Context, f *Features, cands []Arm, probs []float64) (int, error)
	// Update reports the reward of a past choice of cands[chosen] for f. It
	// may arrive late or out of order.
	Update(f *Features, cands []Arm, chosen int, reward float64) error
}

// Versioner is implemented by policies whose learned state or parameters
// carry a version worth logging beside the name.
type Versioner interface {
	Version() string
}

// VersionOf returns p's version, or "1" when p does not report one.
func VersionOf(p Policy) string {
	if v, ok := p.(Versioner); ok {
		return v.Version()
	}
	return "1"
}

// Errors shared by all policies; wrap them with the offending input.
var (
	ErrNoCandidates  = errors.New("no candidates")
	ErrProbsTooShort = errors.New("probs buffer shorter than candidates")
	ErrBadReward     = errors.New("reward is NaN, infinite or beyond ±1e100")
	ErrBadChosen     = errors.New("chosen index out of range")
)

// Encoder builds the dense feature vector of a request from its named
// fields (task, tokens, time of day, tenant, tags) for contextual policies.
// The decision core calls it before Select when one is configured.
type Encoder interface {
	// Dim is the length of the vectors Encode produces.
	Dim() int
	// Encode writes f's vector into dst (reusing its capacity) and returns it.
	Encode(f *Features, dst []float64) []float64
}
