// Package route is routelab's decision core: the one path every request
// takes, whether it comes from the simulator, the log replayer or the live
// gateway:
//
//	rule filter → policy.Select → act → outcome → reward → policy.Update → log
//
// Build a Core once with the model catalogue, rules, policy, reward
// function and log sink; then, per request:
//
//	var rec route.Record
//	err := core.Run(ctx, &req, actor, &rec)
//
// Only the Actor differs between callers: a virtual-clock provider in the
// simulator, a real provider call (with fallbacks) in the gateway. The
// gateway, which acts while streaming, calls the two halves Decide and
// Complete itself.
//
// route also owns the shared value types — Outcome, Status, Attempt, Reward,
// Decision, Record — and the model profile library (Profiles). It imports
// only package policy. Log writers (package decisionlog) implement Sink and
// import route; route never imports them.
package route
