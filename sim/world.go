package sim

import (
	"math"
	"math/rand/v2"
	"sort"

	"github.com/routelab/routelab/decision"
	"gonum.org/v1/gonum/integrate/quad"
)

// quadNodes is the number of Gauss–Hermite nodes of the oracle's
// expectation over the log-normal service time. 12 nodes match a 150-node
// reference to 1e-9 for sigma <= 1 and to ~1e-6 at sigma 1.5
// (TestQuadratureIsPrecise); the timeout's cut is handled separately (see
// oracle.go).
const quadNodes = 12

// legendreNodes is the size of the Gauss–Legendre rule used when the
// timeout cuts the latency distribution.
const legendreNodes = 32

// modifier is a compiled Modifier.
type modifier struct {
	from, to   float64 // seconds from start; to = +Inf when open
	hourMask   uint32  // bit h set = active in hour h; 0 = any hour
	taskMask   uint64  // 0 = any task
	tenantMask uint64  // 0 = any tenant
	minPrompt  int
	maxPrompt  int // 0 = unbounded
	outage     decision.Status
	hasOutage  bool
	quality    []float64 // per task; NaN = no override; nil = none
	errRate    float64   // NaN = no override
	priceMul   float64
	latMul     float64
}

// arm is a compiled Provider with its mutable state (queue, token bucket).
type arm struct {
	id                 string
	priceIn, priceOut  float64 // dollars per token
	mu, sigma          float64 // log-normal of the base service time, seconds
	perIn, perOut      float64 // seconds per token
	failFast           float64 // seconds
	errRate            float64
	quality            []float64 // per task index
	mods               []modifier
	capacity           int
	rl                 bool
	rps, burst         float64
	tokens, lastRefill float64
	// busy is a min-heap of the free times of the servers used so far (at
	// most capacity); servers never used are free.
	busy  []float64
	nodes [quadNodes]float64 // base service times at the Gauss–Hermite nodes
	tail5 float64            // base service time 5 sigma above the median
}

// world is a compiled scenario: the arms, the task and tenant tables, and
// the quadrature weights.
type world struct {
	sc        *Scenario
	arms      []arm
	tasks     []string
	tenants   []string
	timeout   float64
	startSec  float64            // seconds since midnight of the start time
	qw        [quadNodes]float64 // Gauss–Hermite weights / √π
	lx, lw    [legendreNodes]float64
	catalogue []decision.Arm
}

func compile(sc *Scenario) *world {
	w := &world{sc: sc, tasks: sc.Tasks(), tenants: sc.Tenants(), timeout: sc.Timeout.D().Seconds()}
	st := sc.StartTime()
	w.startSec = float64(st.Hour()*3600+st.Minute()*60+st.Second()) + float64(st.Nanosecond())/1e9
	var x, qw [quadNodes]float64
	quad.Hermite{}.FixedLocations(x[:], qw[:], math.Inf(-1), math.Inf(1))
	for i := range qw {
		w.qw[i] = qw[i] / math.SqrtPi
	}
	quad.Legendre{}.FixedLocations(w.lx[:], w.lw[:], -1, 1)
	taskIdx := index(w.tasks)
	tenantIdx := index(w.tenants)
	w.arms = make([]arm, len(sc.Providers))
	w.catalogue = make([]decision.Arm, len(sc.Providers))
	for i := range sc.Providers {
		p := &sc.Providers[i]
		a := &w.arms[i]
		*a = arm{
			id:       p.Name,
			priceIn:  p.PriceIn / 1000,
			priceOut: p.PriceOut / 1000,
			mu:       math.Log(p.Latency.Median.D().Seconds()),
			sigma:    p.Latency.Sigma,
			perIn:    p.Latency.PerPromptToken.D().Seconds(),
			perOut:   p.Latency.PerOutputToken.D().Seconds(),
			failFast: p.FailFast.D().Seconds(),
			errRate:  p.ErrorRate,
			capacity: p.Capacity,
			quality:  taskTable(p.Quality, w.tasks, 0),
		}
		if rl := p.RateLimit; rl != nil {
			a.rl, a.rps, a.burst = true, rl.RPS, rl.Burst
		}
		a.tail5 = math.Exp(a.mu + 5*a.sigma)
		for j := range x {
			a.nodes[j] = math.Exp(a.mu + math.Sqrt2*a.sigma*x[j])
		}
		for _, m := range p.Modifiers {
			a.mods = append(a.mods, compileModifier(&m, w.tasks, taskIdx, tenantIdx))
		}
		// The catalogue's prior quality is the task-mix average of the
		// provider's declared quality, as a provider would advertise it.
		var q, wsum float64
		for t, name := range w.tasks {
			q += sc.Traffic.Tasks[name] * a.quality[t]
			wsum += sc.Traffic.Tasks[name]
		}
		w.catalogue[i] = decision.Arm{ID: p.Name, Provider: p.Provider, PriceIn: p.PriceIn, PriceOut: p.PriceOut, ContextWindow: p.ContextWindow, Quality: q / wsum}
	}
	w.reset()
	return w
}

