package policy

import (
	"context"
	"errors"

	"github.com/routelab/routelab/decision"
)

// Policy chooses among candidates and learns from rewards. Implementations
// are safe for concurrent use.
type Policy interface {
	// Name is the policy's registry name, e.g. "thompson".
	Name() string
	// Select fills probs[i] with the probability of choosing cands[i]
	// (summing to 1) and returns the chosen index. probs is the caller's
	// buffer with len(probs) >= len(cands), so the hot path need not
	// allocate.
	Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error)
	// Update reports the reward of a past choice of cands[chosen] for f. It
	// may arrive late or out of order.
	Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error
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
	Encode(f *decision.Features, dst []float64) []float64
}
