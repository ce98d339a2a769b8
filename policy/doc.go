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
// # Features for contextual policies
//
// Contextual policies read Features.Vector. FeatureEncoder (built from
// EncoderOpts) fills it from the named fields, by concatenating blocks in a
// fixed order — intercept, task, tokens, hour, cyclic time, tenant, tags:
//
//   - intercept: one slot, always 1, so a linear model has a per-arm bias.
//   - task: one-hot over EncoderOpts.Tasks plus a final "other" slot that
//     unlisted and empty tasks share.
//   - tokens: one-hot over len(TokenBuckets)+1 size buckets; slot i is set
//     when PromptTokens <= TokenBuckets[i] (the first bound that fits), the
//     last slot takes larger prompts; unknown size (0) leaves the block 0.
//     With geometric bounds (DefaultTokenBuckets: 128, 512, 2k, 8k, 32k) the
//     buckets are equal-width in log(tokens).
//   - hour: HourBuckets equal one-hot slots of the UTC day; unknown time (the
//     zero Time) leaves the block 0.
//   - cyclic time: sin and cos of 2π·(seconds since UTC midnight)/86400, so
//     23:59 and 00:00 are neighbours; unknown time gives 0, 0.
//   - tenant: one-hot over Tenants plus an "other" slot, or (for open tenant
//     sets) TenantBuckets slots chosen by the 32-bit FNV-1a hash of the
//     tenant modulo TenantBuckets; an empty tenant leaves hashed slots 0.
//   - tags: one indicator per listed tag, set when Features.Tags contains
//     exactly that string; unlisted tags are ignored.
//
// Names() labels every slot ("task=code", "tokens<=512", ...). Encode
// allocates only when dst's capacity is below Dim(), so the decision core
// reuses one buffer per request.
//
// This package imports nothing else of routelab: the decision core (package
// route) depends on it, never the reverse.
package policy
