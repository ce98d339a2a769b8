package fromlogs

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// CalibrateOpts configures Calibrate.
type CalibrateOpts struct {
	// Name of the fitted scenario; empty means "calibrated".
	Name string
	// Seed drives the reservoir samples and the model draws of the
	// goodness-of-fit report.
	Seed uint64
	// Reservoir is how many answered requests per arm are sampled (uniformly,
	// algorithm R) to fit the latency model and to compute KS distances; 0
	// means 20,000. Everything else is fitted from running sums, so memory
	// does not grow with the log (outage bins are capped too).
	Reservoir int
}

// Calibration is a scenario fitted to logs, with its goodness of fit.
type Calibration struct {
	Scenario *sim.Scenario
	Arms     []ArmFit
	// Notes say what the fit could not capture.
	Notes []string
}

// ArmFit is the fit of one provider (arm) and how well it matches the log.
type ArmFit struct {
	Arm string `json:"arm"`
	// Attempts on the arm in the log, and those answered (status ok).
	Attempts int64 `json:"attempts"`
	OK       int64 `json:"ok"`
	// The latency model: TTFT = LogNormal(median, sigma) + PerPromptToken ×
	// prompt tokens; latency = TTFT + PerOutputToken × completion tokens.
	MedianMS         float64 `json:"ttft_base_median_ms"`
	Sigma            float64 `json:"ttft_base_sigma"`
	PerPromptTokenMS float64 `json:"per_prompt_token_ms"`
	PerOutputTokenMS float64 `json:"per_output_token_ms"`
	// Failure rates over attempts, by status.
	ErrorRate       float64 `json:"error_rate"`
	RateLimitedRate float64 `json:"rate_limited_rate"`
	TimeoutRate     float64 `json:"timeout_rate"`
	// Outages are windows where the arm failed at least 90% of at least 10
	// attempts; they become outage modifiers and are left out of the
	// hourly rates.
	Outages []OutageFit `json:"outages,omitempty"`
	// HourlyLatency holds the hours (UTC) whose latency differs by more
	// than 5% from the typical hour, with their multiplier.
	HourlyLatency map[int]float64 `json:"hourly_latency_multiplier,omitempty"`
	// HourlyFailure holds the hours (UTC) whose failure rate differs
	// significantly from the arm's overall rate, with their rate.
	HourlyFailure map[int]float64 `json:"hourly_failure,omitempty"`
	// Prices in dollars per 1k tokens, and hours with a price multiplier.
	PriceIn     float64         `json:"price_in"`
	PriceOut    float64         `json:"price_out"`
	HourlyPrice map[int]float64 `json:"hourly_price_multiplier,omitempty"`
	// Quality is the mean known quality by task ("*": all tasks).
	Quality map[string]float64 `json:"quality"`
	// KS distances between the logged and the fitted distributions of
	// latency and TTFT of answered requests (0 = identical, 1 = disjoint).
	KSLatency float64 `json:"ks_latency"`
	KSTTFT    float64 `json:"ks_ttft"`
	// Samples is the number of answered requests behind the KS distances.
	Samples int `json:"ks_samples"`
	// KSCritical is the two-sample KS critical value at α = 0.05 for
	// Samples logged against Samples modelled draws, and KSLatencyFit and
	// KSTTFTFit the verdicts on the distances (see KSVerdict).
	KSCritical   float64 `json:"ks_critical"`
	KSLatencyFit string  `json:"ks_latency_fit"`
	KSTTFTFit    string  `json:"ks_ttft_fit"`
}

// KS verdicts.
const (
	// FitGood: the logged and modelled samples are not told apart by a
	// two-sample KS test at α = 0.05.
	FitGood = "good fit"
	// FitClose: told apart at α = 0.05 (large samples detect small
	// differences), but the distance is at most KSClose.
	FitClose = "close fit"
	// FitPoor: the distance exceeds both the critical value and KSClose.
	FitPoor = "poor fit"
	// FitUnknown: no sample.
	FitUnknown = "no sample"
)

// KSClose is the KS distance up to which a fit that the test rejects is
// still called close: the distributions' CDFs differ by at most 10
// percentage points anywhere.
const KSClose = 0.1

