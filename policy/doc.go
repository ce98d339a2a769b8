// Package policy holds routelab's routing policies: the Policy interface,
// the registry that builds policies by name, the policies themselves, the
// feature encoder for contextual ones, the exploration floor, a buffer for
// delayed rewards, and versioned snapshots of learned state.
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
// # Policies
//
// Build them by spec through a Registry ("NAME" or "NAME=key:value;..."):
//
//	reg := policy.NewBuiltinRegistry()
//	p, err := reg.NewFromString("linucb=alpha:0.5;floor:0.05")
//
//	random          uniform; the safest logging policy
//	weighted        the seed's weighted score on live profiles (deterministic)
//	epsilon-greedy  best mean, uniform with probability epsilon
//	ucb1            UCB1 (deterministic)
//	thompson        Beta-Bernoulli or Gaussian Thompson sampling
//	softmax         Boltzmann exploration; exact, smooth propensities
//	sw-ucb          sliding-window UCB (non-stationary, deterministic)
//	d-ucb           discounted UCB (non-stationary, deterministic)
//	d-thompson      discounted Thompson, Beta or Gaussian (non-stationary)
//	linucb          disjoint LinUCB on Features.Vector (deterministic)
//	lin-thompson    linear Thompson sampling on Features.Vector
//	egreedy-ridge   ε-greedy over per-arm ridge regressions
//
// `routelab policies` lists their parameters and defaults. The
// sliding-window and discounted policies count time in rewards received,
// not decisions. Every factory takes "seed"; every spec also takes "floor".
//
// The contextual policies keep, per arm, A = λI + Σxxᵀ, b = Σrx, A⁻¹ and
// θ = A⁻¹b. An update changes A⁻¹ by Sherman–Morrison and θ by the matching
// O(d) correction; every "refactor" updates (default 1000) A⁻¹ and θ are
// recomputed from A and b through a Cholesky factorisation (gonum), so
// rounding cannot accumulate over millions of updates. Select reads only
// the non-zero entries of x (one-hot encodings are sparse); for d = 32,
// K = 8 it costs well under the 5 µs budget (see the benchmarks). Linear
// Thompson sampling draws the scalar θ̃ₐ·x ~ N(θₐ·x, v²xᵀAₐ⁻¹x) per arm,
// which has exactly the decision distribution of drawing θ̃ₐ from its
// multivariate posterior, without a Cholesky factor of A⁻¹ (see
// LinThompson). With "gamma" < 1 the linear policies forget: every reward
// received multiplies all arms' data by gamma (D-LinUCB), which on the
// simulator's drift-contextual scenario cuts LinUCB's regret by half and
// linear Thompson's by three quarters (gamma = 0.9998); linModel.update
// explains how A⁻¹ follows in O(d²). A vector of the wrong length, or with NaN/Inf entries, is an
// ErrBadVector error naming both dimensions; the dimension is fixed by the
// "dim" parameter or by the first vector seen.
//
// Spend budgets: Budget enforces a BudgetSpec (a mean per-request limit
// and/or a limit per window, per tenant) with a dual price per tenant
// that a cost-aware policy adds to its λ. LinearRouter charges its
// predicted cost at Select; the decision core reports the realised cost
// of every completed request through SpendObserver, which replaces it.
// Budgeted policies take a budget after they are built (gateway config,
// scenario).
//
// # Propensities and the exploration floor
//
// Select reports the probability of every candidate. Deterministic policies
// report 1/0; randomised ones report exact probabilities (ε-greedy, softmax,
// Thompson with draws > 1) or, for one-draw Thompson, the probability given
// their internal posterior draw. Any spec with "floor:EPS" (or WithFloor in
// code) wraps the policy so that every candidate has probability at least
// EPS/K: with probability EPS it plays uniformly, otherwise the inner
// policy's choice, and reports pᵢ = EPS/K + (1−EPS)·qᵢ. Floor explains why
// the inner's conditional q is valid for inverse propensity scoring. The
// wrapped policy keeps its Name; its Version gains "+floor:EPS".
//
// # Changing candidate sets
//
// The rule filter or a tripped breaker may remove arms from one request to
// the next. Every policy keys its statistics by Arm.ID, never by position,
// and its propensities always cover exactly the candidates passed in (UCB's
// "total plays" are those of the current candidates). Arms seen for the
// first time start from the prior.
//
// # Delayed rewards
//
// Update may be called late, out of order, or never. The decision core
// (route.Core, its pending store) holds decisions awaiting delayed
// feedback by request id and calls Update exactly once per routed
// decision. The stationary and linear policies' statistics are sums, so
// their state does not depend on arrival order.
//
// # Snapshots
//
// Every policy implements Snapshotter. Snapshot writes one JSON object:
//
//	{
//	  "format":  "routelab/policy-snapshot",
//	  "version": 1,
//	  "policy":  "linucb",                 // registry name
//	  "params":  {"alpha": "1", ...},      // registry parameters, without seed
//	  "state":   { ... }                   // per policy, below
//	}
//
// The state objects are:
//
//	random                 {"rng"}
//	weighted               {}
//	epsilon-greedy,softmax {"rng", "arms"}
//	ucb1, d-ucb            {"arms"}
//	thompson, d-thompson   {"rng", "arms"}
//	sw-ucb                 {"arms", "window": [[arm index, reward], ...] oldest first, "since"}
//	linucb                 {"model"}
//	lin-thompson,
//	egreedy-ridge          {"rng", "model"}
//	any with floor         {"rng", "inner": <the inner policy's complete snapshot>}
//
// where "rng" is the policy's PCG generator state (math/rand/v2
// MarshalBinary, base64), "arms" is [{"id", "n", "sum", "sum_sq"}] (counts
// and sums, discounted for d-ucb/d-thompson, windowed for sw-ucb), and
// "model" is {"dim", "clock", "arms": [{"id", "n", "since", "clock",
// "lambda_eff", "a", "a_inv", "b", "theta"}]} with A and A⁻¹ as full
// row-major d×d arrays; "clock" counts rewards and, with "lambda_eff",
// describes the discount state of policies with gamma < 1 (A⁻¹ inverts
// A − (λ − lambda_eff)·I; for gamma = 1 lambda_eff is λ and clocks are 0). Floats are written
// in Go's shortest exact form, so a snapshot restores bit for bit: the
// restored policy makes the same decisions as the original would have.
//
// Restore rejects — with an error wrapping ErrSnapshot and naming the
// problem — another format or version, another policy, different parameters,
// unknown fields, trailing data, non-finite or negative statistics, matrices
// of the wrong size, an A⁻¹ that is not the inverse of A, and an invalid
// generator state. It validates everything before touching the policy, so a
// failed Restore changes nothing. Load (and LoadFile) build the named policy
// from a registry with the snapshot's parameters and restore it; SaveFile
// writes atomically (temporary file, fsync, rename).
//
// # Merging replicas' statistics
//
// Policies whose learned state is a sum over rewards implement Mergeable
// (AsMergeable unwraps floors): the arm-table policies (epsilon-greedy,
// ucb1, softmax, thompson) and the linear ones with gamma 1. TakeDelta
// returns what Update added since the previous call as Stats — named sums
// ("n:ID", "s:ID", "q:ID"; "a:I:J:ID", "b:I:ID", "!dim" for the linear
// policies) — and SetShared installs totals summed over replicas plus the
// delta learned since, so replicas merge by adding deltas in any order
// (package sharedstate does it through Redis). Discounted and windowed
// policies are not mergeable: their state depends on the order of rewards.
//
// # Features for contextual policies
//
// Contextual policies read Features.Vector. FeatureEncoder fills it from
// the named fields. Every caller — simulator, gateway, datasets, experiments,
// training — builds its encoder the same way: an EncoderSpec (serialisable,
// YAML and JSON, with a layout Version, EncoderSpecVersion) passed to the one
// constructor NewEncoder. DefaultEncoderSpec(tasks) is the default (intercept,
// task, DefaultTokenBuckets, four hour buckets, DefaultTenantBuckets hashed
// tenant slots); the gateway config and a sim scenario may carry an
// `encoder:` block of the same schema instead. FeatureEncoder.Spec returns
// the spec (Version set) for saving beside a model; EncoderSpec.Canonical
// and Equal compare two specs. The vector concatenates blocks in a fixed
// order — intercept, task, tokens, hour, cyclic time, tenant, tags, crosses,
// text:
//
//   - intercept: one slot, always 1, so a linear model has a per-arm bias.
//   - task: one-hot over EncoderSpec.Tasks plus a final "other" slot that
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
//   - tenant: TenantBuckets slots, slot TenantHash(tenant) % TenantBuckets
//     set, where TenantHash is 32-bit FNV-1a (unseeded, so every process
//     agrees); an empty tenant leaves the block 0. Tenants are always
//     hashed, never one-hot over a list, so the simulator and the gateway
//     encode them alike and a new tenant needs no new slot.
//   - tags: one indicator per listed tag, set when Features.Tags contains
//     exactly that string; unlisted tags are ignored.
//   - crosses: for each EncoderSpec.Crosses entry (two or more of task,
//     tokens, hour, tenant), one-hot over the product of those blocks, the
//     last block varying fastest ("task=code&tokens>2048&hour=18-24"); 0
//     when any of its blocks is 0. Crosses let a linear policy learn
//     interactions: on the simulator's tasks-nonlinear scenario LinUCB
//     reaches 84% of the oracle with additive blocks and 99.9% with
//     task×tokens×hour crossed.
//   - text (EncoderSpec.Text, version 2): the prompt text's hashed word and
//     character n-grams, TF-IDF weighted with an IDF fitted offline
//     (FitTextIDF) and stored in the spec, L2-normalised, plus length,
//     digit, code, math and language markers (TextMarkerNames); Encode
//     reads Features.Prompt without allocating. NeedsPrompt tells callers
//     whether to fill Features.Prompt at all.
//
// Names() labels every slot ("task=code", "tokens<=512", ...). Encode
// allocates only when dst's capacity is below Dim(), so the decision core
// reuses one buffer per request.
//
// This package imports nothing else of routelab: the decision core (package
// route) depends on it, never the reverse.
package policy
