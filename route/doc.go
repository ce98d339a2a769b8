// Package route is routelab's decision core: the one path every request
// takes, whether it comes from the simulator, the log replayer or the live
// gateway:
//
//	rule filter → policy.Select → act → outcome → reward → policy.Update → log
//
// Build a Core once with the model catalogue, rules, policy, reward
// function, log sink and (optionally) the pending store for delayed
// feedback; then, per request:
//
//	var rec decision.Record
//	err := core.Run(ctx, &req, actor, &rec)
//
// Only the Actor differs between callers: a virtual-clock provider in the
// simulator, a real provider call (with fallbacks) in the gateway. The
// gateway, which acts while streaming, calls the two halves Decide and
// Complete itself.
//
// Core is the only place that:
//
//   - applies the rules (Rule) — to routed requests in Decide, to forced
//     models in Decide, and to any one arm through Check, which the gateway
//     calls for every fallback target. Check names the rejecting rule in a
//     *RuleError (wrapping ErrRuleRejected); an empty candidate set is
//     ErrNoCandidates. Rules that implement Advisory (momentary health such
//     as circuit breakers) do not stop a forced model: its fallback chain
//     does the work;
//   - holds the arm: the catalogue (Catalogue, Arm by id in O(1)) with its
//     prices and context window;
//   - computes the reward (decision.Reward.ForDecision: a same-model retry
//     that answered earns the outcome's reward, a fallback's answer is the
//     chosen arm's failure);
//   - learns (Complete, Learn) and hands the record to the Sink; the
//     shadow policy learns as ShadowLearnOpts says — by default
//     off-policy from every routed request, importance-weighted by its
//     probability of the served arm over the serving policy's
//     (WeightedUpdater, or a seeded integer number of Updates with mean w);
//     frozen; or, for comparison, only when it agreed;
//   - holds finished decisions for delayed feedback (PendingOpts): one
//     bounded store, oldest evicted first, with a TTL (DefaultPendingTTL
//     when zero). With PendingOpts.Defer, Complete holds back the policy
//     update of a routed, successful answer of unknown quality; Feedback
//     applies a rating (quality turned into a reward by the core, or a
//     reward as is) and learns from it when the update was deferred; a
//     deferred decision that gets no rating — expired, evicted, or still
//     waiting at Flush — is credited its immediate reward. Every routed
//     request thus updates the policy exactly once. PendingStats counts it.
//     The store keeps decisions compactly (about 400 bytes each with three
//     candidates and the default encoder's vector: catalogue candidates by
//     index, repeated strings interned, vectors sparse), their slots, ids
//     and numbers in blocks mapped outside the Go heap (all but the ~37
//     bytes of the map of ids: the garbage collector neither marks them
//     nor doubles them in its heap goal; PendingStats.Mapped), and
//     allocates nothing per request once full.
//
// The value types it passes around — Features, Arm, Decision, Outcome,
// Status, Attempt, Reward, Record — live in the leaf package decision;
// route owns the Core and the model profile library (Profiles). It imports
// only packages decision and policy. Log writers (package decisionlog)
// implement Sink without importing route; route never imports them.
package route