// KSCritical is the two-sample Kolmogorov–Smirnov critical value at
// α = 0.05 for samples of n and m: c(α)·√((n+m)/(n·m)) with c(0.05) =
// √(−ln(α/2)/2) ≈ 1.358 (the asymptotic formula; conservative here, since
// the modelled distribution was fitted to the logged sample). It is +Inf
// when either sample is empty.
func KSCritical(n, m int) float64 {
	if n <= 0 || m <= 0 {
		return math.Inf(1)
	}
	c := math.Sqrt(-math.Log(0.05/2) / 2)
	return c * math.Sqrt(float64(n+m)/(float64(n)*float64(m)))
}

// KSVerdict names the fit of KS distance d between samples of n and m:
// FitGood when d is within the critical value at α = 0.05, else FitClose
// when d ≤ KSClose, else FitPoor; FitUnknown without samples.
func KSVerdict(d float64, n, m int) string {
	switch crit := KSCritical(n, m); {
	case math.IsInf(crit, 1):
		return FitUnknown
	case d <= crit:
		return FitGood
	case d <= KSClose:
		return FitClose
	}
	return FitPoor
}

// armCal accumulates one arm's statistics in one pass.
type armCal struct {
	attempts, ok            int64
	errs, limited, timeouts int64
	bins                    map[int64]*binStat // by binWidth seconds of Unix time
	binWidth                int64
	timeoutLatency          float64
	limitedLatency          []float64 // capped sample of fail-fast latencies

	// Price least squares on (tokens_in, tokens_out): normal equations.
	price      [24]priceSums
	hourCost   [24]float64
	hourTokIn  [24]float64
	hourTokOut [24]float64
	hourPriced [24]int64

	qSum map[string]float64
	qN   map[string]float64

	res  []sample // reservoir of answered requests
	seen int64
}

// binSeconds is the finest time resolution of outage detection; maxBins
// bounds the bins kept per arm (a few MB): past it, bins merge pairwise
// (the width doubles), so a year of logs is binned at 160 s.
const (
	binSeconds = 10
	maxBins    = 200_000
)

// bin returns the bin of Unix time sec, creating it (and coarsening the
// bins when there are too many).
func (a *armCal) bin(sec int64) *binStat {
	key := floorDiv(sec, a.binWidth)
	if b := a.bins[key]; b != nil {
		return b
	}
	if len(a.bins) >= maxBins {
		merged := make(map[int64]*binStat, len(a.bins)/2+1)
		for k, b := range a.bins {
			nk := floorDiv(k, 2)
			if m := merged[nk]; m != nil {
				m.attempts += b.attempts
				m.failed += b.failed
				m.errs += b.errs
				m.limited += b.limited
				m.timeouts += b.timeouts
			} else {
				merged[nk] = b
			}
		}
		a.bins = merged
		a.binWidth *= 2
		return a.bin(sec)
	}
	b := &binStat{}
	a.bins[key] = b
	return b
}

// binStat counts one arm's attempts in one time bin.
type binStat struct {
	attempts, failed, errs, limited, timeouts int64
}

// OutageFit is a window in which an arm failed (almost) every attempt.
type OutageFit struct {
	// From and To are offsets in seconds from the first logged request.
	From   float64 `json:"from_s"`
	To     float64 `json:"to_s"`
	Status string  `json:"status"`
	// Attempts and Failed count the attempts inside the window.
	Attempts int64 `json:"attempts"`
	Failed   int64 `json:"failed"`
}

type sample struct {
	latency, ttft float64 // seconds
	prompt, compl float64
	hour          int // UTC hour of the request
}

