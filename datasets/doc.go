// Package datasets replays real LLM-routing benchmark outcomes: tables that
// record, for every prompt, what every model scored and what it cost, so a
// routing policy can be evaluated against what models really answered
// instead of only against the simulator.
//
// Two public tables load (see ../shared/data/README.md):
//
//	tb, err := datasets.LoadRouterBench("../shared/data/routerbench") // 11 models, scores and costs
//	tb, err := datasets.LoadRouteLLM("../shared/data/routellm/mmlu")   // 2 models, correctness only
//
// A Table keeps scores, costs, the task, an estimate of the prompt's
// size and the prompt text (for text features); response texts are read
// one record at a time and kept only as a hash of their
// decision.AnswerKey, so that Table.AddCascades can add agreement
// cascades (decision.Cascade, the gateway's cascade models) as columns. Malformed input is a *ParseError naming
// file, line and column.
//
// Because every model's outcome is known for every prompt, the evaluation
// is full-information: Evaluate lets a policy choose on each row, pays it
// the chosen model's reward and also knows the best model's (the oracle)
// and every fixed model's, so regret and "always model X" baselines come
// exactly, without simulation noise:
//
//	res, err := datasets.Evaluate(ctx, tb, p, datasets.Opts{Seed: 1, Shuffle: true})
//
// Each row takes the one decision path the simulator and the gateway take,
// route.Core.Run, with an actor that reads the chosen model's outcome from
// the row: the core filters, decides, computes the reward and updates the
// policy, so a policy sees here exactly what it would see serving.
//
// RouterBench has no latency column and RouteLLM MMLU no costs: latency
// comes from Opts.LatencyMS (one default for every model otherwise), and
// MMLU costs stay 0 unless Table.WithPromptPrices sets them from a price
// profile.
//
// HeldOut is the held-out evaluation: Table.Split (stratified by task) or
// two files, full-information quality learners (Learners) on the encoder's
// features incl. prompt text (IDF fitted on the training part,
// hyper-parameters on a validation part of it), a sweep of the
// willingness to pay λ over the test part, and the figures of the routing
// literature (Frontier, Measure: AIQ, APGR, CPT; StrongShare):
//
//	train, test, err := tb.Split(0.7, seed)
//	res, err := datasets.HeldOut(ctx, train, test, datasets.HeldOutOpts{Text: ts, Seed: seed})
//	m := datasets.Measure(res.Curves[0].Points, res.Fixed, ref)
package datasets
