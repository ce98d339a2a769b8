// Package sharedstate is what several gateway replicas share through Redis
// (github.com/redis/go-redis/v9): learned policy statistics, rate-limit
// buckets, pending decisions awaiting feedback, the serving/shadow policy
// record and secrets. The gateway wires it in when its config has
// `state: {redis: {addr: ...}}`; docs/scale-out.md describes the whole.
//
//	c, err := sharedstate.New(sharedstate.Opts{Addr: "127.0.0.1:6379", Prefix: "routelab:"})
//	_ = c.Ping(ctx)                       // Up() from now on
//	sync := c.NewStatsSync(id, mergeable) // a policy.Mergeable
//	err = sync.Sync(ctx)                  // every merge interval
//	ok, wait, err := c.Allow(ctx, "key:team-a", 10, 20)
//
// Statistics merge without conflicts: each replica publishes the
// sufficient-statistics deltas its policy learned since its last publish
// (policy.Mergeable.TakeDelta) as one numbered batch; a Lua script adds the
// batch to the totals hash with HINCRBYFLOAT unless that replica's batch
// number was applied before (so a retry after a lost reply counts once) and
// returns the totals, which the replica installs (SetShared: totals plus
// what it learned since). Addition commutes, so any interleaving of
// replicas gives the same totals; a replica's view lags the others by at
// most one merge interval of theirs plus one of its own.
//
// Rate limits are GCRA buckets updated atomically by a Lua script on
// Redis's clock. Every operation has a short timeout; after one fails to
// reach Redis the client reports down and answers ErrDown at once, without
// a network call, until Ping succeeds again — callers fall back to their
// local state meanwhile.
package sharedstate