// Calibrate fits a simulator scenario to logged decisions, so that the
// simulator reproduces what production saw, and reports the goodness of fit.
//
// Per arm (provider) it fits, from the attempts answered by that arm: the
// latency model of the simulator — TTFT = LogNormal(median, σ) + a per
// prompt-token time, latency = TTFT + a per completion-token time (least
// squares for the per-token times, then the log-normal from the residual
// TTFT), with latency multipliers for hours of the day that are more than 5%
// slower or faster than the typical hour (which also absorbs queueing under
// daily load peaks); the error, rate-limit and timeout rates overall and by hour of day
// (hours that differ significantly become modifiers); prices per 1k input
// and output tokens by least squares on the logged costs (with hourly price
// multipliers where they differ by more than 2%); and the mean known quality
// per task type. Traffic: the mean arrival rate, a diurnal curve (when the
// log spans at least a day), the task and tenant mix, and log-normal prompt
// and completion token lengths.
//
// What it cannot see, it leaves out and says so in Notes: load-dependent
// queueing (capacity) and token-bucket rate limits — logged 429s become an
// error rate, so the fitted simulator fails as often but not with the same
// status — context windows, and the reward function (the logs carry
// rewards, not its weights). Outages at absolute times are found at 10 s
// resolution (coarser for logs longer than 23 days: windows where an arm
// failed at least 90% of at least 10 attempts) and become outage modifiers.
func Calibrate(ctx context.Context, src replay.Source, o CalibrateOpts) (*Calibration, error) {
	if o.Name == "" {
		o.Name = "calibrated"
	}
	if o.Reservoir <= 0 {
		o.Reservoir = 20_000
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0xca11b))
	arms := map[string]*armCal{}
	get := func(id string) *armCal {
		a := arms[id]
		if a == nil {
			a = &armCal{qSum: map[string]float64{}, qN: map[string]float64{}, bins: map[int64]*binStat{}, binWidth: binSeconds}
			arms[id] = a
		}
		return a
	}
	tasks := map[string]float64{}
	tenants := map[string]float64{}
	var (
		n                        int64
		first, last              time.Time
		hourArrivals             [24]float64
		lp, lpp, lc, lcc         float64 // log prompt and completion tokens
		nc                       float64
		minP, maxP, minC, maxC   = math.MaxInt, 0, math.MaxInt, 0
		sawRateLimit, sawTimeout bool
	)
	err := src.Scan(ctx, func(rec *decision.Record) error {
		i := n
		n++
		if i&8191 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		f := &rec.Request.Features
		t := f.Time
		if t.IsZero() {
			t = rec.Time
		}
		if t.IsZero() {
			return rowErr(i, rec, fmt.Errorf("%w: no request time (needed for the arrival rate)", replay.ErrBadRow))
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
		hourArrivals[t.UTC().Hour()]++
		task := f.Task
		if task == "" {
			task = sim.DefaultTask
		}
		tasks[task]++
		if f.Tenant != "" {
			tenants[f.Tenant]++
		}
		if f.PromptTokens > 0 {
			lp += math.Log(float64(f.PromptTokens))
			lpp += math.Log(float64(f.PromptTokens)) * math.Log(float64(f.PromptTokens))
			minP, maxP = min(minP, f.PromptTokens), max(maxP, f.PromptTokens)
		}
		out := &rec.Outcome
		attempts := out.Attempts
		if len(attempts) == 0 {
			// A log without an attempt chain: the outcome is the one attempt.
			attempts = []decision.Attempt{{Arm: out.Arm, Status: out.Status, Latency: out.Latency}}
		}
		hour := t.UTC().Hour()
		for _, at := range attempts {
			if at.Arm == "" {
				return rowErr(i, rec, fmt.Errorf("%w: attempt without an arm", replay.ErrBadRow))
			}
			a := get(at.Arm)
			a.attempts++
			b := a.bin(t.Unix())
			b.attempts++
			switch at.Status {
			case decision.StatusOK:
			case decision.StatusRateLimited:
				a.limited++
				b.failed++
				b.limited++
				sawRateLimit = true
				if len(a.limitedLatency) < 1000 {
					a.limitedLatency = append(a.limitedLatency, at.Latency.Seconds())
				}
			case decision.StatusTimeout:
				a.timeouts++
				b.failed++
				b.timeouts++
				sawTimeout = true
				a.timeoutLatency = math.Max(a.timeoutLatency, at.Latency.Seconds())
			default:
				a.errs++
				b.failed++
				b.errs++
			}
		}
		// The answer's own measurements belong to the arm that gave it.
		if out.Status != decision.StatusOK || out.Arm == "" {
			return nil
		}
		a := get(out.Arm)
		a.ok++
		p, c := float64(f.PromptTokens), float64(out.TokensOut)
		lat, ttft := out.Latency.Seconds(), out.TTFT.Seconds()
		if c > 0 {
			lc += math.Log(c)
			lcc += math.Log(c) * math.Log(c)
			nc++
			minC, maxC = min(minC, out.TokensOut), max(maxC, out.TokensOut)
		}
		in, ou := float64(out.TokensIn)/1000, float64(out.TokensOut)/1000
		ps := &a.price[hour]
		ps.aa += in * in
		ps.ab += in * ou
		ps.bb += ou * ou
		ps.ac += in * out.Cost
		ps.bc += ou * out.Cost
		a.hourCost[hour] += out.Cost
		a.hourTokIn[hour] += in
		a.hourTokOut[hour] += ou
		a.hourPriced[hour]++
		if out.QualityKnown {
			a.qSum[task] += out.Quality
			a.qN[task]++
		}
		// Reservoir sampling (algorithm R) of answered requests.
		s := sample{latency: lat, ttft: ttft, prompt: p, compl: c, hour: hour}
		a.seen++
		if len(a.res) < o.Reservoir {
			a.res = append(a.res, s)
		} else if j := rng.Int64N(a.seen); j < int64(o.Reservoir) {
			a.res[j] = s
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("calibrate: the log has no rows")
	}
	span := last.Sub(first).Seconds()
	if span <= 0 {
		return nil, fmt.Errorf("calibrate: all %d requests have the same time; cannot fit an arrival rate", n)
	}

	cal := &Calibration{}
	sc := &sim.Scenario{
		Name:        o.Name,
		Description: fmt.Sprintf("fitted by routelab calibrate to %d logged requests from %s to %s", n, first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339)),
		Requests:    int(min(n, math.MaxInt32)),
		Start:       first.UTC().Format(time.RFC3339),
	}
	// The mean gap between n arrivals over span is span/(n−1).
	sc.Traffic.Rate = float64(n-1) / span
	if span >= 86400 {
		// Arrivals per second of each hour of day: a log that does not
		// cover whole days sees some hours more often than others.
		var exposure [24]float64
		for t := first; t.Before(last); {
			next := t.Truncate(time.Hour).Add(time.Hour)
			if next.After(last) {
				next = last
			}
			exposure[t.UTC().Hour()] += next.Sub(t).Seconds()
			t = next
		}
		var rates [24]float64
		for h := range rates {
			if exposure[h] > 0 {
				rates[h] = hourArrivals[h] / exposure[h]
			}
		}
		if d := fitDiurnal(rates); d != nil {
			sc.Traffic.Diurnal = d
			// The curve's mean over a day is the base rate; n/span
			// over-weights the hours the log covers twice.
			mean := 0.0
			for _, r := range rates {
				mean += r / 24
			}
			sc.Traffic.Rate = mean
		}
	} else {
		cal.Notes = append(cal.Notes, fmt.Sprintf("the log spans %.0f s, less than a day: no diurnal curve fitted", span))
	}
	sc.Traffic.Tasks = tasks
	if len(tasks) > sim.MaxTasks {
		return nil, fmt.Errorf("calibrate: %d task types, the simulator takes at most %d", len(tasks), sim.MaxTasks)
	}
	if len(tenants) > 0 && len(tenants) <= sim.MaxTenants {
		sc.Traffic.Tenants = tenants
	} else if len(tenants) > sim.MaxTenants {
		cal.Notes = append(cal.Notes, fmt.Sprintf("%d tenants, more than the simulator's %d: tenant mix left out", len(tenants), sim.MaxTenants))
	}
	sc.Traffic.PromptTokens = tokenDist(lp, lpp, float64(n), minP, maxP)
	sc.Traffic.CompletionTokens = tokenDist(lc, lcc, nc, minC, maxC)

	ids := make([]string, 0, len(arms))
	for id := range arms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var timeout float64
	for _, id := range ids {
		a := arms[id]
		fit, prov := a.fit(id, rng, first)
		if len(prov.Quality) == 0 {
			prov.Quality = map[string]float64{"*": 0}
			cal.Notes = append(cal.Notes, fmt.Sprintf("arm %q: no answer of known quality in the log; quality set to 0", id))
		}
		if a.ok == 0 {
			cal.Notes = append(cal.Notes, fmt.Sprintf("arm %q: never answered; its latency model is a placeholder", id))
		}
		cal.Arms = append(cal.Arms, fit)
		sc.Providers = append(sc.Providers, prov)
		timeout = math.Max(timeout, a.timeoutLatency)
	}
	if sawTimeout && timeout > 0 {
		sc.Timeout = sim.Duration(time.Duration(timeout * float64(time.Second)).Round(time.Millisecond))
	}
	if sawRateLimit {
		cal.Notes = append(cal.Notes, "rate-limited (429) attempts are fitted as an error rate: the simulator's rate limits depend on load, which the log does not identify")
	}
	cal.Notes = append(cal.Notes,
		"not fitted: provider capacity (load-dependent queueing), context windows, provider labels, the reward function (scenario default)")
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("calibrate: fitted scenario is invalid: %w", err)
	}
	cal.Scenario = sc
	return cal, nil
}

