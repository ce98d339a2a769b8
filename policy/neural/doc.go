// Package neural is routelab's contextual neural policy: NeuralLinear
// (Riquelme, Tucker & Snoek 2018, "Deep Bayesian Bandits Showdown"), a
// reward network trained with gorgonia whose last hidden layer feeds exact
// per-arm Bayesian linear regressions, served by a hand-written forward
// pass over the exported weights.
//
//	reg := policy.NewBuiltinRegistry()
//	for _, b := range neural.Builtins() {
//		reg.MustRegister(b.Name, b.Doc, b.Factory)
//	}
//	p, err := reg.NewFromString("neural-linear=explore:thompson;hidden:64x32")
//	i, err := p.Select(ctx, &f, cands, probs) // f.Vector from a policy.FeatureEncoder
//	err = p.Update(&f, cands, i, reward)
//
// # Architecture
//
// The network maps Features.Vector x through ReLU layers (Opts.Hidden,
// default 64 then 32) to a representation z(x), and has one linear head per
// arm, ŷₐ = wₐ·z + cₐ — per-arm heads rather than a one-hot arm input, so
// that z describes the request alone and every arm's regression reads the
// same features. Arms are keyed by Arm.ID; an arm first seen gets a head at
// the next training round (zero-initialised) and until then its prior.
//
// Training minimises the weighted squared error of the played arm's head
// (the other heads are masked out) with Adam on minibatches drawn with
// replacement from a replay buffer of the last Opts.Buffer rewards. Each
// round builds its own gorgonia graph and tape machine and closes it: one
// VM per training call, never shared. Initial weights are He-uniform, drawn
// from the policy's seeded stream (gorgonia's own initialisers seed from the
// wall clock), and loaded into the tensors, so runs are reproducible.
//
// Exploration is Bayesian linear regression on φ = [z(x); 1] per arm, with
// prior mean the arm's trained head and precision Opts.Lambda:
// A = λI + Σφφᵀ, b = λ·head + Σrφ, θ = A⁻¹b. Thompson (default) draws
// θ̃·φ ~ N(θ·φ, Scale²·φᵀA⁻¹φ) per candidate and plays the best draw — the
// scalar draw has exactly the decision distribution of drawing the whole
// θ̃ — and reports propensity 1 for the winner given the draw, 0 elsewhere
// (as policy.Thompson; wrap in "floor" for off-policy logs). UCB plays
// argmax θ·φ + Scale·sqrt(φᵀA⁻¹φ) and is deterministic (1/0). By default
// the noise scale is the fixed Scale, as in policy's lin-thompson; with
// Opts.LearnNoise ("noise:learn") Thompson learns each arm's noise variance
// with a normal-inverse-gamma posterior, as the paper does, from a weak prior
// with mean Scale².
//
// # Training schedule
//
// Every Update appends to the buffer and updates the arm's regression at
// once (Sherman–Morrison, O(p²)). Training rounds run after Opts.Retrain
// rewards, then at intervals doubling up to Opts.RetrainMax (defaults 500
// and 8000: rounds at 500, 1500, 3500, 7500, 15500, then every 8000), each
// of Opts.Steps Adam steps warm-started from the current weights. A round
// runs inline in the Update that reaches the schedule but outside the
// policy's lock: it copies the buffer and the network, trains, and rebuilds
// every arm's regression on the new representation from the copied rows
// (Cholesky, gonum); then, under the lock, swaps the network and the
// regressions in and replays into them the rewards that arrived meanwhile.
// Concurrent Selects and Updates therefore keep going on the previous
// network, at most one round runs at a time, and a single-threaded caller
// (the simulator) gets byte-identical runs for a seed. With Opts.Async
// ("async:true") the round runs in a background goroutine instead, so no
// Update waits the few hundred milliseconds a round takes (the gateway's
// choice); rounds then install whenever they finish, Wait blocks until the
// running one is done, and failures are counted in Stats.
//
// # Serving path
//
// Select never touches gorgonia: a gorgonia tape machine costs tens of
// microseconds per call and is not safe for concurrent use. The trained
// weights are exported to plain slices and evaluated by loops (the first
// layer reads only x's non-zero entries, which one-hot encodings make few),
// then each candidate's posterior reads φ's non-zeros against A⁻¹'s upper
// triangle. For a 32→64→32 network and K = 8 arms Select takes 3.5 to
// 6 µs on a busy two-core machine, without allocating (see the
// benchmarks); the forward pass equals gorgonia's to 1e-9
// (TestForwardMatchesGorgonia).
//
// # Results
//
// On the simulator's tasks-nonlinear scenario (the best model is a parity of
// task, prompt length and time of day) with routelab sim's additive encoder,
// 100k requests, seed 1: linucb reaches 79.1% of the oracle's reward (regret
// 18420), lin-thompson 81.2%, neural-linear 99.0% (regret 847),
// neural-linear=explore:ucb 99.4% (regret 535) and neural-linear=noise:learn
// 99.5% (regret 429). The price of learning a
// representation shows where a linear model suffices: on "tasks" neural-linear
// reaches 99.4% with regret 446 against linucb's 99.9% and 111. On
// drift-contextual the finite buffer forgets, so it reaches 98.0% against
// linucb's 95.7% (without gamma).
//
// # Offline training from logs
//
// Fit trains from logged rows (Rows: feature vector, candidates, chosen
// arm, its logged propensity μ, reward): the network on the logged
// rewards weighted by min(1/μ, Clip) (IPS), on doubly robust pseudo-rewards
// for every candidate (DR), or unweighted; then the regressions and the
// buffer from the logged rows. The fitted policy serves and keeps learning.
// Reading decision logs is not this package's job: offline.FitNeural adapts
// any replay.Source (decision-log files with feedback joined, or
// replay.Records) to Rows, and "routelab neural fit" calls it.
//
// # Snapshots
//
// NeuralLinear implements policy.Snapshotter with policy's envelope
// (format routelab/policy-snapshot, version 1, policy "neural-linear",
// params without seed), so policy.Load and policy.SaveFile work with a
// registry that holds Builtins(), floor-wrapped specs included (NeuralLinear
// reports its parameters through policy.SpecReporter). The state is
//
//	{"dim", "rng", "train_rng", "net": {"in", "layers": [{"in", "out", "w", "b"}], "arms", "head_w", "head_b"},
//	 "arms": [{"id", "n", "sum_sq", "prior_sq", "a", "a_inv", "b", "theta"}], "seen", "buffer": [{"x", "arm", "r", "w"}],
//	 "since_train", "interval", "rounds", "last"}
//
// with W row-major in×out, heads rep×arms in the order of "arms", and the
// buffer oldest first. Floats are written exactly, so a restored policy makes
// the same decisions, and trains the same rounds, as the original. Restore
// validates everything first (shapes against the parameters, finite values,
// A·A⁻¹ ≈ I, buffer rows) and wraps policy.ErrSnapshot.
//
// Feature vectors must be finite with |x| ≤ 1e6 (encoders produce values in
// [−1, 1]); a vector of the wrong length is a policy.ErrBadVector error.
// gorgonia is imported by this package only; package policy does not import
// it, which is why these policies register through Builtins here rather
// than policy.Builtins.
package neural
