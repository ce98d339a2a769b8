// Package route is routelab's decision core: the one path every request
// takes, whether it comes from the simulator, the log replayer or the live
// gateway:
//
//	rule filter → policy.Select → act → outcome → reward → policy.Update → log
//
// Build a Core once with the model catalogue, rules, policy, reward
// function and log sink; then, per request:
//
//	var rec decision.Record
//	err := core.Run(ctx, &req, actor, &rec)
//
// Only the Actor differs between callers: a virtual-clock provider in the
// simulator, a real provider call (with fallbacks) in the gateway. The
// gateway, which acts while streaming, calls the two halves Decide and
// Complete itself.
//
// The value types it passes around — Features, Arm, Decision, Outcome,
// Status, Attempt, Reward, Record — live in the leaf package decision;
// route owns the Core and the model profile library (Profiles). It imports
// only packages decision and policy. Log writers (package decisionlog)
// implement Sink without importing route; route never imports them.
package route