// reset clears the providers' mutable state for a new run.
func (w *world) reset() {
	for i := range w.arms {
		a := &w.arms[i]
		a.tokens, a.lastRefill = a.burst, 0
		a.busy = a.busy[:0]
	}
}

func index(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}

// taskTable turns a task → value map ("*" = default) into a slice by task
// index; tasks without an entry get def.
func taskTable(m map[string]float64, tasks []string, def float64) []float64 {
	out := make([]float64, len(tasks))
	if v, ok := m["*"]; ok {
		def = v
	}
	for i, t := range tasks {
		if v, ok := m[t]; ok {
			out[i] = v
		} else {
			out[i] = def
		}
	}
	return out
}

func compileModifier(m *Modifier, tasks []string, taskIdx, tenantIdx map[string]int) modifier {
	c := modifier{from: m.When.From.D().Seconds(), to: math.Inf(1), errRate: math.NaN(), priceMul: 1, latMul: 1,
		minPrompt: m.When.MinPromptTokens, maxPrompt: m.When.MaxPromptTokens}
	if m.When.To != 0 {
		c.to = m.When.To.D().Seconds()
	}
	if h := m.When.Hours; len(h) == 2 {
		// [a, b) wrapping past midnight; [0, 24] (or [7, 31 mod 24]) is the
		// whole day, which the zero mask also means.
		for x := h[0] % 24; x != h[1]%24; x = (x + 1) % 24 {
			c.hourMask |= 1 << x
		}
	}
	for _, t := range m.When.Tasks {
		c.taskMask |= 1 << taskIdx[t]
	}
	for _, t := range m.When.Tenants {
		c.tenantMask |= 1 << tenantIdx[t]
	}
	switch m.Outage {
	case "error":
		c.outage, c.hasOutage = decision.StatusError, true
	case "timeout":
		c.outage, c.hasOutage = decision.StatusTimeout, true
	case "rate_limited":
		c.outage, c.hasOutage = decision.StatusRateLimited, true
	}
	if len(m.Quality) > 0 {
		c.quality = taskTable(m.Quality, tasks, math.NaN())
	}
	if m.ErrorRate != nil {
		c.errRate = *m.ErrorRate
	}
	if m.PriceMultiplier != nil {
		c.priceMul = *m.PriceMultiplier
	}
	if m.LatencyMultiplier != nil {
		c.latMul = *m.LatencyMultiplier
	}
	return c
}

// request is one simulated request as the world sees it.
type request struct {
	idx           int
	t             float64 // arrival, seconds from start
	hour          int
	task, tenant  int // tenant -1 when the traffic has no tenants
	prompt, compl int
}

