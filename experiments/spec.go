package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"go.yaml.in/yaml/v3"
)

// Limits that keep an experiment's run time and memory bounded; a spec
// beyond them is rejected by Validate.
const (
	MaxSeeds = 10_000
	MaxCells = 100_000
)

// DefaultConfidence is the confidence level of every interval unless the
// spec's report.confidence says otherwise.
const DefaultConfidence = 0.95

// Multiple-comparison corrections (ReportOpts.Correction).
const (
	CorrectionNone       = "none"
	CorrectionBonferroni = "bonferroni"
)

// Spec is an experiment: every policy run on every scenario with every seed,
// each (policy, scenario, seed) cell an independent simulation. It is what an
// experiment YAML file decodes into (see docs/experiments.md); call Validate
// before use (Run does).
type Spec struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	// Policies are the policies compared, in report order.
	Policies []PolicyEntry `yaml:"policies"`
	// Scenarios are the worlds the policies run in, in report order.
	Scenarios []ScenarioEntry `yaml:"scenarios"`
	Seeds     Seeds           `yaml:"seeds"`
	// Requests per cell unless a scenario entry sets its own; 0 means each
	// scenario's default.
	Requests int `yaml:"requests,omitempty"`
	// Window is the number of requests per time-series window; 0 means
	// requests/50.
	Window int `yaml:"window,omitempty"`
	// ImmediateFeedback makes policies learn each reward before the next
	// request (sim.Opts.ImmediateFeedback).
	ImmediateFeedback bool `yaml:"immediate_feedback,omitempty"`
	// Baseline is the label of the policy every other one is compared
	// with (paired over seeds); empty means the first policy.
	Baseline string `yaml:"baseline,omitempty"`
	// Metrics are the metric names reported, in order (see MetricNames);
	// empty means all.
	Metrics []string   `yaml:"metrics,omitempty"`
	Report  ReportOpts `yaml:"report,omitempty"`

	dir       string
	registry  *policy.Registry
	scenarios []*sim.Scenario
	policies  []policy.Spec
	metrics   []Metric
}

// PolicyEntry is one policy of an experiment: a registry spec and the label
// it is shown under. In YAML it is either the spec string
// ("linucb=alpha:0.5") or a mapping {label, spec} or {label, name, params}.
type PolicyEntry struct {
	// Label names the policy in reports and results; empty means Spec.
	Label string
	// Spec is a registry spec, "NAME" or "NAME=key:value;...".
	Spec string
}

// ScenarioEntry is one scenario of an experiment. In YAML it is either the
// scenario reference (a built-in name or a file) or a mapping {scenario,
// requests}.
type ScenarioEntry struct {
	// Scenario is a built-in scenario name or the path of a scenario YAML
	// file (relative paths resolve against the spec file's directory).
	Scenario string
	// Requests per cell on this scenario; 0 means the spec's requests.
	Requests int
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *ScenarioEntry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*e = ScenarioEntry{Scenario: n.Value}
		return nil
	case yaml.MappingNode:
		if err := checkKeys(n, "scenario", "requests"); err != nil {
			return err
		}
		var m struct {
			Scenario string `yaml:"scenario"`
			Requests int    `yaml:"requests"`
		}
		if err := n.Decode(&m); err != nil {
			return fmt.Errorf("line %d: scenario: %w", n.Line, err)
		}
		*e = ScenarioEntry{Scenario: m.Scenario, Requests: m.Requests}
		return nil
	default:
		return fmt.Errorf("line %d: scenario: want a name or file, or {scenario, requests}", n.Line)
	}
}

// MarshalYAML implements yaml.Marshaler.
func (e ScenarioEntry) MarshalYAML() (any, error) {
	if e.Requests == 0 {
		return e.Scenario, nil
	}
	return struct {
		Scenario string `yaml:"scenario"`
		Requests int    `yaml:"requests"`
	}{e.Scenario, e.Requests}, nil
}

// Seeds are the run seeds of every (policy, scenario) pair: either an
// explicit List or Count consecutive seeds from Base. In YAML: a list
// ([1, 2, 3]) or a mapping {count: 10, base: 1}.
type Seeds struct {
	List  []uint64
	Count int
	// Base is the first seed when Count is used; 0 means 1.
	Base uint64
}

