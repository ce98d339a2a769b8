//go:build !race

package opebench_test

const raceEnabled = false
