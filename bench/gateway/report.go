package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one run measured (the -json file).
type Report struct {
	Duration time.Duration `json:"duration_ns"`
	Reps     int           `json:"reps"`
	// LoadBefore / LoadAfter are /proc/loadavg at the start and the end.
	LoadBefore string         `json:"load_before"`
	LoadAfter  string         `json:"load_after"`
	Results    []Result       `json:"results"`
	Streams    []StreamResult `json:"streams,omitempty"`
	// Peak is each process's peak resident set (VmHWM, bytes) over the run.
	Peak   map[string]int64 `json:"peak_rss_bytes"`
	Checks []Check          `json:"checks"`
}

// Result is one target at one rate in one repetition.
type Result struct {
	Rep        int            `json:"rep"`
	Target     string         `json:"target"`
	Rate       int            `json:"rate"`
	Requests   uint64         `json:"requests"`
	Achieved   float64        `json:"achieved_rate"`
	Throughput float64        `json:"throughput"`
	Errors     uint64         `json:"errors"`
	Codes      map[string]int `json:"status_codes"`
	ErrorTexts []string       `json:"error_texts,omitempty"`
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
	AddedP50   time.Duration  `json:"added_p50_ns"`
	CPUPerReq  time.Duration  `json:"cpu_per_request_ns"`
	// RSS is the process's resident set (VmRSS, bytes) right after the attack.
	RSS int64 `json:"rss_bytes"`
	// MachineIdle is the share of the machine's CPU time left idle during
	// the attack (/proc/stat; every process, the load generator's too).
	// Near 0 the machine was saturated: what falls behind then depends on
	// the scheduler as much as on the target.
	MachineIdle *float64 `json:"machine_idle_share,omitempty"`
}

// saturatedIdle is the idle share under which a phase counts as run on a
// saturated machine.
const saturatedIdle = 0.05

// saturation says, for a check's detail, that the gateway's phase ran on
// a saturated machine; "" otherwise.
func saturation(g Result) string {
	if g.MachineIdle == nil || *g.MachineIdle >= saturatedIdle {
		return ""
	}
	return fmt.Sprintf(" [machine saturated: %.1f%% idle during the gateway's phase]", 100**g.MachineIdle)
}

func idlePct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", 100**v)
}

// Check is one of the targets, judged on this run.
type Check struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	// Status is PASS, FAIL or "n/a" (the run did not measure it, or the
	// floor itself missed the bar).
	Status string `json:"status"`
}

// mem returns the process's peak and current resident set in bytes
// (VmHWM, VmRSS from /proc/PID/status).
func (p *proc) mem() (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of %s: %w", p.name, err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(l))
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = kb << 10
		case "VmRSS:":
			rss = kb << 10
		}
	}
	return hwm, rss, nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }
