// Package offline learns from decision logs: it joins delayed feedback
// into logged decisions (Reader, the join rule below), serves the joined
// log as a replay.Source (LogSource, one fresh pass per Scan), and
// warm-starts learning policies from it (Train: importance-weighted
// updates, then a snapshot).
//
// Storage (package decisionlog) only reads and writes rows; the reward a
// joined decision gets is computed here, with decision.Reward.ForDecision,
// the one reward rule route.Core applies online.
//
//	src := &offline.LogSource{Opts: offline.ReaderOpts{
//		Log:      decisionlog.ReaderOpts{Paths: []string{"logs"}},
//		Feedback: true,
//	}}
//	st, err := offline.Train(ctx, src, p, offline.TrainOpts{Seed: 1})
//	err = policy.SaveFile(p, "warm.json")
//
// The same source feeds replay.Evaluate (off-policy evaluation),
// fromlogs.Calibrate and fromlogs.BuildTrace (package sim/fromlogs), and
// (*neural.NeuralLinear).Fit.
//
// # Offline training
//
// Train warm-starts a learning policy from the logs by calling its Update
// with every logged reward, importance-weighted by the inverse logged
// propensity (normalised per arm, realised as a seeded number of Update
// calls), so that bandit statistics estimate population means and linear
// policies fit weighted least squares. Rows are validated with
// replay.CheckRecord.
//
// # Linear routers from logs
//
// FitRouter fits a frozen policy.LinearRouter from the logs alone (bandit
// feedback): per arm, ridge regressions of the logged reward and cost on
// the logged feature vector, inverse-propensity weighted (IPS), on doubly
// robust pseudo-rewards around the unweighted fit (DR), or unweighted
// (the direct method); "routelab train --learner" writes it as an
// artifact.
//
// # Delayed rewards: the join rule
//
// With ReaderOpts.Feedback, Reader first loads every feedback file
// under Log.Paths into an index (request id → events): feedback is one small
// row per rated request, so memory grows with the rated requests, not with
// the decisions, which then stream past the index. For each decision:
//
//  1. Of the feedback events with its request id, those stamped later than
//     ts + JoinWindow are late and ignored (JoinWindow 0: none is late).
//  2. Of the rest, the latest by timestamp wins; among equal timestamps the
//     one read last (files in path order, rows in file order). Duplicates
//     therefore resolve to "last wins".
//  3. The winner's quality, if any, becomes Outcome.Quality. Its reward, if
//     any, becomes Reward; otherwise Reward is recomputed from the updated
//     outcome with ReaderOpts.Reward.ForDecision, as route.Core credits
//     the chosen arm (a failure's reward when it failed and a fallback
//     answered).
//     RewardSource becomes decision.RewardDelayed.
//  4. A decision with no usable feedback keeps its logged reward and
//     source — unless ReaderOpts.DefaultReward is set and its quality is
//     unknown: then it gets that reward and decision.RewardDefault.
//
// JoinStats counts rows, duplicates, applied, late and defaulted records,
// and unknown feedback ids (ids that matched no decision read — with a
// time filter, that includes feedback for decisions outside the range).
package offline
