package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	idle, total, err := parseProcStat("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\n")
	if err != nil {
		t.Fatal(err)
	}
	// idle + iowait; user..steal (guest is inside user already).
	if idle != 820 || total != 990 {
		t.Fatalf("idle %d total %d, want 820 and 990", idle, total)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5 6 7 8\n"} {
		if _, _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

// A check failed on a saturated machine says so in its detail; its
// status stays what the target says.
func TestChecksNameSaturation(t *testing.T) {
	busy, quiet := 0.006, 0.4
	rep := Report{Reps: 1, Results: []Result{
		{Rep: 1, Target: "floor", Rate: 1000, CPUPerReq: 300 * time.Microsecond, MachineIdle: &quiet},
		{Rep: 1, Target: "gateway", Rate: 1000, CPUPerReq: 360 * time.Microsecond, MachineIdle: &quiet},
		{Rep: 1, Target: "floor", Rate: 5000, CPUPerReq: 180 * time.Microsecond, P99: 20 * time.Millisecond, MachineIdle: &busy},
		{Rep: 1, Target: "gateway", Rate: 5000, CPUPerReq: 250 * time.Microsecond, P99: 2 * time.Second, MachineIdle: &busy},
	}}
	got := map[string]Check{}
	for _, c := range checks(rep) {
		got[c.Name] = c
	}
	c1000, c5000, p5000 := got["rep 1: CPU/request @1000/s <= 1.15x floor"], got["rep 1: CPU/request @5000/s <= 1.15x floor"],
		got["rep 1: 5000/s with 0 errors and p99 < 50 ms"]
	if c1000.Status != "FAIL" || strings.Contains(c1000.Detail, "saturated") {
		t.Errorf("1000/s: %+v", c1000)
	}
	for _, c := range []Check{c5000, p5000} {
		if c.Status != "FAIL" || !strings.Contains(c.Detail, "machine saturated: 0.6% idle") {
			t.Errorf("5000/s: %+v", c)
		}
	}
}
