package sim_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/sim"
)

// traceSink rebuilds, from the records of a run, the trace of its
// requests (by request index) and their outcomes.
type traceSink struct {
	mu    sync.Mutex
	start time.Time
	reqs  sim.TraceSlice
	out   []decision.Outcome
	arm   []string
}

func newTraceSink(n int, start time.Time) *traceSink {
	return &traceSink{start: start, reqs: make(sim.TraceSlice, n), out: make([]decision.Outcome, n), arm: make([]string, n)}
}

func (s *traceSink) Log(x *decision.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := strconv.Atoi(strings.TrimPrefix(x.Request.ID, "r"))
	if err != nil || i < 0 || i >= len(s.reqs) {
		panic("traceSink: unexpected request id " + x.Request.ID)
	}
	f := x.Request.Features
	f.Vector = nil
	f.Tags = append([]string(nil), f.Tags...)
	s.reqs[i] = sim.TraceRequest{At: f.Time.Sub(s.start), Features: f, CompletionTokens: x.Outcome.TokensOut}
	o := x.Outcome
	o.Attempts = nil
	s.out[i] = o
	s.arm[i] = x.Decision.Arm().ID
}

// A run on the trace of another run serves the same requests at the same
// times; on the tasks scenario, where nothing fails and nothing queues, the
// same policy on the same seed then makes the same choices with the same
// outcomes, so the results agree up to the clock's nanosecond rounding.
func TestTraceReproducesARun(t *testing.T) {
	sc := load(t, "tasks")
	const n = 4000
	orig := newTraceSink(n, sc.StartTime())
	a := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "thompson", 3), Seed: 3, Requests: n, Sink: orig})
	require.Equal(t, n, a.StatusCounts["ok"], "the tasks scenario answers everything")
	for i, r := range orig.reqs {
		require.Positive(t, r.CompletionTokens, "request %d has a completion length", i)
	}

	again := newTraceSink(n, sc.StartTime())
	b := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "thompson", 3), Seed: 3, Trace: orig.reqs, Sink: again})
	require.Equal(t, n, b.Requests)
	// Same arrivals, features and lengths, request by request.
	assert.Equal(t, orig.reqs, again.reqs)
	assert.Equal(t, orig.arm, again.arm, "same choices")
	for i := range orig.out {
		assert.Equal(t, orig.out[i].Status, again.out[i].Status, "request %d", i)
		assert.InDelta(t, orig.out[i].Latency.Seconds(), again.out[i].Latency.Seconds(), 1e-6, "request %d", i)
		assert.Equal(t, orig.out[i].Quality, again.out[i].Quality, "request %d", i)
	}
	// Whole results: equal but for the clock's rounding (and wall time).
	assert.InDelta(t, a.VirtualSeconds, b.VirtualSeconds, 1e-6)
	for i := range a.Windows {
		assert.InDelta(t, a.Windows[i].StartSeconds, b.Windows[i].StartSeconds, 1e-6)
		a.Windows[i].StartSeconds, b.Windows[i].StartSeconds = 0, 0
	}
	a.VirtualSeconds, b.VirtualSeconds, a.DecisionsPerSecond, b.DecisionsPerSecond = 0, 0, 0, 0
	ja, err := json.Marshal(a)
	require.NoError(t, err)
	jb, err := json.Marshal(b)
	require.NoError(t, err)
	assert.JSONEq(t, string(ja), string(jb))

	// Requests takes a prefix of the trace.
	c := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 3), Seed: 3, Trace: orig.reqs, Requests: 100})
	assert.Equal(t, 100, c.Requests)
}

