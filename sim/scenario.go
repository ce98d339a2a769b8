package sim

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"go.yaml.in/yaml/v3"
)

// Limits that keep a scenario's memory and run time bounded; a scenario
// beyond them is rejected by Validate.
const (
	MaxProviders   = 256
	MaxTasks       = 64 // tasks and tenants are bit masks in modifiers
	MaxTenants     = 64
	MaxCapacity    = 1 << 20
	MaxRate        = 1e7 // arrivals per second
	MinRate        = 1e-6
	MaxMultiplier  = 1000
	MaxSigma       = 4
	MaxTokens      = 10_000_000
	DefaultTask    = "general"
	defaultStart   = "2026-01-05T00:00:00Z" // a Monday, 00:00 UTC
	defaultTimeout = 30 * time.Second
)

// Scenario is a simulated world: traffic and the providers that serve it.
// It is what a scenario YAML file decodes into (see docs/scenarios.md for
// the format, field by field); build one in Go or with ParseScenario, and
// call Validate before use (Run does).
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Requests is the default run length when the caller gives none;
	// 0 means 100000.
	Requests int `yaml:"requests"`
	// Start is the virtual clock's start, RFC 3339; empty means
	// 2026-01-05T00:00:00Z (a Monday at midnight UTC).
	Start string `yaml:"start"`
	// Timeout is when a request gives up: a slower answer is StatusTimeout.
	// Zero means 30s.
	Timeout Duration    `yaml:"timeout"`
	Reward  *RewardSpec `yaml:"reward"`
	// Encoder, optional, overrides the feature encoder contextual policies
	// see (policy.EncoderSpec); default EncoderSpec().
	Encoder   *policy.EncoderSpec `yaml:"encoder"`
	Traffic   Traffic             `yaml:"traffic"`
	Providers []Provider          `yaml:"providers"`
	// Budget, optional, is a spend budget set on the run's policy, which
	// must enforce one (policy.Budgeted: linear-router); it is enforced
	// on the realised cost of every completed request, per tenant, with
	// windows on the virtual clock (policy.BudgetSpec).
	Budget *policy.BudgetSpec `yaml:"budget"`
	start  time.Time          // parsed Start, set by Validate
	reward decision.Reward    // resolved Reward, set by Validate
}

// RewardSpec is the `reward:` block: decision.RewardSpec, the schema the
// gateway config shares; an absent field keeps decision.DefaultReward's value.
type RewardSpec = decision.RewardSpec

// Traffic describes the arrival process and the requests' make-up.
type Traffic struct {
	// Rate is the mean arrival rate in requests per second before the
	// diurnal curve and bursts.
	Rate    float64  `yaml:"rate"`
	Diurnal *Diurnal `yaml:"diurnal"`
	Bursts  []Burst  `yaml:"bursts"`
	// Tasks maps task type to relative weight; empty means one task,
	// "general".
	Tasks map[string]float64 `yaml:"tasks"`
	// Tenants maps tenant to relative weight; empty means no tenant.
	Tenants          map[string]float64 `yaml:"tenants"`
	PromptTokens     TokenDist          `yaml:"prompt_tokens"`
	CompletionTokens TokenDist          `yaml:"completion_tokens"`
}

// Diurnal modulates the rate by time of day (UTC):
// rate·(1 + Amplitude·cos(2π(hour − PeakHour)/24)).
type Diurnal struct {
	Amplitude float64 `yaml:"amplitude"`
	PeakHour  float64 `yaml:"peak_hour"`
}

// Burst multiplies the rate inside [From, To) (offsets from the start).
// Overlapping bursts multiply.
type Burst struct {
	From       Duration `yaml:"from"`
	To         Duration `yaml:"to"`
	Multiplier float64  `yaml:"multiplier"`
}

