package datasets

import "math"

// HullStrongShare is StrongShare for the fixed models' hull: the share of
// prompts sent to the strongest model by the cheapest randomisation
// between fixed models whose performance gap recovered reaches level.
// With two models the hull is RouteLLM's random router, which sends a
// share s of prompts to the strong model and recovers s of the gap, so
// the figure is level itself. NaN when the strongest model is not better
// than the cheapest.
func HullStrongShare(fixed []Point, level float64) float64 {
	strong, cheap := Strongest(fixed)
	qs, qw := fixed[strong].Quality, fixed[cheap].Quality
	if !(qs > qw) {
		return math.NaN()
	}
	target := qw + level*(qs-qw)
	h := Frontier(fixed)
	isStrong := func(p Point) float64 {
		if p.Cost == fixed[strong].Cost && p.Quality == qs {
			return 1
		}
		return 0
	}
	if h[0].Quality >= target {
		return isStrong(h[0])
	}
	for i := 1; i < len(h); i++ {
		a, b := h[i-1], h[i]
		if b.Quality >= target {
			t := (target - a.Quality) / (b.Quality - a.Quality) // share of b
			return (1-t)*isStrong(a) + t*isStrong(b)
		}
	}
	return math.NaN()
}
