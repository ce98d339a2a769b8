package replay

import (
	"fmt"
	"strings"
)

// Estimator names an off-policy estimator. See the package documentation
// for the formulas.
type Estimator string

// The estimators, in display order.
const (
	Replay     Estimator = "replay"      // Li et al. (2011) rejection replay
	IPS        Estimator = "ips"         // inverse propensity scoring
	ClippedIPS Estimator = "clipped-ips" // IPS with weights capped at Opts.Clip
	SNIPS      Estimator = "snips"       // self-normalised IPS
	DM         Estimator = "dm"          // direct method (reward model only)
	DR         Estimator = "dr"          // doubly robust
	SNDR       Estimator = "sndr"        // self-normalised doubly robust
	SwitchDR   Estimator = "switch-dr"   // DR correction only where weight <= Opts.Tau
	DROS       Estimator = "dr-os"       // DR with optimistic shrinkage (Opts.Lambda)
	// OnPolicy is the logging policy's own value, the mean logged reward:
	// the first Result of every evaluation (Policy LoggedPolicy). It is not
	// one of AllEstimators and cannot be requested.
	OnPolicy Estimator = "on-policy"
)

// AllEstimators returns every estimator in display order.
func AllEstimators() []Estimator {
	return []Estimator{Replay, IPS, ClippedIPS, SNIPS, DM, DR, SNDR, SwitchDR, DROS}
}

// NeedsModel reports whether e uses the reward model.
func (e Estimator) NeedsModel() bool {
	switch e {
	case DM, DR, SNDR, SwitchDR, DROS:
		return true
	}
	return false
}

func (e Estimator) valid() bool {
	for _, k := range AllEstimators() {
		if e == k {
			return true
		}
	}
	return false
}

// ParseEstimators reads "all" or a comma-separated list of estimator names
// ("ips,snips,dr"). Duplicates are an error.
func ParseEstimators(s string) ([]Estimator, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return AllEstimators(), nil
	}
	var out []Estimator
	seen := map[Estimator]bool{}
	for _, part := range strings.Split(s, ",") {
		e := Estimator(strings.ToLower(strings.TrimSpace(part)))
		if e == "" {
			continue
		}
		if !e.valid() {
			names := make([]string, 0, 9)
			for _, k := range AllEstimators() {
				names = append(names, string(k))
			}
			return nil, fmt.Errorf("estimators %q: unknown estimator %q (known: all, %s)", s, e, strings.Join(names, ", "))
		}
		if seen[e] {
			return nil, fmt.Errorf("estimators %q: %q listed twice", s, e)
		}
		seen[e] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("estimators %q: none named", s)
	}
	return out, nil
}