// fit turns an arm's sums into its ArmFit and simulator Provider.
func (a *armCal) fit(id string, rng *rand.Rand, first time.Time) (ArmFit, sim.Provider) {
	f := ArmFit{Arm: id, Attempts: a.attempts, OK: a.ok, Quality: map[string]float64{}}
	p := sim.Provider{Name: id}
	if a.attempts > 0 {
		f.ErrorRate = float64(a.errs) / float64(a.attempts)
		f.RateLimitedRate = float64(a.limited) / float64(a.attempts)
		f.TimeoutRate = float64(a.timeouts) / float64(a.attempts)
	}
	// Timeouts come from the latency model; errors and 429s are drawn.
	fail := f.ErrorRate + f.RateLimitedRate
	p.ErrorRate = clamp01(fail)
	if len(a.limitedLatency) > 0 {
		p.FailFast = sim.Duration(time.Duration(median(a.limitedLatency) * float64(time.Second)).Round(time.Millisecond))
	}

	// The latency model, from the reservoir of answered requests: fit on
	// all hours, find the hours whose latency differs (latency multipliers:
	// slow office hours, or queueing under load), then refit the base on
	// the samples with those hours' multipliers divided out.
	mult := [24]float64{}
	for h := range mult {
		mult[h] = 1
	}
	lm := fitLatency(a.res, &mult)
	hourMult := hourlyLatency(a.res, lm)
	if len(hourMult) > 0 {
		for h, m := range hourMult {
			mult[h] = m
		}
		lm = fitLatency(a.res, &mult)
		// Re-estimate the multipliers against the refitted base, keeping
		// the same hours.
		again := hourlyLatencyAll(a.res, lm)
		for h := range hourMult {
			if m, ok := again[h]; ok {
				hourMult[h], mult[h] = m, m
			}
		}
		f.HourlyLatency = hourMult
	}
	perIn, perOut, mu, sigma := lm.perIn, lm.perOut, lm.mu, lm.sigma
	f.PerPromptTokenMS, f.PerOutputTokenMS = 1000*perIn, 1000*perOut
	f.MedianMS, f.Sigma = 1000*math.Exp(mu), sigma
	p.Latency = sim.Latency{
		Median:         sim.Duration(time.Duration(math.Exp(mu) * float64(time.Second))),
		Sigma:          sigma,
		PerPromptToken: sim.Duration(time.Duration(perIn * float64(time.Second))),
		PerOutputToken: sim.Duration(time.Duration(perOut * float64(time.Second))),
	}
	hours := make([]int, 0, len(hourMult))
	for h := range hourMult {
		hours = append(hours, h)
	}
	sort.Ints(hours)
	for _, h := range hours {
		m := hourMult[h]
		p.Modifiers = append(p.Modifiers, sim.Modifier{When: sim.When{Hours: []int{h, (h + 1) % 24}}, LatencyMultiplier: &m})
	}

	// Prices: least squares of cost on (tokens_in/1000, tokens_out/1000)
	// over all hours first; refitted below on the typical hours.
	var all priceSums
	for h := range a.price {
		all.add(&a.price[h])
	}
	f.PriceIn, f.PriceOut = all.solve()
	p.PriceIn, p.PriceOut = f.PriceIn, f.PriceOut

	// Quality per task, and "*" over all tasks.
	var qs, qn float64
	for task, s := range a.qSum {
		f.Quality[task] = s / a.qN[task]
		qs += s
		qn += a.qN[task]
	}
	if qn > 0 {
		f.Quality["*"] = qs / qn
	}
	p.Quality = f.Quality

	// Outages at absolute times, then hourly rates over the other bins.
	var hourAttempts, hourFailed [24]int64
	inOutage := map[int64]bool{}
	for _, run := range outageRuns(a.bins) {
		o := OutageFit{
			From: math.Max(0, float64(run.from*a.binWidth)-float64(first.Unix())),
			To:   float64((run.to+1)*a.binWidth) - float64(first.Unix()),
		}
		var errs, limited, timeouts int64
		for k := run.from; k <= run.to; k++ {
			if b := a.bins[k]; b != nil {
				inOutage[k] = true
				o.Attempts += b.attempts
				o.Failed += b.failed
				errs, limited, timeouts = errs+b.errs, limited+b.limited, timeouts+b.timeouts
			}
		}
		switch {
		case timeouts > errs && timeouts > limited:
			o.Status = decision.StatusTimeout.String()
		case limited > errs:
			o.Status = decision.StatusRateLimited.String()
		default:
			o.Status = decision.StatusError.String()
		}
		f.Outages = append(f.Outages, o)
		p.Modifiers = append(p.Modifiers, sim.Modifier{
			When:   sim.When{From: sim.Duration(time.Duration(o.From * float64(time.Second))), To: sim.Duration(time.Duration(o.To * float64(time.Second)))},
			Outage: o.Status,
		})
	}
	var restAll, failAll int64
	for k, b := range a.bins {
		if inOutage[k] {
			continue
		}
		h := time.Unix(k*a.binWidth, 0).UTC().Hour()
		hourAttempts[h] += b.attempts
		hourFailed[h] += b.failed
		restAll += b.attempts
		failAll += b.failed
	}
	if restAll > 0 && len(f.Outages) > 0 {
		p.ErrorRate = clamp01(float64(failAll)/float64(restAll) - f.TimeoutRate)
	}

	// Hourly failure modifiers: hours whose failure rate differs clearly
	// from the typical (median) hour get their own rate; the base rate is
	// pooled over the other hours, so a few bad hours do not inflate it.
	var hourRates []float64
	for h := 0; h < 24; h++ {
		if hourAttempts[h] >= 30 {
			hourRates = append(hourRates, float64(hourFailed[h])/float64(hourAttempts[h]))
		}
	}
	if len(hourRates) > 1 {
		base := median(hourRates)
		var restN, restF int64
		for h := 0; h < 24; h++ {
			nh := float64(hourAttempts[h])
			rate := 0.0
			if nh > 0 {
				rate = float64(hourFailed[h]) / nh
			}
			se := math.Sqrt(math.Max(base*(1-base), 1/nh) / nh)
			if nh < 30 || math.Abs(rate-base) <= 3*se || math.Abs(rate-base) <= 0.01 {
				restN += hourAttempts[h]
				restF += hourFailed[h]
				continue
			}
			// Timeouts are in the hourly count but come from latency in the
			// simulator: subtract the arm's timeout share.
			drawn := clamp01(rate - f.TimeoutRate)
			if f.HourlyFailure == nil {
				f.HourlyFailure = map[int]float64{}
			}
			f.HourlyFailure[h] = drawn
			p.Modifiers = append(p.Modifiers, sim.Modifier{When: sim.When{Hours: []int{h, (h + 1) % 24}}, ErrorRate: &drawn})
		}
		if restN > 0 {
			p.ErrorRate = clamp01(float64(restF)/float64(restN) - f.TimeoutRate)
		}
	}
	// Hourly price multipliers: each hour's cost over the cost the fitted
	// prices predict, relative to the typical (median) hour, whose prices
	// become the base; hours more than 2% off get a multiplier.
	priceMul := map[int]float64{}
	var muls []float64
	for h := 0; h < 24; h++ {
		if a.hourPriced[h] < 30 {
			continue
		}
		if pred := f.PriceIn*a.hourTokIn[h] + f.PriceOut*a.hourTokOut[h]; pred > 0 {
			priceMul[h] = a.hourCost[h] / pred
			muls = append(muls, priceMul[h])
		}
	}
	if len(muls) > 1 {
		ref := median(muls)
		typical := map[int]bool{}
		var base priceSums
		for h, m := range priceMul {
			if math.Abs(m/ref-1) <= 0.02 {
				typical[h] = true
				base.add(&a.price[h])
			}
		}
		if pi, po := base.solve(); pi+po > 0 {
			f.PriceIn, f.PriceOut = pi, po
			p.PriceIn, p.PriceOut = pi, po
		}
		for h := 0; h < 24; h++ {
			if _, ok := priceMul[h]; !ok || typical[h] {
				continue
			}
			pred := f.PriceIn*a.hourTokIn[h] + f.PriceOut*a.hourTokOut[h]
			if pred <= 0 {
				continue
			}
			m := a.hourCost[h] / pred
			if f.HourlyPrice == nil {
				f.HourlyPrice = map[int]float64{}
			}
			f.HourlyPrice[h] = m
			p.Modifiers = append(p.Modifiers, sim.Modifier{When: sim.When{Hours: []int{h, (h + 1) % 24}}, PriceMultiplier: &m})
		}
	}

	// Goodness of fit: the logged latencies against draws from the fitted
	// model on the same requests' token counts.
	if len(a.res) > 0 {
		obsL := make([]float64, len(a.res))
		obsT := make([]float64, len(a.res))
		modL := make([]float64, len(a.res))
		modT := make([]float64, len(a.res))
		for i, s := range a.res {
			x := math.Exp(mu + sigma*rng.NormFloat64())
			m := mult[s.hour]
			t := m * (x + perIn*s.prompt)
			obsL[i], obsT[i] = s.latency, s.ttft
			modT[i], modL[i] = t, t+m*perOut*s.compl
		}
		f.KSLatency = ks(obsL, modL)
		f.KSTTFT = ks(obsT, modT)
		f.Samples = len(a.res)
		f.KSCritical = KSCritical(f.Samples, f.Samples)
		f.KSLatencyFit = KSVerdict(f.KSLatency, f.Samples, f.Samples)
		f.KSTTFTFit = KSVerdict(f.KSTTFT, f.Samples, f.Samples)
	} else {
		f.KSLatencyFit, f.KSTTFTFit = FitUnknown, FitUnknown
	}
	return f, p
}

