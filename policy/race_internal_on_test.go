//go:build race

package policy

// raceOn shortens the long numerical tests under the race detector.
const raceOn = true
