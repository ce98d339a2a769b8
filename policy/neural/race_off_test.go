//go:build !race

package neural_test

const raceEnabled = false