// priceSums are the normal equations of cost ≈ in·PriceIn + out·PriceOut
// (tokens in thousands).
type priceSums struct{ aa, ab, bb, ac, bc float64 }

func (p *priceSums) add(q *priceSums) {
	p.aa, p.ab, p.bb, p.ac, p.bc = p.aa+q.aa, p.ab+q.ab, p.bb+q.bb, p.ac+q.ac, p.bc+q.bc
}

// solve returns the least-squares prices, or zeros when the tokens do not
// determine them.
func (p *priceSums) solve() (in, out float64) {
	det := p.aa*p.bb - p.ab*p.ab
	if !(det > 1e-12*(p.aa*p.bb)) || det <= 0 {
		return 0, 0
	}
	return math.Max(0, (p.ac*p.bb-p.bc*p.ab)/det), math.Max(0, (p.bc*p.aa-p.ac*p.ab)/det)
}

// latModel is the fitted latency model of an arm.
type latModel struct{ perIn, perOut, mu, sigma float64 }

// fitLatency fits the latency model to samples whose latencies are divided
// by their hour's multiplier: per-output-token time by least squares
// through the origin on latency − TTFT, per-prompt-token time as the slope
// of TTFT on prompt tokens, and the log-normal from TTFT minus that.
func fitLatency(res []sample, mult *[24]float64) latModel {
	var lm latModel
	var n, sp, spp, st, spt, sdc, scc float64
	for _, s := range res {
		m := mult[s.hour]
		t, d := s.ttft/m, (s.latency-s.ttft)/m
		n++
		sp += s.prompt
		spp += s.prompt * s.prompt
		st += t
		spt += s.prompt * t
		sdc += d * s.compl
		scc += s.compl * s.compl
	}
	if n > 1 {
		if v := spp - sp*sp/n; v > 1e-9*spp {
			lm.perIn = math.Max(0, (spt-sp*st/n)/v)
		}
	}
	if scc > 0 {
		lm.perOut = math.Max(0, sdc/scc)
	}
	var ls, lss, k float64
	for _, s := range res {
		x := s.ttft/mult[s.hour] - lm.perIn*s.prompt
		if x <= 0 {
			continue
		}
		ls += math.Log(x)
		lss += math.Log(x) * math.Log(x)
		k++
	}
	lm.mu = math.Log(0.001)
	if k > 0 {
		lm.mu = ls / k
		if k > 1 {
			lm.sigma = math.Sqrt(math.Max(0, (lss-ls*ls/k)/(k-1)))
		}
	}
	lm.sigma = math.Min(lm.sigma, sim.MaxSigma)
	return lm
}

