// Package artifact is the one versioned file format of a learned routing
// policy: what `routelab train`, `routelab neural fit` and `routelab sim
// --save-policy` write, what the gateway checkpoints, and what `routelab
// sim --policy-file`, `routelab replay --policy-file` and the gateway's
// `policy: {file: PATH}` / `shadow: {file: PATH}` read.
//
// An artifact is one JSON object:
//
//	{
//	  "format": "routelab/policy-artifact",
//	  "version": 1,
//	  "spec": "linucb=alpha:1;seed:7",        // the policy spec as the CLI accepts it
//	  "encoder": {...},                        // policy.EncoderSpec it was trained with (canonical)
//	  "reward": {...},                         // decision.RewardSpec, every field set
//	  "catalogue": ["arm-a", "arm-b"],         // the arm ids it knows, sorted
//	  "provenance": {"source": "train", "rows": 20000, "seed": 1, ...},
//	  "state_sha256": "…",                     // over the compact state bytes
//	  "state": {...}                           // the policy's own snapshot (policy.Snapshotter), RNG state included
//	}
//
// The state is the policy's versioned snapshot (package policy,
// "Snapshots"), so Policy rebuilds a policy that makes the same decisions as
// the one saved. Read refuses truncated or corrupt files, other formats,
// unknown versions and a state that does not match its checksum, each with
// an error naming the file and the fault; Check refuses an artifact whose
// encoder, reward or catalogue differs from the caller's, naming both sides.
// Write is atomic (temporary file, fsync, rename).
//
// An artifact directory (the gateway's checkpoint.dir) also holds the
// promote/rollback history, HistoryFile: one HistoryRecord per line,
// appended and fsynced (AppendHistory), read by ReadHistory and printed by
// `routelab policies list|show DIR`.
//
// The package imports decision and policy only, never route or gateway.
package artifact
