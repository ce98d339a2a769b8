//go:build race

package policy_test

// raceEnabled lets the simulator integration tests trim their policy lists
// under the race detector, which slows the simulator about 25-fold.
const raceEnabled = true
