// Package replay estimates, from decision logs, how a policy that did not
// serve the traffic would have done: off-policy evaluation (OPE).
//
// The input is a stream of logged decisions (decision.Record: the request's
// features, the candidate arms, the logging policy's probability μ of every
// candidate, the chosen arm and its reward) from a Source — an in-memory
// Records slice, or offline.LogSource over decision-log files. The target policies are
// evaluated frozen: Evaluate calls their Select on every logged request and
// candidate set to get π(·|x), and never Update.
//
//	res, err := replay.Evaluate(ctx, replay.Records(log),
//		[]replay.Target{{Policy: candidate}},
//		replay.Opts{Estimators: []replay.Estimator{replay.SNIPS, replay.DR}})
//	for _, r := range res {
//		fmt.Println(r.Policy, r.Estimator, r.Value, r.CILow, r.CIHigh, r.ESS)
//	}
//
// # Estimators
//
// Over n logged rows (x_i, a_i, r_i, μ_i), with importance weight
// w_i = π(a_i|x_i)/μ(a_i|x_i), reward model q̂(x, a) and its value under the
// target q̂_π(x) = Σ_a π(a|x)·q̂(x, a):
//
//   - replay (Li et al. 2011): keep the rows where the target would have
//     made the logged choice — for a stochastic target, weight each row by
//     π(a_i|x_i) — and average their rewards: Σ π(a_i|x_i)·r_i / Σ π(a_i|x_i).
//     Unbiased only for logs from a uniformly random logger over a fixed
//     number of candidates; the result carries a warning when the log is not
//     like that. Use it to reproduce the classic method; prefer snips.
//   - ips: (1/n) Σ w_i·r_i. Unbiased whenever μ > 0 wherever π > 0, but its
//     variance grows with the weights.
//   - clipped-ips: (1/n) Σ min(w_i, M)·r_i with M = Opts.Clip (default ∞,
//     as Open Bandit Pipeline: then it is ips). Trades a downward bias for
//     less variance when a few weights are huge; its interval is one for
//     what it estimates, E[min(w, M)·r], not for the target's value.
//   - snips: Σ w_i·r_i / Σ w_i. Self-normalised: slightly biased, far less
//     variance than ips, invariant to a constant shift of the reward; the
//     default choice without a reward model.
//   - dm (direct method): (1/n) Σ q̂_π(x_i). No weights, so low variance,
//     but as biased as the reward model; its interval includes the model's
//     estimation error (the model is refitted in every resample) but not a
//     misspecified model's bias.
//   - dr (doubly robust, Dudík et al. 2011): (1/n) Σ [q̂_π(x_i) +
//     w_i·(r_i − q̂(x_i, a_i))]. Unbiased when the propensities are right,
//     whatever the model; low variance when the model is good. The default
//     choice with features.
//   - sndr: (1/n) Σ q̂_π(x_i) + Σ w_i·(r_i − q̂(x_i, a_i)) / Σ w_i. DR with
//     the correction self-normalised (as in Open Bandit Pipeline); more
//     stable than dr under large weights. When no logged choice has positive
//     target probability (Σ w_i = 0) it is dm.
//   - switch-dr (Wang et al. 2017): (1/n) Σ [q̂_π(x_i) + 1{w_i ≤ τ}·w_i·(r_i
//     − q̂(x_i, a_i))] with τ = Opts.Tau (default ∞: dr): trusts the model
//     alone where the weight is too large to be useful.
//   - dr-os (Su et al. 2020, optimistic shrinkage): DR with w_i replaced by
//     λ·w_i/(w_i² + λ), λ = Opts.Lambda (default 0, as OBP: dm); as λ → ∞ it is dr.
//
// Opts.Tune chooses Clip, Tau and Lambda per target by estimated MSE (bias
// against ips or dr, squared, plus variance), as OBP's tuning does, and
// Result.Param names the value used.
//
// The first Result is always the logging policy's own value (Policy
// LoggedPolicy, Estimator OnPolicy): the mean logged reward, with its
// interval. Opts.Segment adds the same table per segment (task, tenant,
// arm, ...).
//
// # Support
//
// A target that puts probability on an arm the logger gave probability 0
// is an error (ErrMissingSupport) naming the share of rows affected: no
// estimator can see those rewards. Opts.AllowMissingSupport estimates
// anyway, with a warning.
//
// # Reward model
//
// The model-based estimators (dm, dr, sndr, switch-dr, dr-os) use a
// RewardModel, by default Ridge: per arm, ridge regression of the reward on
// the request's dense feature vector, or — for logs without vectors — the
// per-task mean shrunk towards the arm's mean. The model is cross-fitted:
// rows are split into Opts.Folds folds (2 by default) by a hash of the
// request id, and each row is scored by a model trained on the other folds,
// so that DR's correction is not fitted to its own noise. This takes two
// passes over the source; estimators without a model take one.
//
// # Confidence intervals and diagnostics
//
// Intervals are percentile intervals of a Poisson bootstrap (Opts.Bootstrap
// resamples, 200 by default, at Opts.Level, 95%), seeded by Opts.Seed: in
// resample b, row i has weight Poisson(1) drawn from (Seed, i, b), so both
// passes see the same resample while memory stays bounded by the number
// of resamples, not of rows. The reward model is refitted (cross-fitted)
// in every resample from those weights, so the intervals of the
// model-based estimators include the model's estimation error; with the
// model held fixed they covered the truth 5–76% of the time. Over 100
// seeded repetitions (ROUTELAB_COVERAGE_REPS=100 go test -run
// BootstrapCoverage ./replay) every estimator's 95% interval covers in
// 90–98% of them. The cost is Bootstrap reward models and predictions per
// row, except with the default Ridge model on feature vectors and at least
// 50,000 rows: there every row falls in one of 256 random groups (a seeded
// hash of its index), pass 1 keeps the ridge's sufficient statistics
// (Σφφᵀ, Σφr per arm) per group and fold, pass 2 the sums with q̂ = 0 and
// the vectors the model-based sums are linear in (Σπ_a·φ, Σw·φ, ...), and
// resample b weights groups by Poisson(1) counts, refits every fold's
// ridge from the weighted statistics and recomputes every estimator (a
// grouped bootstrap over iid random groups; Result.Interval says so): the
// per-row cost no longer grows with Bootstrap. Intervals are intersected with the reward range [0,1]
// (Result.CIClipped), and an estimate outside it carries a warning;
// Result.Interval names the method. All targets share the bootstrap draws,
// so their intervals are paired.
//
// Each Result also reports the effective sample size (Σw)²/Σw² of the
// weights the estimator uses (blind to a constant weight: read it with the
// mean weight), the largest and the mean importance weight (near 1 when
// the logger covers the target), the share of rows with weight above 10,
// and warnings: missing support
// (the target puts probability on a candidate the logger gave probability
// 0), low overlap, default rewards in the log, and replay's assumptions.
//
// # Bad input
//
// A row without a propensity for every candidate (ErrMissingPropensity), with
// probability 0 on the chosen arm (ErrZeroPropensity), with propensities that
// are not a distribution (ErrBadPropensity), or otherwise malformed
// (ErrBadRow: among others a reward that is NaN or outside [0,1]) stops the evaluation with an error naming the row and request
// id; so does a target whose Select fails or returns invalid probabilities
// (ErrTarget), e.g. on an arm it does not know. Rows are never skipped
// silently. Schema versions are the log reader's business: it must convert
// or reject them before rows reach this package. Forced decisions (the
// caller named the model: one candidate, propensity 1) count with weight 1,
// since the target would have been forced the same way.
//
// # Exports
//
// An Observer sees every row of the evaluation pass with π and q̂; OBPWriter
// writes them as CSV (action, reward, pscore, pi_*, q_*) for cross-checking
// with Open Bandit Pipeline.
//
// # Elsewhere
//
// Learning from the same logs (Train, the feedback join, the log-file
// Source) is package offline; calibration, traces and counterfactual
// re-simulation on the simulator are package sim/fromlogs. Both take a
// replay.Source and validate rows with CheckRecord.
package replay