// params are an arm's effective parameters for one request, after the
// modifiers that match it.
type params struct {
	quality, errRate, priceMul, latMul float64
	outage                             decision.Status
	hasOutage                          bool
}

func (a *arm) params(r *request) params {
	var p params
	a.paramsInto(r, &p)
	return p
}

// paramsInto is params writing into p (the simulator's hot path).
func (a *arm) paramsInto(r *request, p *params) {
	*p = params{quality: a.quality[r.task], errRate: a.errRate, priceMul: 1, latMul: 1}
	for i := range a.mods {
		m := &a.mods[i]
		if !m.matches(r) {
			continue
		}
		if m.hasOutage {
			p.outage, p.hasOutage = m.outage, true
		}
		if m.quality != nil && !math.IsNaN(m.quality[r.task]) {
			p.quality = m.quality[r.task]
		}
		if !math.IsNaN(m.errRate) {
			p.errRate = m.errRate
		}
		p.priceMul *= m.priceMul
		p.latMul *= m.latMul
	}
}

func (m *modifier) matches(r *request) bool {
	if r.t < m.from || r.t >= m.to {
		return false
	}
	if m.hourMask != 0 && m.hourMask&(1<<r.hour) == 0 {
		return false
	}
	if m.taskMask != 0 && m.taskMask&(1<<r.task) == 0 {
		return false
	}
	if m.tenantMask != 0 && (r.tenant < 0 || m.tenantMask&(1<<r.tenant) == 0) {
		return false
	}
	if r.prompt < m.minPrompt || (m.maxPrompt > 0 && r.prompt > m.maxPrompt) {
		return false
	}
	return true
}

// bucket returns the tokens in a's rate-limit bucket at time t, without
// taking any.
func (a *arm) bucket(t float64) float64 {
	return math.Min(a.burst, a.tokens+(t-a.lastRefill)*a.rps)
}

// wait is how long a request arriving at t queues before a server frees.
func (a *arm) wait(t float64) float64 {
	if a.capacity == 0 || len(a.busy) < a.capacity {
		return 0
	}
	return math.Max(0, a.busy[0]-t)
}

// occupy books the earliest free server from start for d seconds.
func (a *arm) occupy(start, d float64) {
	if a.capacity == 0 {
		return
	}
	if len(a.busy) < a.capacity && (len(a.busy) == 0 || a.busy[0] > start) {
		// Every server used so far is busy: open a new one. (The heap thus
		// holds as many servers as were ever busy at once, not capacity.)
		h := append(a.busy, start+d)
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if h[p] <= h[i] {
				break
			}
			h[i], h[p] = h[p], h[i]
			i = p
		}
		a.busy = h
		return
	}
	h := a.busy
	h[0] = start + d
	i, n := 0, len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h[r] < h[l] {
			c = r
		}
		if h[i] <= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// traffic generates arrivals: a non-homogeneous Poisson process by
// thinning against a piecewise-constant envelope, whose pieces break at
// burst edges.
type traffic struct {
	rng       *rand.Rand
	rate      float64
	amp, peak float64
	edges     []float64 // sorted burst edges
	bursts    []burst
	taskCum   []float64
	tenantCum []float64
	prompt    TokenDist
	compl     TokenDist
	startSec  float64
	t         float64
}

func newTraffic(w *world, seed uint64) *traffic {
	tr := &w.sc.Traffic
	g := &traffic{
		rng:      rand.New(rand.NewPCG(seed, 0x7261666669630001)), // "traffic" stream
		rate:     tr.Rate,
		prompt:   tr.PromptTokens,
		compl:    tr.CompletionTokens,
		startSec: w.startSec,
	}
	if d := tr.Diurnal; d != nil {
		g.amp, g.peak = d.Amplitude, d.PeakHour
	}
	for _, b := range tr.Bursts {
		from, to := b.From.D().Seconds(), b.To.D().Seconds()
		g.bursts = append(g.bursts, burst{from, to, b.Multiplier})
		g.edges = append(g.edges, from, to)
	}
	sort.Float64s(g.edges)
	g.taskCum = cumulative(tr.Tasks, w.tasks)
	g.tenantCum = cumulative(tr.Tenants, w.tenants)
	return g
}