// A hand-made trace: the run sees exactly its arrivals, tasks, tenants and
// tags, and draws only the token counts the trace leaves unknown.
func TestTraceIsServedAsGiven(t *testing.T) {
	sc := load(t, "tasks")
	tr := sim.TraceSlice{
		{At: 0, CompletionTokens: 10},
		{At: 1500 * time.Millisecond, CompletionTokens: 20},
		{At: 1500 * time.Millisecond},
		{At: 2 * time.Hour, CompletionTokens: 40},
	}
	tr[0].Features.Task, tr[0].Features.Tenant, tr[0].Features.PromptTokens = "code", "acme", 100
	tr[1].Features.Task, tr[1].Features.Tenant, tr[1].Features.PromptTokens = "math", "someone-else", 200
	tr[1].Features.Tags = []string{"tier=gold"}
	tr[2].Features.Task = "chat"
	tr[3].Features.Task, tr[3].Features.PromptTokens = "summarize", 400
	sink := newTraceSink(len(tr), sc.StartTime())
	res := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 1), Seed: 1, Trace: tr, Sink: sink})
	require.Equal(t, 4, res.Requests)
	for i, want := range tr {
		got := sink.reqs[i]
		assert.Equal(t, want.At, got.At, "request %d arrival", i)
		assert.Equal(t, sc.StartTime().Add(want.At), got.Features.Time, "request %d time", i)
		assert.Equal(t, want.Features.Task, got.Features.Task, "request %d task", i)
		assert.Equal(t, want.Features.Tenant, got.Features.Tenant, "request %d tenant (kept even when the scenario has no such tenant)", i)
		assert.Equal(t, want.Features.Tags, got.Features.Tags, "request %d tags", i)
		if want.Features.PromptTokens > 0 {
			assert.Equal(t, want.Features.PromptTokens, got.Features.PromptTokens, "request %d prompt", i)
		}
		if want.CompletionTokens > 0 && sink.out[i].Status == decision.StatusOK {
			assert.Equal(t, want.CompletionTokens, got.CompletionTokens, "request %d completion", i)
		}
	}
	// Request 2 knows neither length: both drawn from the scenario's
	// distributions (tasks: prompt median 600, completion median 200).
	assert.Equal(t, "", tr[2].Features.Tenant)
	assert.InDelta(t, 600, sink.reqs[2].Features.PromptTokens, 500)
	if sink.out[2].Status == decision.StatusOK {
		assert.InDelta(t, 200, sink.reqs[2].CompletionTokens, 180)
	}
	assert.Equal(t, map[string]int{"code": 1, "math": 1, "chat": 1, "summarize": 1}, map[string]int{
		"code": res.Tasks["code"].Requests, "math": res.Tasks["math"].Requests, "chat": res.Tasks["chat"].Requests, "summarize": res.Tasks["summarize"].Requests})
	assert.GreaterOrEqual(t, res.VirtualSeconds, 7200.0)

	// The same trace and seed give the same run; unknown lengths are
	// drawn from the seed, not from the policy.
	sink2 := newTraceSink(len(tr), sc.StartTime())
	run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "thompson", 1), Seed: 1, Trace: tr, Sink: sink2})
	assert.Equal(t, sink.reqs[2].Features.PromptTokens, sink2.reqs[2].Features.PromptTokens)
}

// Two policies on one trace and seed see the same latent draws (common
// random numbers), as without a trace.
func TestTraceCommonRandomNumbers(t *testing.T) {
	sc := load(t, "tasks")
	const n = 2000
	base := newTraceSink(n, sc.StartTime())
	run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 9), Seed: 9, Requests: n, Sink: base})
	var a, b recorder
	run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "thompson", 9), Seed: 9, Trace: base.reqs, Sink: &a})
	run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "epsilon-greedy", 9), Seed: 9, Trace: base.reqs, Sink: &b})
	same := 0
	for id, x := range a.recs {
		y := b.recs[id]
		if x.arm == y.arm {
			same++
			assert.Equal(t, [3]any{x.latency, x.status, x.quality}, [3]any{y.latency, y.status, y.quality}, "request %s on %s", id, x.arm)
		}
	}
	assert.Greater(t, same, 200)
}

