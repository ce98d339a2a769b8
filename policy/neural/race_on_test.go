//go:build race

package neural_test

// raceEnabled shortens the simulator comparison under the race detector,
// which slows training and the simulator about tenfold.
const raceEnabled = true