// TokenDist is a log-normal token count with the given median and shape,
// rounded and clamped to [Min, Max]. The zero value takes the defaults of
// its field (prompt: median 500, sigma 0.8, max 32000; completion: median
// 200, sigma 0.6, max 4000; min 1).
type TokenDist struct {
	Median float64 `yaml:"median"`
	Sigma  float64 `yaml:"sigma"`
	Min    int     `yaml:"min"`
	Max    int     `yaml:"max"`
}

// Provider is one arm: a model served by a provider.
type Provider struct {
	// Name is the arm's model id, unique in the scenario.
	Name string `yaml:"name"`
	// Provider is a label (the serving company); optional.
	Provider string `yaml:"provider"`
	// ContextWindow in tokens; 0 means unlimited. Prompts that do not fit
	// are filtered out by the rule filter.
	ContextWindow int `yaml:"context_window"`
	// PriceIn and PriceOut are US dollars per 1,000 prompt / completion tokens.
	PriceIn  float64 `yaml:"price_in"`
	PriceOut float64 `yaml:"price_out"`
	Latency  Latency `yaml:"latency"`
	// Capacity is how many requests the provider serves at once; more wait
	// in a FIFO queue. 0 means unlimited (no queueing).
	Capacity  int        `yaml:"capacity"`
	RateLimit *RateLimit `yaml:"rate_limit"`
	// ErrorRate is the probability that an answer fails with StatusError.
	ErrorRate float64 `yaml:"error_rate"`
	// FailFast is the latency of a 429 or an outage error; 0 means 50ms.
	FailFast Duration `yaml:"fail_fast"`
	// Quality maps task type to the probability that the answer is
	// correct; the key "*" covers tasks not listed.
	Quality   map[string]float64 `yaml:"quality"`
	Modifiers []Modifier         `yaml:"modifiers"`
}

// Latency is the service time of one request when the provider is not
// queueing: a log-normal time to first token (Median, Sigma) plus
// PerPromptToken per prompt token and PerOutputToken per completion token.
type Latency struct {
	Median         Duration `yaml:"median"`
	Sigma          float64  `yaml:"sigma"`
	PerPromptToken Duration `yaml:"per_prompt_token"`
	PerOutputToken Duration `yaml:"per_output_token"`
}

// RateLimit is a token bucket on virtual time: RPS tokens per second, at
// most Burst banked. A request finding the bucket empty gets StatusRateLimited.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst float64 `yaml:"burst"`
}

// Modifier changes a provider while its When matches: outages, drift,
// day/night prices, per-segment quality. Later modifiers override earlier
// ones; multipliers multiply.
type Modifier struct {
	When When `yaml:"when"`
	// Outage fails every request: "error", "timeout" or "rate_limited".
	Outage string `yaml:"outage"`
	// Quality overrides the provider's quality for the listed tasks ("*" = all).
	Quality           map[string]float64 `yaml:"quality"`
	ErrorRate         *float64           `yaml:"error_rate"`
	PriceMultiplier   *float64           `yaml:"price_multiplier"`
	LatencyMultiplier *float64           `yaml:"latency_multiplier"`
}