type burst struct{ from, to, mul float64 }

func cumulative(m map[string]float64, names []string) []float64 {
	out := make([]float64, len(names))
	var s float64
	for i, n := range names {
		s += m[n]
		out[i] = s
	}
	for i := range out {
		out[i] /= s
	}
	return out
}

// burstMul is the product of the multipliers of the bursts active at t.
func (g *traffic) burstMul(t float64) float64 {
	m := 1.0
	for i := range g.bursts {
		if b := &g.bursts[i]; t >= b.from && t < b.to {
			m *= b.mul
		}
	}
	return m
}

// nextEdge is the first burst edge after t, or +Inf.
func (g *traffic) nextEdge(t float64) float64 {
	i := sort.SearchFloat64s(g.edges, t)
	for i < len(g.edges) && g.edges[i] <= t {
		i++
	}
	if i == len(g.edges) {
		return math.Inf(1)
	}
	return g.edges[i]
}

func (g *traffic) diurnal(t float64) float64 {
	if g.amp == 0 {
		return 1
	}
	h := math.Mod(g.startSec+t, 86400) / 3600
	return 1 + g.amp*math.Cos(2*math.Pi*(h-g.peak)/24)
}

// next draws the next request into r.
func (g *traffic) next(r *request) {
	t := g.t
	for {
		env := g.rate * (1 + g.amp) * g.burstMul(t)
		cand := t + g.rng.ExpFloat64()/env
		if edge := g.nextEdge(t); cand >= edge {
			// The envelope changes at the edge; the exponential is
			// memoryless, so restarting there is exact.
			t = edge
			continue
		}
		t = cand
		if g.amp == 0 || g.rng.Float64()*(1+g.amp) < g.diurnal(t) {
			break
		}
	}
	g.t = t
	r.t = t
	r.hour = int(math.Mod(g.startSec+t, 86400)/3600) % 24
	r.task = pick(g.rng, g.taskCum)
	r.tenant = -1
	if len(g.tenantCum) > 0 {
		r.tenant = pick(g.rng, g.tenantCum)
	}
	r.prompt = g.prompt.draw(g.rng)
	r.compl = g.compl.draw(g.rng)
}

func pick(rng *rand.Rand, cum []float64) int {
	u := rng.Float64()
	for i, c := range cum {
		if u < c {
			return i
		}
	}
	return len(cum) - 1
}

func (d *TokenDist) draw(rng *rand.Rand) int {
	v := math.Round(d.Median * math.Exp(d.Sigma*rng.NormFloat64()))
	if v < float64(d.Min) {
		return d.Min
	}
	if v > float64(d.Max) {
		return d.Max
	}
	return int(v)
}

// Per-request noise is counter-based: a hash of (run seed, request index,
// arm, draw), so that every policy run on the same seed sees the same
// latency, error and quality draws for the same request and arm, whatever
// it chose before (common random numbers).
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// noise draws indices; each names one latent draw of a request on an arm.
const (
	drawLatency1 = iota
	drawLatency2
	drawError
	drawQuality
)

func u01(seed uint64, req, armIdx, draw int) float64 {
	x := mix64(seed ^ mix64(uint64(req)*0x9e3779b97f4a7c15+uint64(armIdx)<<3+uint64(draw)+1))
	return (float64(x>>11) + 0.5) / (1 << 53) // in (0,1)
}

// normal is a standard normal draw for (req, arm) by Box–Muller.
func normal(seed uint64, req, armIdx int) float64 {
	u1 := u01(seed, req, armIdx, drawLatency1)
	u2 := u01(seed, req, armIdx, drawLatency2)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