// hourlyLatencyAll returns, per hour with at least 30 samples, the
// geometric-mean ratio of logged latency to the model's median latency for
// the same tokens, relative to the typical (median) hour, with the
// standard error of its log.
func hourlyLatencyAll(res []sample, lm latModel) map[int]float64 {
	out, _ := hourlyRatios(res, lm)
	return out
}

func hourlyRatios(res []sample, lm latModel) (map[int]float64, map[int]float64) {
	var sum, sumSq, n [24]float64
	base := math.Exp(lm.mu)
	for _, s := range res {
		med := base + lm.perIn*s.prompt + lm.perOut*s.compl
		if med <= 0 || s.latency <= 0 {
			continue
		}
		r := math.Log(s.latency / med)
		sum[s.hour] += r
		sumSq[s.hour] += r * r
		n[s.hour]++
	}
	var means []float64
	for h := 0; h < 24; h++ {
		if n[h] >= 30 {
			means = append(means, sum[h]/n[h])
		}
	}
	if len(means) < 2 {
		return nil, nil
	}
	ref := median(means)
	mult, se := map[int]float64{}, map[int]float64{}
	for h := 0; h < 24; h++ {
		if n[h] < 30 {
			continue
		}
		m := sum[h] / n[h]
		v := math.Max(0, (sumSq[h]-sum[h]*sum[h]/n[h])/(n[h]-1))
		mult[h] = math.Exp(m - ref)
		se[h] = math.Sqrt(v / n[h])
	}
	return mult, se
}