// A trace that routes each task to a provider's outage window: the
// scenario's time modifiers apply at the trace's times.
func TestTraceMeetsTheScenarioModifiers(t *testing.T) {
	sc := load(t, "outage")
	var spans []time.Duration
	for _, p := range sc.Providers {
		for _, m := range p.Modifiers {
			if m.Outage != "" {
				spans = append(spans, m.When.From.D(), m.When.To.D())
			}
		}
	}
	require.NotEmpty(t, spans, "the outage scenario has an outage window")
	from, to := spans[0], spans[1]
	var in, out sim.TraceSlice
	tasks := sc.Tasks()
	for i := range 200 {
		r := sim.TraceRequest{At: from + time.Duration(i)*(to-from)/400}
		r.Features.Task = tasks[i%len(tasks)]
		in = append(in, r)
		r.At = to + time.Duration(i)*time.Second
		out = append(out, r)
	}
	rIn := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 2), Seed: 2, Trace: in})
	rOut := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 2), Seed: 2, Trace: out})
	assert.Greater(t, rIn.FailureRate, rOut.FailureRate+0.1, "inside the outage window more requests fail (in %v, out %v)", rIn.FailureRate, rOut.FailureRate)
}

func TestTraceBadInput(t *testing.T) {
	sc := load(t, "tasks")
	p := newPolicy(t, "random", 1)
	ok := sim.TraceRequest{At: time.Second}
	ok.Features.Task = "code"
	task := func(name string, at time.Duration) sim.TraceRequest {
		r := ok
		r.Features.Task, r.At = name, at
		return r
	}
	for _, tc := range []struct {
		name     string
		trace    sim.TraceSlice
		requests int
		want     string
	}{
		{"empty", sim.TraceSlice{}, 0, "trace is empty"},
		{"unknown task", sim.TraceSlice{ok, task("poetry", 2*time.Second)}, 0, `trace request 1: task "poetry" is not one of scenario "tasks"'s tasks (chat, code, math, summarize)`},
		{"empty task without general", sim.TraceSlice{task("", time.Second)}, 0, `task "general" is not one of`},
		{"out of order", sim.TraceSlice{ok, task("code", 500*time.Millisecond)}, 0, "a trace must be in arrival order"},
		{"before start", sim.TraceSlice{task("code", -time.Second)}, 0, "before the start"},
		{"too many requests", sim.TraceSlice{ok}, 2, "requests 2 but the trace holds 1"},
		{"negative prompt", sim.TraceSlice{func() sim.TraceRequest { r := ok; r.Features.PromptTokens = -3; return r }()}, 0, "prompt tokens -3"},
		{"negative completion", sim.TraceSlice{func() sim.TraceRequest { r := ok; r.CompletionTokens = -1; return r }()}, 0, "completion tokens -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 1, Trace: tc.trace, Requests: tc.requests})
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// BenchmarkRunTrace is BenchmarkRun's tasks/thompson on a recorded trace:
// one op is one request read from the trace and routed.
func BenchmarkRunTrace(b *testing.B) {
	sc := load(b, "tasks")
	const n = 200_000
	rec := newTraceSink(n, sc.StartTime())
	run(b, sim.Opts{Scenario: sc, Policy: newPolicy(b, "random", 1), Seed: 1, Requests: n, Sink: rec})
	p := newPolicy(b, "thompson", 1)
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		k := min(n, b.N-done)
		if _, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 1, Trace: rec.reqs, Requests: k}); err != nil {
			b.Fatal(err)
		}
		done += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// A forced trace request is served by the named provider whatever the
// policy; an unknown provider is an error.
func TestTraceForced(t *testing.T) {
	sc := load(t, "tasks")
	var tr sim.TraceSlice
	for i := range 50 {
		r := sim.TraceRequest{At: time.Duration(i) * time.Second}
		r.Features.Task = "math"
		if i%2 == 0 {
			r.Forced = "coder"
		}
		tr = append(tr, r)
	}
	sink := newTraceSink(len(tr), sc.StartTime())
	res := run(t, sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 1), Seed: 1, Trace: tr, Sink: sink})
	for i := range tr {
		if i%2 == 0 {
			assert.Equal(t, "coder", sink.arm[i], "request %d is forced", i)
		}
	}
	assert.GreaterOrEqual(t, res.ArmShares["coder"], 0.5)
	tr[3].Forced = "nobody"
	_, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 1), Seed: 1, Trace: tr})
	assert.ErrorContains(t, err, `trace request 3: forced model "nobody" is not one of scenario "tasks"'s providers`)
}