// ReportOpts tune the report.
type ReportOpts struct {
	// Title heads the report; empty means the experiment's name.
	Title string `yaml:"title,omitempty"`
	// Confidence is the level of every interval, in [0.5, 0.9999]; 0 means
	// DefaultConfidence.
	Confidence float64 `yaml:"confidence,omitempty"`
	// Correction adjusts the paired comparisons for their number:
	// "none" (default) or "bonferroni" (each of the P−1 comparisons of a
	// scenario and metric at level 1 − (1 − Confidence)/(P−1), so that
	// the chance of any false verdict among them is at most
	// 1 − Confidence).
	Correction string `yaml:"correction,omitempty"`
	// Plots set to false leaves the figures out (faster, smaller report).
	Plots *bool `yaml:"plots,omitempty"`
}

// Values returns the seeds in run order.
func (s Seeds) Values() []uint64 {
	if len(s.List) > 0 {
		return slices.Clone(s.List)
	}
	base := s.Base
	if base == 0 {
		base = 1
	}
	out := make([]uint64, s.Count)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Seeds) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []uint64
		if err := n.Decode(&l); err != nil {
			return fmt.Errorf("line %d: seeds must be non-negative integers: %w", n.Line, err)
		}
		*s = Seeds{List: l}
		return nil
	case yaml.MappingNode:
		if err := checkKeys(n, "count", "base"); err != nil {
			return err
		}
		var m struct {
			Count int    `yaml:"count"`
			Base  uint64 `yaml:"base"`
		}
		if err := n.Decode(&m); err != nil {
			return fmt.Errorf("line %d: seeds: %w", n.Line, err)
		}
		*s = Seeds{Count: m.Count, Base: m.Base}
		return nil
	default:
		return fmt.Errorf("line %d: seeds: want a list of seeds ([1, 2, 3]) or {count: N, base: B}, not %q", n.Line, n.Value)
	}
}

// MarshalYAML implements yaml.Marshaler: always the explicit list, so a
// written spec states exactly what ran.
func (s Seeds) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range s.Values() {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v, 10)})
	}
	return n, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *PolicyEntry) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*p = PolicyEntry{Spec: n.Value}
		return nil
	case yaml.MappingNode:
		if err := checkKeys(n, "label", "spec", "name", "params"); err != nil {
			return err
		}
		var m struct {
			Label  string            `yaml:"label"`
			Spec   string            `yaml:"spec"`
			Name   string            `yaml:"name"`
			Params map[string]string `yaml:"params"`
		}
		if err := n.Decode(&m); err != nil {
			return fmt.Errorf("line %d: policy: %w", n.Line, err)
		}
		switch {
		case m.Spec != "" && (m.Name != "" || m.Params != nil):
			return fmt.Errorf("line %d: policy: give either spec or name+params, not both", n.Line)
		case m.Spec != "":
			*p = PolicyEntry{Label: m.Label, Spec: m.Spec}
		default:
			if m.Name == "" {
				return fmt.Errorf("line %d: policy: needs spec or name", n.Line)
			}
			*p = PolicyEntry{Label: m.Label, Spec: policy.Spec{Name: m.Name, Params: policy.Params(m.Params)}.String()}
		}
		return nil
	default:
		return fmt.Errorf("line %d: policy: want a spec string or {label, spec}", n.Line)
	}
}

// MarshalYAML implements yaml.Marshaler.
func (p PolicyEntry) MarshalYAML() (any, error) {
	return struct {
		Label string `yaml:"label"`
		Spec  string `yaml:"spec"`
	}{p.Label, p.Spec}, nil
}

// checkKeys rejects a mapping key outside known: Node.Decode does not
// inherit the decoder's KnownFields, so custom unmarshalers check by hand.
func checkKeys(n *yaml.Node, known ...string) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: field %s not found (known: %v)", k.Line, k.Value, known)
		}
	}
	return nil
}

// ParseSpec decodes an experiment spec from YAML strictly (an unknown field
// is an error). dir is the directory relative scenario paths are resolved
// against. It does not validate: call Validate.
func ParseSpec(data []byte, dir string) (*Spec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Spec
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("experiment spec: empty document")
		}
		return nil, fmt.Errorf("experiment spec: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("experiment spec: more than one YAML document")
	}
	s.dir = dir
	return &s, nil
}