// hourlyLatency keeps the hours whose multiplier differs from 1 by more
// than 5% and by more than three standard errors.
func hourlyLatency(res []sample, lm latModel) map[int]float64 {
	mult, se := hourlyRatios(res, lm)
	out := map[int]float64{}
	for h, m := range mult {
		if l := math.Abs(math.Log(m)); m > 0 && math.Abs(m-1) > 0.05 && l > 3*se[h] {
			out[h] = math.Min(m, sim.MaxMultiplier)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// binRun is a run of bins [from, to] (inclusive bin keys).
type binRun struct{ from, to int64 }

// outageRuns finds runs of bins in which nearly every attempt failed:
// consecutive "down" bins (≥ 80% failed), bridging gaps of up to 3 empty
// bins, whose attempts together number at least 10 and failed at least 90%.
func outageRuns(bins map[int64]*binStat) []binRun {
	keys := make([]int64, 0, len(bins))
	for k := range bins {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []binRun
	var cur binRun
	var att, failed int64
	open := false
	flush := func() {
		if open && att >= 10 && float64(failed) >= 0.9*float64(att) {
			out = append(out, cur)
		}
		open, att, failed = false, 0, 0
	}
	for _, k := range keys {
		b := bins[k]
		down := float64(b.failed) >= 0.8*float64(b.attempts)
		if !down {
			flush()
			continue
		}
		if open && k-cur.to > 4 {
			flush()
		}
		if !open {
			cur, open = binRun{from: k, to: k}, true
		}
		cur.to = k
		att += b.attempts
		failed += b.failed
	}
	flush()
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// fitDiurnal fits rate ∝ 1 + A·cos(2π(h − peak)/24) to hourly arrival
// rates by their first Fourier component; nil when the curve is flat.
func fitDiurnal(counts [24]float64) *sim.Diurnal {
	var total, c, s float64
	for h, n := range counts {
		ang := 2 * math.Pi * (float64(h) + 0.5) / 24
		total += n
		c += n * math.Cos(ang)
		s += n * math.Sin(ang)
	}
	if total == 0 {
		return nil
	}
	amp := 2 * math.Hypot(c, s) / total
	if amp < 0.02 {
		return nil
	}
	peak := math.Mod(math.Atan2(s, c)*24/(2*math.Pi)+24, 24)
	return &sim.Diurnal{Amplitude: math.Min(amp, 1), PeakHour: peak}
}

// tokenDist is the log-normal with the logs' mean and deviation, clamped
// to the observed range.
func tokenDist(s, ss, n float64, lo, hi int) sim.TokenDist {
	if n == 0 || hi == 0 {
		return sim.TokenDist{}
	}
	mu := s / n
	sigma := 0.0
	if n > 1 {
		sigma = math.Sqrt(math.Max(0, (ss-s*s/n)/(n-1)))
	}
	return sim.TokenDist{Median: math.Exp(mu), Sigma: math.Min(sigma, sim.MaxSigma), Min: max(lo, 1), Max: min(max(hi, 1), sim.MaxTokens)}
}

// ks is the two-sample Kolmogorov–Smirnov distance; it sorts its inputs.
func ks(a, b []float64) float64 {
	slices.Sort(a)
	slices.Sort(b)
	var i, j int
	d := 0.0
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	// Linear interpolation between order statistics, as replay's
	// bootstrap quantiles.
	h := 0.5 * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }
