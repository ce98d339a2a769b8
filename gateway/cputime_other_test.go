//go:build !unix

package gateway

import "time"

// cpuTime is unknown here: benchmarks report 0 cpu-ns/op.
func cpuTime() time.Duration { return 0 }
