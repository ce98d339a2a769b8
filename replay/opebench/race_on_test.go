//go:build race

package opebench_test

const raceEnabled = true