// When is a conjunction of conditions; an empty When always matches.
type When struct {
	// From and To are offsets from the start; To 0 means until the end.
	From Duration `yaml:"from"`
	To   Duration `yaml:"to"`
	// Hours is [start, end) in UTC hours, wrapping past midnight ([22, 6]).
	Hours           []int    `yaml:"hours"`
	Tasks           []string `yaml:"tasks"`
	Tenants         []string `yaml:"tenants"`
	MinPromptTokens int      `yaml:"min_prompt_tokens"`
	// MaxPromptTokens is inclusive; 0 means no upper bound.
	MaxPromptTokens int `yaml:"max_prompt_tokens"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("250ms", "1h30m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like \"250ms\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like \"250ms\" or \"1h30m\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

//go:embed scenarios/*.yaml
var builtinFS embed.FS

// BuiltinScenarios returns the names of the embedded scenarios, sorted.
func BuiltinScenarios() []string {
	ents, err := builtinFS.ReadDir("scenarios")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// BuiltinScenarioYAML returns the YAML source of the built-in scenario
// name, for users to copy and edit.
func BuiltinScenarioYAML(name string) ([]byte, error) {
	b, err := builtinFS.ReadFile("scenarios/" + name + ".yaml")
	if err != nil || strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("unknown scenario %q (built-ins: %s)", name, strings.Join(BuiltinScenarios(), ", "))
	}
	return b, nil
}

// LoadScenario returns the built-in scenario called nameOrPath or, when no
// built-in has that name, the scenario in the YAML file at that path.
func LoadScenario(nameOrPath string) (*Scenario, error) {
	if b, err := BuiltinScenarioYAML(nameOrPath); err == nil {
		return ParseScenario(nameOrPath, b)
	}
	b, err := os.ReadFile(nameOrPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("unknown scenario %q: not a built-in (%s) and no such file", nameOrPath, strings.Join(BuiltinScenarios(), ", "))
		}
		return nil, fmt.Errorf("load scenario %q: %w", nameOrPath, err)
	}
	name := strings.TrimSuffix(filepath.Base(nameOrPath), filepath.Ext(nameOrPath))
	return ParseScenario(name, b)
}

// ParseScenario decodes a scenario from YAML strictly (an unknown field is
// an error) and validates it. name is used in errors and when the YAML has
// no name of its own.
func ParseScenario(name string, data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("scenario %q: empty document", name)
		}
		return nil, fmt.Errorf("scenario %q: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("scenario %q: more than one YAML document", name)
	}
	if s.Name == "" {
		s.Name = name
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks every field, fills defaults, and reports the first
// problem as `scenario "NAME": path.to.field: problem`.
func (s *Scenario) Validate() error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("scenario %q: %w", s.Name, err)
	}
	return nil
}

func fieldErr(path, format string, a ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...))
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkProb(path string, v float64) error {
	if !finite(v) || v < 0 || v > 1 {
		return fieldErr(path, "%v outside [0,1]", v)
	}
	return nil
}

func checkPositive(path string, v float64) error {
	if !finite(v) || v <= 0 {
		return fieldErr(path, "%v must be a finite number > 0", v)
	}
	return nil
}

func checkNonNeg(path string, v float64) error {
	if !finite(v) || v < 0 {
		return fieldErr(path, "%v must be a finite number >= 0", v)
	}
	return nil
}

func checkDur(path string, d Duration) error {
	if d < 0 {
		return fieldErr(path, "%v must not be negative", d.D())
	}
	return nil
}

func (s *Scenario) validate() error {
	if s.Requests < 0 {
		return fieldErr("requests", "%d must be >= 0", s.Requests)
	}
	if s.Requests == 0 {
		s.Requests = 100_000
	}
	if s.Start == "" {
		s.Start = defaultStart
	}
	st, err := time.Parse(time.RFC3339, s.Start)
	if err != nil {
		return fieldErr("start", "%q is not an RFC 3339 time like %q", s.Start, defaultStart)
	}
	s.start = st.UTC()
	if err := checkDur("timeout", s.Timeout); err != nil {
		return err
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(defaultTimeout)
	}
	if err := s.validateReward(); err != nil {
		return err
	}
	if err := s.EncoderSpec().Validate(); err != nil {
		return err
	}
	if err := s.Traffic.validate(); err != nil {
		return err
	}
	if len(s.Providers) == 0 {
		return fieldErr("providers", "no providers")
	}
	if len(s.Providers) > MaxProviders {
		return fieldErr("providers", "%d providers, at most %d", len(s.Providers), MaxProviders)
	}
	seen := map[string]int{}
	fits := false
	for i := range s.Providers {
		p := &s.Providers[i]
		path := fmt.Sprintf("providers[%d]", i)
		if p.Name == "" {
			return fieldErr(path+".name", "empty")
		}
		if j, dup := seen[p.Name]; dup {
			return fieldErr(path+".name", "%q already used by providers[%d]", p.Name, j)
		}
		seen[p.Name] = i
		if err := p.validate(path, &s.Traffic); err != nil {
			return err
		}
		if p.ContextWindow == 0 || p.ContextWindow >= s.Traffic.PromptTokens.Max {
			fits = true
		}
	}
	if !fits {
		return fieldErr("providers", "no provider's context_window holds traffic.prompt_tokens.max %d", s.Traffic.PromptTokens.Max)
	}
	return nil
}

func (s *Scenario) validateReward() error {
	r, err := s.Reward.Reward()
	if err != nil {
		return fmt.Errorf("reward: %w", err)
	}
	s.reward = r
	if s.Budget != nil {
		if err := s.Budget.Validate(); err != nil {
			return fmt.Errorf("scenario %q: %w", s.Name, err)
		}
	}
	return nil
}

func (t *Traffic) validate() error {
	if err := checkPositive("traffic.rate", t.Rate); err != nil {
		return err
	}
	if t.Rate < MinRate || t.Rate > MaxRate {
		return fieldErr("traffic.rate", "%v outside [%v, %v]", t.Rate, MinRate, MaxRate)
	}
	if d := t.Diurnal; d != nil {
		if err := checkProb("traffic.diurnal.amplitude", d.Amplitude); err != nil {
			return err
		}
		if !finite(d.PeakHour) || d.PeakHour < 0 || d.PeakHour >= 24 {
			return fieldErr("traffic.diurnal.peak_hour", "%v outside [0,24)", d.PeakHour)
		}
	}
	for i, b := range t.Bursts {
		path := fmt.Sprintf("traffic.bursts[%d]", i)
		if err := checkDur(path+".from", b.From); err != nil {
			return err
		}
		if b.To <= b.From {
			return fieldErr(path+".to", "%v must be after from %v", b.To.D(), b.From.D())
		}
		if err := checkPositive(path+".multiplier", b.Multiplier); err != nil {
			return err
		}
		if b.Multiplier > MaxMultiplier {
			return fieldErr(path+".multiplier", "%v above %v", b.Multiplier, float64(MaxMultiplier))
		}
	}
	if len(t.Tasks) == 0 {
		t.Tasks = map[string]float64{DefaultTask: 1}
	}
	if err := checkWeights("traffic.tasks", t.Tasks, MaxTasks); err != nil {
		return err
	}
	if err := checkWeights("traffic.tenants", t.Tenants, MaxTenants); err != nil {
		return err
	}
	if _, ok := t.Tasks["*"]; ok {
		return fieldErr("traffic.tasks", `"*" is reserved for "any task" in quality maps`)
	}
	if err := t.PromptTokens.validate("traffic.prompt_tokens", 500, 0.8, 32000); err != nil {
		return err
	}
	return t.CompletionTokens.validate("traffic.completion_tokens", 200, 0.6, 4000)
}

func checkWeights(path string, m map[string]float64, max int) error {
	if len(m) > max {
		return fieldErr(path, "%d entries, at most %d", len(m), max)
	}
	for _, k := range sortedKeys(m) {
		if k == "" {
			return fieldErr(path, "empty name")
		}
		if err := checkPositive(path+"."+k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (d *TokenDist) validate(path string, median, sigma float64, max int) error {
	if *d == (TokenDist{}) {
		*d = TokenDist{Median: median, Sigma: sigma, Min: 1, Max: max}
	}
	if err := checkPositive(path+".median", d.Median); err != nil {
		return err
	}
	if err := checkNonNeg(path+".sigma", d.Sigma); err != nil {
		return err
	}
	if d.Sigma > MaxSigma {
		return fieldErr(path+".sigma", "%v above %v", d.Sigma, float64(MaxSigma))
	}
	if d.Min == 0 {
		d.Min = 1
	}
	if d.Min < 0 {
		return fieldErr(path+".min", "%d must be >= 0", d.Min)
	}
	if d.Max == 0 {
		d.Max = max
		if d.Max < d.Min {
			d.Max = d.Min
		}
	}
	if d.Max < d.Min || d.Max > MaxTokens {
		return fieldErr(path+".max", "%d outside [min %d, %d]", d.Max, d.Min, MaxTokens)
	}
	return nil
}

func (p *Provider) validate(path string, t *Traffic) error {
	if p.ContextWindow < 0 {
		return fieldErr(path+".context_window", "%d must be >= 0", p.ContextWindow)
	}
	if err := checkNonNeg(path+".price_in", p.PriceIn); err != nil {
		return err
	}
	if err := checkNonNeg(path+".price_out", p.PriceOut); err != nil {
		return err
	}
	if p.Latency.Median <= 0 {
		return fieldErr(path+".latency.median", "%v must be > 0", p.Latency.Median.D())
	}
	if err := checkNonNeg(path+".latency.sigma", p.Latency.Sigma); err != nil {
		return err
	}
	if p.Latency.Sigma > MaxSigma {
		return fieldErr(path+".latency.sigma", "%v above %v", p.Latency.Sigma, float64(MaxSigma))
	}
	if err := checkDur(path+".latency.per_prompt_token", p.Latency.PerPromptToken); err != nil {
		return err
	}
	if err := checkDur(path+".latency.per_output_token", p.Latency.PerOutputToken); err != nil {
		return err
	}
	if p.Capacity < 0 || p.Capacity > MaxCapacity {
		return fieldErr(path+".capacity", "%d outside [0, %d]", p.Capacity, MaxCapacity)
	}
	if rl := p.RateLimit; rl != nil {
		if err := checkPositive(path+".rate_limit.rps", rl.RPS); err != nil {
			return err
		}
		if !finite(rl.Burst) || rl.Burst < 1 {
			return fieldErr(path+".rate_limit.burst", "%v must be >= 1", rl.Burst)
		}
	}
	if err := checkProb(path+".error_rate", p.ErrorRate); err != nil {
		return err
	}
	if err := checkDur(path+".fail_fast", p.FailFast); err != nil {
		return err
	}
	if p.FailFast == 0 {
		p.FailFast = Duration(50 * time.Millisecond)
	}
	if len(p.Quality) == 0 {
		return fieldErr(path+".quality", `no quality given (map task → probability, "*" for any task)`)
	}
	if err := checkQuality(path+".quality", p.Quality, t); err != nil {
		return err
	}
	if _, any := p.Quality["*"]; !any {
		for _, task := range sortedKeys(t.Tasks) {
			if _, ok := p.Quality[task]; !ok {
				return fieldErr(path+".quality", `no entry for task %q and no "*" default`, task)
			}
		}
	}
	for i := range p.Modifiers {
		if err := p.Modifiers[i].validate(fmt.Sprintf("%s.modifiers[%d]", path, i), t); err != nil {
			return err
		}
	}
	return nil
}

func checkQuality(path string, q map[string]float64, t *Traffic) error {
	for _, k := range sortedKeys(q) {
		if _, ok := t.Tasks[k]; !ok && k != "*" {
			return fieldErr(path+"."+k, "unknown task (traffic.tasks: %s)", strings.Join(sortedKeys(t.Tasks), ", "))
		}
		if err := checkProb(path+"."+k, q[k]); err != nil {
			return err
		}
	}
	return nil
}

func (m *Modifier) validate(path string, t *Traffic) error {
	w := &m.When
	if err := checkDur(path+".when.from", w.From); err != nil {
		return err
	}
	if err := checkDur(path+".when.to", w.To); err != nil {
		return err
	}
	if w.To != 0 && w.To <= w.From {
		return fieldErr(path+".when.to", "%v must be after from %v", w.To.D(), w.From.D())
	}
	if len(w.Hours) != 0 {
		if len(w.Hours) != 2 {
			return fieldErr(path+".when.hours", "want [start, end], got %d numbers", len(w.Hours))
		}
		for _, h := range w.Hours {
			if h < 0 || h > 24 {
				return fieldErr(path+".when.hours", "%d outside [0,24]", h)
			}
		}
		if w.Hours[0] == w.Hours[1] {
			return fieldErr(path+".when.hours", "[%d, %d] is empty", w.Hours[0], w.Hours[1])
		}
	}
	for _, task := range w.Tasks {
		if _, ok := t.Tasks[task]; !ok {
			return fieldErr(path+".when.tasks", "unknown task %q (traffic.tasks: %s)", task, strings.Join(sortedKeys(t.Tasks), ", "))
		}
	}
	for _, ten := range w.Tenants {
		if _, ok := t.Tenants[ten]; !ok {
			return fieldErr(path+".when.tenants", "unknown tenant %q (traffic.tenants: %s)", ten, strings.Join(sortedKeys(t.Tenants), ", "))
		}
	}
	if w.MinPromptTokens < 0 {
		return fieldErr(path+".when.min_prompt_tokens", "%d must be >= 0", w.MinPromptTokens)
	}
	if w.MaxPromptTokens < 0 || (w.MaxPromptTokens != 0 && w.MaxPromptTokens < w.MinPromptTokens) {
		return fieldErr(path+".when.max_prompt_tokens", "%d must be 0 (no bound) or >= min_prompt_tokens %d", w.MaxPromptTokens, w.MinPromptTokens)
	}
	switch m.Outage {
	case "", "error", "timeout", "rate_limited":
	default:
		return fieldErr(path+".outage", "%q is not error, timeout or rate_limited", m.Outage)
	}
	if err := checkQuality(path+".quality", m.Quality, t); err != nil {
		return err
	}
	if m.ErrorRate != nil {
		if err := checkProb(path+".error_rate", *m.ErrorRate); err != nil {
			return err
		}
	}
	if m.PriceMultiplier != nil {
		if err := checkNonNeg(path+".price_multiplier", *m.PriceMultiplier); err != nil {
			return err
		}
	}
	if m.LatencyMultiplier != nil {
		if err := checkPositive(path+".latency_multiplier", *m.LatencyMultiplier); err != nil {
			return err
		}
		if *m.LatencyMultiplier > MaxMultiplier {
			return fieldErr(path+".latency_multiplier", "%v above %v", *m.LatencyMultiplier, float64(MaxMultiplier))
		}
	}
	if m.Outage == "" && len(m.Quality) == 0 && m.ErrorRate == nil && m.PriceMultiplier == nil && m.LatencyMultiplier == nil {
		return fieldErr(path, "changes nothing (set outage, quality, error_rate, price_multiplier or latency_multiplier)")
	}
	return nil
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Tasks returns the scenario's task types, sorted.
func (s *Scenario) Tasks() []string { return sortedKeys(s.Traffic.Tasks) }

// Tenants returns the scenario's tenants, sorted (none when the traffic has
// no tenants).
func (s *Scenario) Tenants() []string { return sortedKeys(s.Traffic.Tenants) }

// StartTime is the virtual clock's start. Valid after Validate.
func (s *Scenario) StartTime() time.Time { return s.start }

// EncoderSpec is the spec of the scenario's feature encoder: its `encoder:`
// block, or policy.DefaultEncoderSpec over the scenario's tasks. Build the
// encoder with policy.NewEncoder.
func (s *Scenario) EncoderSpec() policy.EncoderSpec {
	if s.Encoder != nil {
		return s.Encoder.Clone()
	}
	return policy.DefaultEncoderSpec(s.Tasks())
}

// RewardFunc is the scenario's reward function (decision.DefaultReward with
// the scenario's overrides). Valid after Validate.
func (s *Scenario) RewardFunc() decision.Reward { return s.reward }
