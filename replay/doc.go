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
//   - clipped-ips: (1/n) Σ min(w_i, M)·r_i with M = Opts.Clip (default 10).
//     Trades a downward bias for less variance when a few weights are huge.
//   - snips: Σ w_i·r_i / Σ w_i. Self-normalised: slightly biased, far less
//     variance than ips, invariant to a constant shift of the reward; the
//     default choice without a reward model.
//   - dm (direct method): (1/n) Σ q̂_π(x_i). No weights, so low variance,
//     but as biased as the reward model; its interval reflects only the
//     spread of the logged contexts, not the model's error.
//   - dr (doubly robust, Dudík et al. 2011): (1/n) Σ [q̂_π(x_i) +
//     w_i·(r_i − q̂(x_i, a_i))]. Unbiased when the propensities are right,
//     whatever the model; low variance when the model is good. The default
//     choice with features.
//   - sndr: (1/n) Σ q̂_π(x_i) + Σ w_i·(r_i − q̂(x_i, a_i)) / Σ w_i. DR with
//     the correction self-normalised (as in Open Bandit Pipeline); more
//     stable than dr under large weights. When no logged choice has positive
//     target probability (Σ w_i = 0) it is dm.
//   - switch-dr (Wang et al. 2017): (1/n) Σ [q̂_π(x_i) + 1{w_i ≤ τ}·w_i·(r_i
//     − q̂(x_i, a_i))] with τ = Opts.Tau (default 10): trusts the model
//     alone where the weight is too large to be useful.
//   - dr-os (Su et al. 2020, optimistic shrinkage): DR with w_i replaced by
//     λ·w_i/(w_i² + λ), λ = Opts.Lambda (default 100); as λ → ∞ it is dr.
//
// The defaults of Clip, Tau and Lambda matter only when importance weights
// exceed about 10; tune them to the log (MaxWeight in the results).
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
// Intervals are percentile bootstrap intervals (Opts.Bootstrap resamples,
// 200 by default, at Opts.Level, 95%), seeded by Opts.Seed. To keep memory
// bounded on any log size, rows are dealt round-robin into Opts.Buckets
// buckets of running sums (4096 by default) and the bootstrap resamples
// buckets — with fewer rows than buckets this is the ordinary bootstrap of
// rows; with more it is a bootstrap of i.i.d. blocks, asymptotically the
// same. The reward model is held fixed across resamples. All targets share
// the bootstrap draws, so their intervals are paired.
//
// Each Result also reports the effective sample size (Σw)²/Σw² of the
// weights the estimator uses, the largest and the mean importance weight
// (near 1 when the logger covers the target), and warnings: missing support
// (the target puts probability on a candidate the logger gave probability
// 0), low overlap, default rewards in the log, and replay's assumptions.
//
// # Bad input
//
// A row without a propensity for every candidate (ErrMissingPropensity), with
// probability 0 on the chosen arm (ErrZeroPropensity), with propensities that
// are not a distribution (ErrBadPropensity), or otherwise malformed
// (ErrBadRow) stops the evaluation with an error naming the row and request
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
