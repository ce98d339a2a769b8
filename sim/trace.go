package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
)

// TraceRequest is one request of a Trace: when it arrives and what it is.
type TraceRequest struct {
	// At is the arrival time as an offset from the scenario's start. It
	// must be >= 0 and must not decrease along the trace.
	At time.Duration
	// Features describe the request. Tenant, Task, PromptTokens and Tags
	// are used; Time is set to the scenario's start plus At, and Vector by
	// Opts.Encoder. An empty Task means DefaultTask; a task the scenario
	// does not list is an error (providers have no quality for it). A
	// tenant the scenario does not list is kept as it is, and no tenant
	// modifier matches it. PromptTokens 0 means unknown: the simulator
	// draws it from the scenario's prompt_tokens.
	Features decision.Features
	// CompletionTokens is the answer's length when known; 0 draws it from
	// the scenario's completion_tokens (a logged failure has none).
	CompletionTokens int
	// Forced, when not empty, names the provider that serves the request
	// without asking the policy (the caller named the model, as
	// decision.Request.Forced); it must be one of the scenario's providers.
	Forced string
}

// Trace is a recorded sequence of requests, in arrival order, that
// replaces the scenario's traffic generator (Opts.Trace): the simulator
// serves exactly these requests at exactly these times. Implementations
// hold the trace in memory (a TraceSlice, or the compact trace that
// package replay builds from decision logs).
type Trace interface {
	// Len is the number of requests.
	Len() int
	// Request fills r with request i, 0 <= i < Len(). Run calls it once
	// per index in increasing order, on a zeroed r; r's slices may alias
	// the trace's storage (Run copies what it keeps and never modifies them).
	Request(i int, r *TraceRequest)
}

// TraceSlice is a Trace held as a slice.
type TraceSlice []TraceRequest

// Len implements Trace.
func (s TraceSlice) Len() int { return len(s) }

// Request implements Trace.
func (s TraceSlice) Request(i int, r *TraceRequest) { *r = s[i] }

// traceFeed turns a Trace into the world's requests: task and tenant
// names become indices, unknown token counts are drawn.
type traceFeed struct {
	tr        Trace
	sc        *Scenario
	rng       *rand.Rand
	taskIdx   map[string]int
	tenantIdx map[string]int
	armIdx    map[string]int
	startSec  float64
	last      time.Duration
	cur       TraceRequest
}

func newTraceFeed(w *world, tr Trace, seed uint64) *traceFeed {
	g := &traceFeed{
		tr:        tr,
		sc:        w.sc,
		rng:       rand.New(rand.NewPCG(seed, 0x7472616365000001)), // "trace" stream
		taskIdx:   index(w.tasks),
		tenantIdx: index(w.tenants),
		armIdx:    map[string]int{},
		startSec:  w.startSec,
	}
	for i := range w.arms {
		g.armIdx[w.arms[i].id] = i
	}
	return g
}

// next reads trace request i into r (and g.cur, which keeps its tenant
// name and tags for the record).
func (g *traceFeed) next(i int, r *request) error {
	g.cur = TraceRequest{}
	g.tr.Request(i, &g.cur)
	c := &g.cur
	if c.At < 0 {
		return fmt.Errorf("sim: trace request %d: arrival %v is before the start", i, c.At)
	}
	if c.At < g.last {
		return fmt.Errorf("sim: trace request %d: arrival %v is before request %d's %v (a trace must be in arrival order)", i, c.At, i-1, g.last)
	}
	g.last = c.At
	task := c.Features.Task
	if task == "" {
		task = DefaultTask
	}
	ti, ok := g.taskIdx[task]
	if !ok {
		return fmt.Errorf("sim: trace request %d: task %q is not one of scenario %q's tasks (%s)", i, task, g.sc.Name, strings.Join(g.sc.Tasks(), ", "))
	}
	if c.Features.PromptTokens < 0 || c.Features.PromptTokens > MaxTokens {
		return fmt.Errorf("sim: trace request %d: prompt tokens %d outside [0, %d]", i, c.Features.PromptTokens, MaxTokens)
	}
	if c.CompletionTokens < 0 || c.CompletionTokens > MaxTokens {
		return fmt.Errorf("sim: trace request %d: completion tokens %d outside [0, %d]", i, c.CompletionTokens, MaxTokens)
	}
	if c.Forced != "" {
		if _, ok := g.armIdx[c.Forced]; !ok {
			return fmt.Errorf("sim: trace request %d: forced model %q is not one of scenario %q's providers", i, c.Forced, g.sc.Name)
		}
	}
	r.t = c.At.Seconds()
	r.hour = hourOf(g.startSec, r.t)
	r.task = ti
	r.tenant = -1
	if c.Features.Tenant != "" {
		if j, ok := g.tenantIdx[c.Features.Tenant]; ok {
			r.tenant = j
		}
	}
	r.prompt = c.Features.PromptTokens
	if r.prompt == 0 {
		r.prompt = g.sc.Traffic.PromptTokens.draw(g.rng)
	}
	r.compl = c.CompletionTokens
	if r.compl == 0 {
		r.compl = g.sc.Traffic.CompletionTokens.draw(g.rng)
	}
	return nil
}

// hourOf is the UTC hour of day t seconds after a start that is startSec
// seconds past midnight (as the traffic generator computes it).
func hourOf(startSec, t float64) int {
	return int(math.Mod(startSec+t, 86400)/3600) % 24
}