// LoadSpec reads and decodes the experiment spec file at path (relative
// scenario paths resolve against its directory). It does not validate.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load experiment spec: %w", err)
	}
	s, err := ParseSpec(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Validate checks every field, fills defaults (labels, baseline, metrics,
// confidence), builds each policy once through reg to reject unknown
// policies and parameters, and loads the scenarios. It reports the first
// problem as `experiment "NAME": path.to.field: problem`.
func (s *Spec) Validate(reg *policy.Registry) error {
	if err := s.validate(reg); err != nil {
		return fmt.Errorf("experiment %q: %w", s.Name, err)
	}
	return nil
}

func (s *Spec) validate(reg *policy.Registry) error {
	if reg == nil {
		return errors.New("no policy registry")
	}
	s.registry = reg
	if s.Name == "" {
		return errors.New("name: required")
	}
	if len(s.Policies) == 0 {
		return errors.New("policies: at least one policy required")
	}
	s.policies = make([]policy.Spec, len(s.Policies))
	labels := map[string]int{}
	for i := range s.Policies {
		e := &s.Policies[i]
		path := fmt.Sprintf("policies[%d]", i)
		ps, err := policy.ParseSpec(e.Spec)
		if err != nil {
			return fmt.Errorf("%s.spec: %w", path, err)
		}
		if _, err := reg.New(ps); err != nil {
			return fmt.Errorf("%s.spec %q: %w", path, e.Spec, err)
		}
		s.policies[i] = ps
		if e.Label == "" {
			e.Label = e.Spec
		}
		if j, dup := labels[e.Label]; dup {
			return fmt.Errorf("%s.label: %q already names policies[%d] (give each a distinct label)", path, e.Label, j)
		}
		labels[e.Label] = i
	}
	if len(s.Scenarios) == 0 {
		return errors.New("scenarios: at least one scenario required")
	}
	s.scenarios = make([]*sim.Scenario, len(s.Scenarios))
	names := map[string]int{}
	for i, e := range s.Scenarios {
		path := fmt.Sprintf("scenarios[%d]", i)
		if e.Scenario == "" {
			return fmt.Errorf("%s: empty", path)
		}
		if e.Requests < 0 || e.Requests > sim.MaxTokens {
			return fmt.Errorf("%s.requests: %d outside [0, %d] (0 = the spec's requests)", path, e.Requests, sim.MaxTokens)
		}
		sc, err := loadScenario(e.Scenario, s.dir)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if j, dup := names[sc.Name]; dup {
			return fmt.Errorf("%s: scenario name %q already used by scenarios[%d]", path, sc.Name, j)
		}
		names[sc.Name] = i
		s.scenarios[i] = sc
	}
	if err := s.Seeds.validate(); err != nil {
		return err
	}
	if cells := len(s.Policies) * len(s.Scenarios) * len(s.Seeds.Values()); cells > MaxCells {
		return fmt.Errorf("policies × scenarios × seeds = %d cells, more than %d", cells, MaxCells)
	}
	if s.Requests < 0 || s.Requests > sim.MaxTokens {
		return fmt.Errorf("requests: %d outside [0, %d] (0 = each scenario's default)", s.Requests, sim.MaxTokens)
	}
	if s.Window < 0 {
		return fmt.Errorf("window: %d must be >= 0 (0 = requests/50)", s.Window)
	}
	if s.Baseline == "" {
		s.Baseline = s.Policies[0].Label
	} else if _, ok := labels[s.Baseline]; !ok {
		return fmt.Errorf("baseline: %q is not a policy label (labels: %v)", s.Baseline, s.Labels())
	}
	if len(s.Metrics) == 0 {
		s.Metrics = MetricNames()
	}
	s.metrics = make([]Metric, len(s.Metrics))
	seen := map[string]bool{}
	for i, name := range s.Metrics {
		m, ok := MetricByName(name)
		if !ok {
			return fmt.Errorf("metrics[%d]: unknown metric %q (known: %v)", i, name, MetricNames())
		}
		if seen[name] {
			return fmt.Errorf("metrics[%d]: %q listed twice", i, name)
		}
		seen[name] = true
		s.metrics[i] = m
	}
	if s.Report.Confidence == 0 {
		s.Report.Confidence = DefaultConfidence
	}
	if c := s.Report.Confidence; math.IsNaN(c) || c < 0.5 || c > 0.9999 {
		return fmt.Errorf("report.confidence: %v outside [0.5, 0.9999]", c)
	}
	switch s.Report.Correction {
	case "":
		s.Report.Correction = CorrectionNone
	case CorrectionNone, CorrectionBonferroni:
	default:
		return fmt.Errorf("report.correction: %q is not %q or %q", s.Report.Correction, CorrectionNone, CorrectionBonferroni)
	}
	return nil
}

func (s Seeds) validate() error {
	switch {
	case len(s.List) > 0 && s.Count != 0:
		return errors.New("seeds: give a list or a count, not both")
	case len(s.List) > 0:
		if len(s.List) > MaxSeeds {
			return fmt.Errorf("seeds: %d seeds, more than %d", len(s.List), MaxSeeds)
		}
		seen := map[uint64]int{}
		for i, v := range s.List {
			if j, dup := seen[v]; dup {
				return fmt.Errorf("seeds[%d]: seed %d repeats seeds[%d] (a repeated seed is not an independent replication)", i, v, j)
			}
			seen[v] = i
		}
	case s.Count < 1 || s.Count > MaxSeeds:
		return fmt.Errorf("seeds.count: %d outside [1, %d]", s.Count, MaxSeeds)
	case s.Base > math.MaxUint64-uint64(s.Count):
		return fmt.Errorf("seeds.base: %d + count %d overflows", s.Base, s.Count)
	}
	return nil
}

// loadScenario resolves ref as a built-in name, else as a file relative to
// dir.
func loadScenario(ref, dir string) (*sim.Scenario, error) {
	if slices.Contains(sim.BuiltinScenarios(), ref) {
		return sim.LoadScenario(ref)
	}
	path := ref
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	return sim.LoadScenario(path)
}

// Labels returns the policies' labels in spec order. Valid after Validate.
func (s *Spec) Labels() []string {
	out := make([]string, len(s.Policies))
	for i, p := range s.Policies {
		out[i] = p.Label
		if out[i] == "" {
			out[i] = p.Spec
		}
	}
	return out
}

// ScenarioNames returns the scenarios' names (from their YAML) in spec
// order. Valid after Validate.
func (s *Spec) ScenarioNames() []string {
	out := make([]string, len(s.scenarios))
	for i, sc := range s.scenarios {
		out[i] = sc.Name
	}
	return out
}

// ScenarioList returns the scenarios as loaded, in spec order. Valid
// after Validate.
func (s *Spec) ScenarioList() []*sim.Scenario { return slices.Clone(s.scenarios) }

// RequestsFor returns the run length of the i-th scenario's cells as the
// spec sets it: the entry's requests, else the spec's, else 0 (the
// scenario's default).
func (s *Spec) RequestsFor(i int) int {
	if r := s.Scenarios[i].Requests; r > 0 {
		return r
	}
	return s.Requests
}

// SetRequests makes every cell n requests long, overriding the spec's and
// every scenario entry's requests (for quick runs).
func (s *Spec) SetRequests(n int) {
	s.Requests = n
	for i := range s.Scenarios {
		s.Scenarios[i].Requests = 0
	}
}

// MetricList returns the reported metrics in order. Valid after Validate.
func (s *Spec) MetricList() []Metric { return slices.Clone(s.metrics) }

// Plots reports whether the report has figures.
func (r ReportOpts) plots() bool { return r.Plots == nil || *r.Plots }

// Marshal returns the spec as YAML with every default filled in, seeds as
// an explicit list and file scenarios as absolute paths, so that running
// the written file repeats the experiment exactly. Valid after Validate.
func (s *Spec) Marshal() ([]byte, error) {
	c := *s
	c.Scenarios = slices.Clone(s.Scenarios)
	for i, e := range c.Scenarios {
		if slices.Contains(sim.BuiltinScenarios(), e.Scenario) {
			continue
		}
		p := e.Scenario
		if !filepath.IsAbs(p) && s.dir != "" {
			p = filepath.Join(s.dir, p)
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		c.Scenarios[i].Scenario = p
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return nil, fmt.Errorf("marshal experiment spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal experiment spec: %w", err)
	}
	return buf.Bytes(), nil
}
