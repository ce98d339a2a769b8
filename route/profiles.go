package route

import (
	"sort"
	"sync"
	"time"

	"github.com/routelab/routelab/decision"
)

// Profiles is the model profile library: per arm, exponentially weighted
// moving averages of latency, time to first token, error rate, quality and
// token use, plus request counts. The core fills the averages into the
// candidates before Select (the weighted policy's inputs) and the gateway
// serves them at /admin/models. Safe for concurrent use.
type Profiles struct {
	alpha float64
	now   func() time.Time
	mu    sync.RWMutex
	arms  map[string]*profile
}

// ProfileOpts configures NewProfiles.
type ProfileOpts struct {
	// Alpha is the EWMA weight of a new observation; 0 means 0.05.
	Alpha float64
	// Now stamps LastSeenAt; nil means time.Now (the simulator passes its
	// virtual clock).
	Now func() time.Time
	// Priors seed the quality (and, when set, latency) of known arms, from
	// the catalogue, so that the weighted policy has something to go on.
	Priors []decision.Arm
}

type profile struct {
	mu sync.Mutex
	Profile
}

// Profile is a snapshot of one arm's live statistics.
type Profile struct {
	Arm        string    `json:"model"`
	Requests   int64     `json:"requests"`
	Failures   int64     `json:"failures"`
	LatencyMS  float64   `json:"latency_ewma_ms"`
	TTFTMS     float64   `json:"ttft_ewma_ms"`
	ErrorRate  float64   `json:"error_rate_ewma"`
	Quality    float64   `json:"quality_ewma"`
	TokensIn   int64     `json:"tokens_in_total"`
	TokensOut  int64     `json:"tokens_out_total"`
	LastSeenAt time.Time `json:"last_seen_at"`
	qualityN   int64
}

// NewProfiles returns an empty library.
func NewProfiles(o ProfileOpts) *Profiles {
	if o.Alpha <= 0 || o.Alpha > 1 {
		o.Alpha = 0.05
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Profiles{alpha: o.Alpha, now: o.Now, arms: map[string]*profile{}}
	for _, a := range o.Priors {
		pr := p.get(a.ID)
		pr.Quality, pr.LatencyMS, pr.ErrorRate = a.Quality, a.LatencyMS, a.ErrorRate
	}
	return p
}

func (p *Profiles) get(id string) *profile {
	p.mu.RLock()
	pr := p.arms[id]
	p.mu.RUnlock()
	if pr != nil {
		return pr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr = p.arms[id]; pr == nil {
		pr = &profile{Profile: Profile{Arm: id}}
		p.arms[id] = pr
	}
	return pr
}

func (p *Profiles) ewma(old, x float64, first bool) float64 {
	if first {
		return x
	}
	return old + p.alpha*(x-old)
}

// Observe records every attempt of o, and o's quality when known.
func (p *Profiles) Observe(o *decision.Outcome) {
	for i := range o.Attempts {
		a := &o.Attempts[i]
		p.observe(a.Arm, a.Status, a.Latency, 0, 0, 0, false, 0)
	}
	if len(o.Attempts) == 0 && o.Arm != "" {
		p.observe(o.Arm, o.Status, o.Latency, o.TTFT, o.TokensIn, o.TokensOut, o.QualityKnown, o.Quality)
		return
	}
	if o.Arm != "" {
		pr := p.get(o.Arm)
		pr.mu.Lock()
		if o.Status == decision.StatusOK {
			pr.TTFTMS = p.ewma(pr.TTFTMS, ms(o.TTFT), pr.TTFTMS == 0)
		}
		pr.TokensIn += int64(o.TokensIn)
		pr.TokensOut += int64(o.TokensOut)
		if o.QualityKnown {
			pr.Quality = p.ewma(pr.Quality, o.Quality, pr.qualityN == 0 && pr.Quality == 0)
			pr.qualityN++
		}
		pr.mu.Unlock()
	}
}

// ObserveQuality folds a delayed quality score for arm into its profile.
func (p *Profiles) ObserveQuality(arm string, q float64) {
	pr := p.get(arm)
	pr.mu.Lock()
	pr.Quality = p.ewma(pr.Quality, q, pr.qualityN == 0 && pr.Quality == 0)
	pr.qualityN++
	pr.mu.Unlock()
}

func (p *Profiles) observe(arm string, st decision.Status, lat, ttft time.Duration, in, out int, qk bool, q float64) {
	pr := p.get(arm)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	first := pr.Requests == 0
	pr.LastSeenAt = p.now()
	pr.Requests++
	failed := 0.0
	if st.Failed() {
		pr.Failures++
		failed = 1
	}
	pr.ErrorRate = p.ewma(pr.ErrorRate, failed, first)
	if !st.Failed() {
		pr.LatencyMS = p.ewma(pr.LatencyMS, ms(lat), pr.LatencyMS == 0)
		if ttft > 0 {
			pr.TTFTMS = p.ewma(pr.TTFTMS, ms(ttft), pr.TTFTMS == 0)
		}
	}
	pr.TokensIn += int64(in)
	pr.TokensOut += int64(out)
	if qk {
		pr.Quality = p.ewma(pr.Quality, q, pr.qualityN == 0 && pr.Quality == 0)
		pr.qualityN++
	}
}

// Fill copies the live averages into the candidates' profile fields. Arms
// never observed keep the values they came with (catalogue priors).
func (p *Profiles) Fill(cands []decision.Arm) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for i := range cands {
		pr := p.arms[cands[i].ID]
		if pr == nil {
			continue
		}
		pr.mu.Lock()
		if pr.LatencyMS > 0 {
			cands[i].LatencyMS = pr.LatencyMS
		}
		if pr.Quality > 0 {
			cands[i].Quality = pr.Quality
		}
		cands[i].ErrorRate = pr.ErrorRate
		pr.mu.Unlock()
	}
}

// Get returns a snapshot of arm's profile.
func (p *Profiles) Get(arm string) Profile {
	pr := p.get(arm)
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.Profile
}

// All returns snapshots of every profile, sorted by arm.
func (p *Profiles) All() []Profile {
	p.mu.RLock()
	out := make([]Profile, 0, len(p.arms))
	for _, pr := range p.arms {
		pr.mu.Lock()
		out = append(out, pr.Profile)
		pr.mu.Unlock()
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Arm < out[j].Arm })
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
