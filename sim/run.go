package sim

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
)

// Opts configures one simulation run (Run).
type Opts struct {
	Scenario *Scenario
	// Policy routes the requests; it is used as given (a fresh one per run
	// unless you mean to carry learning over).
	Policy policy.Policy
	// Shadow, optional, runs beside Policy in the decision core.
	Shadow policy.Policy
	// ShadowLearn says how Shadow learns (route.ShadowLearnOpts; the zero
	// value is importance-weighted learning from every routed request).
	ShadowLearn route.ShadowLearnOpts
	// Seed drives the traffic and the providers' noise. The policy has its
	// own seed (see PolicySeed), so that two policies run on one Seed see
	// the same requests and the same latent draws.
	Seed uint64
	// Requests is the run length; 0 means the scenario's default, or the
	// whole trace with a Trace (which must then hold at least Requests).
	Requests int
	// Trace, optional, replaces the scenario's traffic generator: the run
	// serves the trace's requests at their recorded arrival times, with
	// their task, tenant, tags and token counts (see TraceRequest). The
	// providers, the reward and the oracle still come from the scenario,
	// and the per-request noise is drawn by request index as without a
	// trace, so two policies on one Seed and one trace see the same latent
	// draws. The scenario's traffic section then only supplies the task
	// and tenant tables and the token distributions for unknown counts.
	Trace Trace
	// Window is the number of requests per time-series window; 0 means
	// Requests/50 (at least 1).
	Window int
	// Encoder, optional, fills Features.Vector for contextual policies;
	// without one the vector stays empty.
	Encoder policy.Encoder
	// Sink, optional, receives every finished record (in completion order,
	// stamped with the request's virtual arrival time). With a sink, each
	// request also gets an id "r<index>".
	Sink route.Sink
	// Reward, optional, replaces the scenario's reward function.
	Reward *decision.Reward
	// Rules run after the context-window rule, which is always on.
	Rules []route.Rule
	// ImmediateFeedback makes the policy learn each reward before the next
	// request. By default rewards arrive at the request's virtual
	// completion time, as they would in production: a policy deciding at
	// time t knows only the outcomes of requests finished by t.
	ImmediateFeedback bool
}

// Result summarises a run. All fields but DecisionsPerSecond are a
// deterministic function of the scenario, the seed and the policy (with
// its own seed).
type Result struct {
	Policy        string `json:"policy"`
	PolicyVersion string `json:"policy_version"`
	Scenario      string `json:"scenario"`
	Seed          uint64 `json:"seed"`
	Requests      int    `json:"requests"`
	// VirtualSeconds is the virtual time from the start to the last completion.
	VirtualSeconds float64 `json:"virtual_seconds"`
	// MeanReward is the mean realised reward; ExpectedMeanReward the mean
	// of the chosen arms' expected rewards (the same without the outcome
	// noise); OracleMeanReward the mean of the best candidate's expected
	// reward per request.
	MeanReward         float64 `json:"mean_reward"`
	ExpectedMeanReward float64 `json:"expected_mean_reward"`
	OracleMeanReward   float64 `json:"oracle_mean_reward"`
	// OracleStateDependent says the scenario is Stateful: the oracle is
	// computed against the state this policy's own choices created, so
	// "% of oracle" does not rank policies reliably there; compare
	// ExpectedMeanReward (or the best fixed arm, FixedArmValues).
	OracleStateDependent bool `json:"oracle_state_dependent"`
	// Regret is Σ (oracle expected reward − chosen arm's expected reward).
	Regret    float64 `json:"regret"`
	CostTotal float64 `json:"cost_total"`
	// Latency percentiles are over answered (status ok) requests.
	LatencyP50MS float64 `json:"latency_p50_ms"`
	LatencyP99MS float64 `json:"latency_p99_ms"`
	FailureRate  float64 `json:"failure_rate"`
	// StatusCounts counts requests by final status ("ok", "error", ...).
	StatusCounts map[string]int `json:"status_counts"`
	// ArmShares is the fraction of requests routed to each arm;
	// OracleArmShares where the oracle would have sent them.
	ArmShares       map[string]float64 `json:"arm_shares"`
	OracleArmShares map[string]float64 `json:"oracle_arm_shares"`
	// DecisionsPerSecond is the wall-clock throughput of the run.
	DecisionsPerSecond float64 `json:"decisions_per_second"`
	// Tasks breaks the run down by task type.
	Tasks map[string]TaskResult `json:"tasks"`
	// Windows is the time series, one entry per Window requests in
	// arrival order.
	Windows []Window `json:"windows"`
}

// TaskResult summarises the requests of one task type.
type TaskResult struct {
	Requests           int                `json:"requests"`
	MeanReward         float64            `json:"mean_reward"`
	ExpectedMeanReward float64            `json:"expected_mean_reward"`
	OracleMeanReward   float64            `json:"oracle_mean_reward"`
	ArmShares          map[string]float64 `json:"arm_shares"`
}

// Window aggregates consecutive requests (by arrival order).
type Window struct {
	// First is the index of the window's first request; StartSeconds its
	// virtual arrival time.
	First              int     `json:"first"`
	Requests           int     `json:"requests"`
	StartSeconds       float64 `json:"start_seconds"`
	MeanReward         float64 `json:"mean_reward"`
	ExpectedMeanReward float64 `json:"expected_mean_reward"`
	OracleMeanReward   float64 `json:"oracle_mean_reward"`
	FailureRate        float64 `json:"failure_rate"`
	// CumulativeRegret is the regret of all requests up to this window's end.
	CumulativeRegret float64            `json:"cumulative_regret"`
	ArmShares        map[string]float64 `json:"arm_shares"`
	OracleArmShares  map[string]float64 `json:"oracle_arm_shares"`
}

// PolicySeed derives a policy's seed from a run seed, for callers that
// build the policy (the CLI does when the spec sets no seed): the policy's
// stream is then distinct from the traffic and provider streams.
func PolicySeed(runSeed uint64) uint64 { return mix64(runSeed ^ 0x706f6c6963790000) }

// slot is one request in flight: its record and what the oracle knew.
type slot struct {
	rec       decision.Record
	idx       int
	done      float64
	expected  float64
	oracle    float64
	chosenArm int
	oracleArm int
	task      int
}

// taskAcc accumulates one task type's statistics.
type taskAcc struct {
	n                        int
	reward, expected, oracle float64
	arm                      []int
}

// clock is a run's virtual clock: seconds after the scenario's start,
// moved forward by arrivals and completions (nothing sleeps). Its Now is
// the decision core's clock (route.CoreOpts.Now and the profiles'), so the
// core stamps what it stamps in virtual time. A run owns its clock; it is
// not safe for concurrent use, and need not be: one run is one goroutine.
type clock struct {
	start time.Time
	t     float64
}

// Now is the virtual time.
func (c *clock) Now() time.Time { return c.start.Add(secs(c.t)) }

// advance moves the clock to t seconds after the start; it never moves
// backwards.
func (c *clock) advance(t float64) { c.t = max(c.t, t) }

// at is the time t seconds after the start.
func (c *clock) at(t float64) time.Time { return c.start.Add(secs(t)) }

// actor is the simulator's route.Actor: it serves the decision's chosen
// candidate on the simulated provider at the request's virtual arrival
// time, fills the outcome, and notes in the slot when the request will
// complete and what the oracle knew. The runner sets req and slot before
// each Act.
type actor struct {
	w    *world
	coef rewardCoef
	seed uint64
	req  *request
	slot *slot
	// candArm and params are per candidate: its arm index and its
	// effective parameters for req.
	candArm []int
	params  []params
}

var _ route.Actor = (*actor)(nil)

// Act implements route.Actor.
func (a *actor) Act(_ context.Context, _ *decision.Request, d *decision.Decision, o *decision.Outcome) error {
	a.judge(d)
	a.slot.done = a.w.act(a.seed, a.candArm[d.Chosen], &a.params[d.Chosen], a.req, o)
	return nil
}

// judge maps the decision's candidates to arms, computes every
// candidate's effective parameters and expected reward, and records the
// oracle's choice and the chosen arm's expectation in the slot. The
// expectations are the oracle's ground truth for regret, which the core
// cannot know; the realised reward is the core's alone.
func (a *actor) judge(d *decision.Decision) {
	s, req, w := a.slot, a.req, a.w
	j := 0
	best, bestV := -1, math.Inf(-1)
	for ci := range d.Candidates {
		// Candidates keep catalogue order, so one forward walk finds them.
		for j < len(w.arms) && w.arms[j].id != d.Candidates[ci].ID {
			j++
		}
		arm := &w.arms[j]
		a.candArm[ci] = j
		p := &a.params[ci]
		arm.paramsInto(req, p)
		v := a.coef.expected(w, arm, p, req)
		if v > bestV {
			best, bestV = j, v
		}
		if ci == d.Chosen {
			s.expected = v
		}
		j++
	}
	s.oracle, s.oracleArm = bestV, best
	s.task = req.task
	s.chosenArm = a.candArm[d.Chosen]
}

// runner holds one run's state.
type runner struct {
	w       *world
	core    *route.Core
	clock   *clock
	act     actor
	free    []*slot
	pending []*slot // min-heap on (done, idx)
	win     int
	k       int

	// accumulators
	n                      int
	reward, expected, orcl float64
	cost                   float64
	lastDone               float64
	statuses               [4]int
	armN, oracleN          []int
	lat                    []float32
	wN, wFail              []int
	wReward, wExp, wOrcl   []float64
	wStart                 []float64
	wArm                   []int // window-major, k per window
	wOracleArm             []int
	task                   []taskAcc
}

// Run simulates o.Requests requests of o.Scenario routed by o.Policy
// through the decision core (route.Core) and reports the result.
func Run(ctx context.Context, o Opts) (*Result, error) {
	if o.Scenario == nil {
		return nil, fmt.Errorf("sim: no scenario")
	}
	if o.Policy == nil {
		return nil, fmt.Errorf("sim: no policy")
	}
	// Validate fills defaults: do it on a copy, so that concurrent runs may
	// share one *Scenario.
	scCopy := *o.Scenario
	scCopy.Providers = slices.Clone(o.Scenario.Providers)
	sc := &scCopy
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if sc.Budget != nil {
		b, ok := o.Policy.(policy.Budgeted)
		if !ok {
			return nil, fmt.Errorf("scenario %q budget: policy %s enforces no spend budget (linear-router does)", sc.Name, o.Policy.Name())
		}
		if err := b.SetBudget(*sc.Budget); err != nil {
			return nil, fmt.Errorf("scenario %q: %w", sc.Name, err)
		}
	}
	n := o.Requests
	if n == 0 {
		n = sc.Requests
		if o.Trace != nil {
			n = o.Trace.Len()
			if n == 0 {
				return nil, fmt.Errorf("sim: the trace is empty")
			}
		}
	}
	if n < 1 {
		return nil, fmt.Errorf("sim: requests %d must be > 0", n)
	}
	if o.Trace != nil && n > o.Trace.Len() {
		return nil, fmt.Errorf("sim: requests %d but the trace holds %d", n, o.Trace.Len())
	}
	win := o.Window
	if win < 0 {
		return nil, fmt.Errorf("sim: window %d must be >= 0", win)
	}
	if win == 0 {
		win = max(1, n/50)
	}
	reward := sc.RewardFunc()
	if o.Reward != nil {
		if err := o.Reward.Validate(); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		reward = *o.Reward
		if reward == (decision.Reward{}) {
			reward = decision.DefaultReward()
		}
	}
	w := compile(sc)
	clk := &clock{start: sc.StartTime()}
	core, err := route.NewCore(route.CoreOpts{
		Catalogue:   w.catalogue,
		Policy:      o.Policy,
		Shadow:      o.Shadow,
		ShadowLearn: o.ShadowLearn,
		Rules:       append([]route.Rule{route.ContextWindowRule{}}, o.Rules...),
		Reward:      reward,
		Sink:        o.Sink,
		Profiles:    route.NewProfiles(route.ProfileOpts{Priors: w.catalogue, Now: clk.Now}),
		Encoder:     o.Encoder,
		Now:         clk.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("sim: scenario %q: %w", sc.Name, err)
	}
	k := len(w.arms)
	nw := (n + win - 1) / win
	r := &runner{
		w: w, core: core, clock: clk, win: win, k: k,
		act:     actor{w: w, coef: newRewardCoef(reward), seed: o.Seed, candArm: make([]int, k), params: make([]params, k)},
		armN:    make([]int, k),
		oracleN: make([]int, k),
		lat:     make([]float32, 0, n),
		wN:      make([]int, nw), wFail: make([]int, nw),
		wReward: make([]float64, nw), wExp: make([]float64, nw), wOrcl: make([]float64, nw),
		wStart: make([]float64, nw), wArm: make([]int, nw*k), wOracleArm: make([]int, nw*k),
		task: make([]taskAcc, len(w.tasks)),
	}
	var tr *traffic
	var feed *traceFeed
	if o.Trace != nil {
		feed = newTraceFeed(w, o.Trace, o.Seed)
	} else {
		tr = newTraffic(w, o.Seed)
	}
	var req request
	var idBuf []byte
	began := time.Now()
	for i := 0; i < n; i++ {
		if i&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sim: %w", err)
			}
		}
		if feed != nil {
			if err := feed.next(i, &req); err != nil {
				return nil, err
			}
		} else {
			tr.next(&req)
		}
		req.idx = i
		// Everything that finished by this arrival completes first: the
		// policy deciding now knows exactly those outcomes.
		if err := r.completeUntil(req.t); err != nil {
			return nil, err
		}
		clk.advance(req.t)
		if i%win == 0 {
			r.wStart[i/win] = req.t
		}
		s := r.slot()
		s.idx = i
		rec := &s.rec
		f := &rec.Request.Features
		f.Tenant, f.Task, f.PromptTokens = "", w.tasks[req.task], req.prompt
		if req.tenant >= 0 {
			f.Tenant = w.tenants[req.tenant]
		}
		f.Time = clk.at(req.t)
		f.Tags = f.Tags[:0]
		if feed != nil {
			// Keep the trace's tenant even when the scenario does not
			// list it, its exact arrival time, and its tags.
			f.Tenant = feed.cur.Features.Tenant
			f.Time = clk.start.Add(feed.cur.At)
			f.Tags = append(f.Tags, feed.cur.Features.Tags...)
		}
		f.Vector = f.Vector[:0]
		rec.Request.Forced = ""
		if feed != nil {
			rec.Request.Forced = feed.cur.Forced
		}
		if o.Sink != nil {
			idBuf = strconv.AppendInt(append(idBuf[:0], 'r'), int64(i), 10)
			rec.Request.ID = string(idBuf)
		}
		if err := r.arrive(ctx, s, &req); err != nil {
			return nil, err
		}
		if o.ImmediateFeedback {
			// The outcome is known at once: complete at the arrival time.
			if err := r.complete(s); err != nil {
				return nil, err
			}
			continue
		}
		r.push(s)
	}
	if err := r.completeUntil(math.Inf(1)); err != nil {
		return nil, err
	}
	wall := time.Since(began).Seconds()
	res := r.result(o, n)
	res.DecisionsPerSecond = float64(n) / math.Max(wall, 1e-9)
	return res, nil
}

// arrive is the acting half of the request's trip through the core, at
// its virtual arrival time: the core decides (rule filter, policy,
// shadow), and the actor serves the choice on the simulated provider,
// which fixes the outcome and the completion time s.done. The core learns
// nothing yet; complete reports the outcome when the clock reaches s.done.
func (r *runner) arrive(ctx context.Context, s *slot, req *request) error {
	rec := &s.rec
	rec.Time = rec.Request.Features.Time
	if err := r.core.Decide(ctx, &rec.Request, &rec.Decision); err != nil {
		return fmt.Errorf("sim: request %d: %w", s.idx, err)
	}
	out := &rec.Outcome
	*out = decision.Outcome{Attempts: out.Attempts[:0]}
	r.act.req, r.act.slot = req, s
	if err := r.act.Act(ctx, &rec.Request, &rec.Decision, out); err != nil {
		return fmt.Errorf("sim: request %d: act: %w", s.idx, err)
	}
	return nil
}

// completeUntil completes, in virtual completion order (ties by arrival),
// every request in flight that finishes by t, moving the clock to each
// completion time.
func (r *runner) completeUntil(t float64) error {
	for len(r.pending) > 0 && r.pending[0].done <= t {
		s := r.pop()
		r.clock.advance(s.done)
		if err := r.complete(s); err != nil {
			return err
		}
	}
	return nil
}

// complete is the learning half of the request's trip through the core:
// route.Core.Complete computes the reward, updates the policy (and the
// shadow), records the outcome in the profiles and logs the record. The
// runner only folds the result into the statistics.
func (r *runner) complete(s *slot) error {
	rec := &s.rec
	if err := r.core.Complete(rec); err != nil {
		return fmt.Errorf("sim: request %d: %w", s.idx, err)
	}
	o := &rec.Outcome
	r.n++
	r.reward += rec.Reward
	r.expected += s.expected
	r.orcl += s.oracle
	r.cost += o.Cost
	r.lastDone = math.Max(r.lastDone, s.done)
	if int(o.Status) < len(r.statuses) {
		r.statuses[o.Status]++
	}
	if o.Status == decision.StatusOK {
		r.lat = append(r.lat, float32(o.Latency.Seconds()*1000))
	}
	r.armN[s.chosenArm]++
	r.oracleN[s.oracleArm]++
	wi := s.idx / r.win
	r.wN[wi]++
	r.wReward[wi] += rec.Reward
	r.wExp[wi] += s.expected
	r.wOrcl[wi] += s.oracle
	if o.Status.Failed() {
		r.wFail[wi]++
	}
	r.wArm[wi*r.k+s.chosenArm]++
	r.wOracleArm[wi*r.k+s.oracleArm]++
	ta := &r.task[s.task]
	if ta.arm == nil {
		ta.arm = make([]int, r.k)
	}
	ta.n++
	ta.reward += rec.Reward
	ta.expected += s.expected
	ta.oracle += s.oracle
	ta.arm[s.chosenArm]++
	r.free = append(r.free, s)
	return nil
}

