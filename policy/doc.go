// Package policy holds routelab's routing policies: the Policy interface,
// the registry that builds policies by name, and the policies themselves
// (random, the seed's weighted score, ε-greedy, UCB1, Thompson sampling).
//
// A policy sees a request's Features and the candidate Arms that survived
// the rule filter, fills the probability of every candidate, and returns the
// chosen index:
//
//	probs := make([]float64, len(cands))
//	i, err := p.Select(ctx, &f, cands, probs)
//	// ... act on cands[i], observe a reward in [0,1] ...
//	err = p.Update(&f, cands, i, reward)
//
// Policies key what they learn by Arm.ID, so candidate sets may change from
// one request to the next. Every policy is safe for concurrent use and owns
// its random stream (seeded, never global), so runs are reproducible.
//
// This package imports nothing else of routelab: the decision core (package
// route) depends on it, never the reverse.
package policy