func mib(b int64) string        { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// find returns target's result at rate in repetition rep.
func find(rs []Result, rep int, target string, rate int) (Result, bool) {
	for _, r := range rs {
		if r.Rep == rep && r.Target == target && r.Rate == rate {
			return r, true
		}
	}
	return Result{}, false
}

const peakRSSTarget = 150 << 20

// checks judges the run against the targets (ratios to the
// floor in the same run).
func checks(rep Report) []Check {
	var cs []Check
	add := func(name, detail string, ok bool) {
		st := "PASS"
		if !ok {
			st = "FAIL"
		}
		cs = append(cs, Check{Name: name, Detail: detail, Status: st})
	}
	na := func(name, detail string) { cs = append(cs, Check{Name: name, Detail: detail, Status: "n/a"}) }
	rates := map[int]bool{}
	var order []int
	for _, r := range rep.Results {
		if !rates[r.Rate] {
			rates[r.Rate] = true
			order = append(order, r.Rate)
		}
	}
	for k := 1; k <= rep.Reps; k++ {
		if f, ok := find(rep.Results, k, "floor", 2000); ok {
			if g, ok := find(rep.Results, k, "gateway", 2000); ok {
				add(fmt.Sprintf("rep %d: p99 @2000/s <= 2x floor", k), fmt.Sprintf("gateway %s ms, floor %s ms (%s×)", ms(g.P99), ms(f.P99), ratio(g.P99, f.P99)),
					g.P99 <= 2*f.P99)
			}
		}
		if f, ok := find(rep.Results, k, "floor", 5000); ok {
			if g, ok := find(rep.Results, k, "gateway", 5000); ok {
				name := fmt.Sprintf("rep %d: 5000/s with 0 errors and p99 < 50 ms", k)
				detail := fmt.Sprintf("gateway %d errors, p99 %s ms; floor %d errors, p99 %s ms", g.Errors, ms(g.P99), f.Errors, ms(f.P99)) + saturation(g)
				if f.Errors == 0 && f.P99 < 50*time.Millisecond {
					add(name, detail, g.Errors == 0 && g.P99 < 50*time.Millisecond)
				} else {
					na(name, detail+" (the floor missed it too)")
				}
			}
		}
		for _, rate := range order {
			f, ok1 := find(rep.Results, k, "floor", rate)
			g, ok2 := find(rep.Results, k, "gateway", rate)
			if ok1 && ok2 && f.CPUPerReq > 0 {
				add(fmt.Sprintf("rep %d: CPU/request @%d/s <= 1.15x floor", k, rate),
					fmt.Sprintf("gateway %s µs, floor %s µs (%s×)", us(g.CPUPerReq), us(f.CPUPerReq), ratio(g.CPUPerReq, f.CPUPerReq))+saturation(g),
					float64(g.CPUPerReq) <= 1.15*float64(f.CPUPerReq))
			}
		}
		var fs, gs *StreamResult
		for i := range rep.Streams {
			s := &rep.Streams[i]
			if s.Rep == k && s.Target == "floor" {
				fs = s
			}
			if s.Rep == k && s.Target == "gateway" {
				gs = s
			}
		}
		if fs != nil && gs != nil {
			name := fmt.Sprintf("rep %d: streaming added TTFB <= 1.25x floor", k)
			detail := fmt.Sprintf("gateway +%s ms, floor +%s ms (p50 over direct)", ms(gs.AddedTTFBP50), ms(fs.AddedTTFBP50))
			if fs.AddedTTFBP50 > 0 {
				add(name, detail, float64(gs.AddedTTFBP50) <= 1.25*float64(fs.AddedTTFBP50))
			} else {
				na(name, detail+" (the floor added nothing measurable)")
			}
		}
	}
	if hwm, ok := rep.Peak["gateway"]; ok {
		add("peak RSS <= 150 MiB", fmt.Sprintf("gateway %s MiB, floor %s MiB", mib(hwm), mib(rep.Peak["floor"])), hwm <= peakRSSTarget)
	}
	return cs
}

func report(w io.Writer, rep Report) {
	fmt.Fprintf(w, "\n## Gateway benchmark (%v per target and rate, %d repetition(s), loopback, vegeta open loop)\n", rep.Duration, rep.Reps)
	fmt.Fprintf(w, "load average: %s at the start, %s at the end\n\n", rep.LoadBefore, rep.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rep\ttarget\trate/s\tachieved/s\terrors\tp50 ms\tp90 ms\tp99 ms\tmax ms\tadded p50 ms\tCPU µs/req\tRSS MiB\tidle %\t")
	for _, r := range rep.Results {
		added := "-"
		if r.Target != "direct" {
			added = ms(r.AddedP50)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Rep, r.Target, r.Rate, r.Achieved, r.Errors,
			ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), added, us(r.CPUPerReq), mib(r.RSS), idlePct(r.MachineIdle))
	}
	tw.Flush()

	fmt.Fprintln(w, "\n## Gateway / floor, same run")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rep\trate/s\tp50 ratio\tp90 ratio\tp99 ratio\tmax ratio\tadded p50 ratio\tCPU ratio\t")
	for _, g := range rep.Results {
		if g.Target != "gateway" {
			continue
		}
		f, ok := find(rep.Results, g.Rep, "floor", g.Rate)
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", g.Rep, g.Rate, ratio(g.P50, f.P50), ratio(g.P90, f.P90), ratio(g.P99, f.P99),
			ratio(g.Max, f.Max), ratio(g.AddedP50, f.AddedP50), ratio(g.CPUPerReq, f.CPUPerReq))
	}
	tw.Flush()

	if len(rep.Streams) > 0 {
		fmt.Fprintln(w, "\n## Streaming (SSE): time to first byte and gap between chunks, and what each proxy adds over direct")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "rep\ttarget\tstreams/s\tstreams\terrors\tTTFB p50 ms\tTTFB p99 ms\tgap mean ms\tgap p99 ms\tadded TTFB p50 ms\tadded TTFB p99 ms\tadded gap mean µs\t")
		for _, s := range rep.Streams {
			a1, a2, a3 := "-", "-", "-"
			if s.Target != "direct" {
				a1, a2, a3 = ms(s.AddedTTFBP50), ms(s.AddedTTFBP99), us(s.AddedGapMean)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Rep, s.Target, s.Rate, s.Streams, s.Errors,
				ms(s.TTFBP50), ms(s.TTFBP99), ms(s.GapMean), ms(s.GapP99), a1, a2, a3)
		}
		tw.Flush()
	}

	fmt.Fprint(w, "\npeak RSS (VmHWM) over the run:")
	for _, n := range []string{"direct", "floor", "gateway"} {
		if v, ok := rep.Peak[n]; ok {
			fmt.Fprintf(w, "  %s %s MiB", n, mib(v))
		}
	}
	fmt.Fprintln(w)
	sustained := map[string]int{}
	for _, r := range rep.Results {
		if r.Errors == 0 && r.P99 < 50*time.Millisecond && r.Rate > sustained[r.Target] {
			sustained[r.Target] = r.Rate
		}
	}
	fmt.Fprintf(w, "highest rate with 0 errors and p99 < 50 ms (any repetition): direct %d/s, floor %d/s, gateway %d/s\n",
		sustained["direct"], sustained["floor"], sustained["gateway"])

	fmt.Fprintln(w, "\n## Targets (issue 17; ratios to the floor in this run)")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, c.Detail)
	}
	tw.Flush()
}