func (r *runner) slot() *slot {
	if n := len(r.free); n > 0 {
		s := r.free[n-1]
		r.free = r.free[:n-1]
		return s
	}
	return &slot{}
}

func less(a, b *slot) bool { return a.done < b.done || (a.done == b.done && a.idx < b.idx) }

func (r *runner) push(s *slot) {
	h := append(r.pending, s)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	r.pending = h
}

func (r *runner) pop() *slot {
	h := r.pending
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = nil
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if rr := l + 1; rr < len(h) && less(h[rr], h[l]) {
			c = rr
		}
		if !less(h[c], h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	r.pending = h
	return top
}

func (r *runner) result(o Opts, n int) *Result {
	w := r.w
	fn := float64(n)
	res := &Result{
		Policy:               o.Policy.Name(),
		PolicyVersion:        policy.VersionOf(o.Policy),
		Scenario:             w.sc.Name,
		Seed:                 o.Seed,
		Requests:             n,
		VirtualSeconds:       r.lastDone,
		MeanReward:           r.reward / fn,
		ExpectedMeanReward:   r.expected / fn,
		OracleMeanReward:     r.orcl / fn,
		OracleStateDependent: w.sc.Stateful(),
		Regret:               r.orcl - r.expected,
		CostTotal:            r.cost,
		FailureRate:          float64(n-r.statuses[decision.StatusOK]) / fn,
		StatusCounts:         map[string]int{},
		ArmShares:            shares(w, r.armN, n),
		OracleArmShares:      shares(w, r.oracleN, n),
	}
	for st, c := range r.statuses {
		res.StatusCounts[decision.Status(st).String()] = c
	}
	if len(r.lat) > 0 {
		sortLatencies(r.lat)
		res.LatencyP50MS = quantile(r.lat, 0.50)
		res.LatencyP99MS = quantile(r.lat, 0.99)
	}
	var cum float64
	for i := range r.wN {
		wn := float64(r.wN[i])
		cum += r.wOrcl[i] - r.wExp[i]
		res.Windows = append(res.Windows, Window{
			First:              i * r.win,
			Requests:           r.wN[i],
			StartSeconds:       r.wStart[i],
			MeanReward:         r.wReward[i] / wn,
			ExpectedMeanReward: r.wExp[i] / wn,
			OracleMeanReward:   r.wOrcl[i] / wn,
			FailureRate:        float64(r.wFail[i]) / wn,
			CumulativeRegret:   cum,
			ArmShares:          shares(w, r.wArm[i*r.k:(i+1)*r.k], r.wN[i]),
			OracleArmShares:    shares(w, r.wOracleArm[i*r.k:(i+1)*r.k], r.wN[i]),
		})
	}
	res.Tasks = map[string]TaskResult{}
	for i, ta := range r.task {
		if ta.n == 0 {
			continue
		}
		tn := float64(ta.n)
		res.Tasks[w.tasks[i]] = TaskResult{Requests: ta.n, MeanReward: ta.reward / tn, ExpectedMeanReward: ta.expected / tn,
			OracleMeanReward: ta.oracle / tn, ArmShares: shares(w, ta.arm, ta.n)}
	}
	return res
}

func shares(w *world, counts []int, n int) map[string]float64 {
	m := make(map[string]float64, len(counts))
	for i, c := range counts {
		m[w.arms[i].id] = float64(c) / float64(n)
	}
	return m
}

// quantile of sorted xs by the nearest-rank method, rounded to 0.001 ms.
func quantile(xs []float32, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	i = max(0, min(i, len(xs)-1))
	return math.Round(float64(xs[i])*1000) / 1000
}

// sortLatencies sorts positive float32s by a two-pass LSD radix sort on
// their bits (for positive floats the bit patterns order like the values):
// linear time, where a comparison sort of a million latencies would cost
// more than the simulation of them.
func sortLatencies(xs []float32) {
	if len(xs) < 1<<15 {
		// The radix sort's two 64k-entry count tables cost more than this.
		slices.Sort(xs)
		return
	}
	tmp := make([]float32, len(xs))
	src, dst := xs, tmp
	for shift := 0; shift < 32; shift += 16 {
		var count [1 << 16]int
		for _, x := range src {
			count[(math.Float32bits(x)>>shift)&0xffff]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, x := range src {
			k := (math.Float32bits(x) >> shift) & 0xffff
			dst[count[k]] = x
			count[k]++
		}
		src, dst = dst, src
	}
	// Two passes leave the result in xs.
}
