package experiments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const validSpec = `
name: t
policies: [random, thompson]
scenarios: [steady]
seeds: [1, 2]
`

func TestSpecValidationErrors(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: bad\nproviders: []\n"), 0o644))
	tests := []struct {
		name string
		yaml string
		want string // substring of the error
	}{
		{"unknown top-level field", validSpec + "polices: [x]\n", "field polices not found"},
		{"unknown policy field", "name: t\npolicies: [{label: a, spce: random}]\nscenarios: [steady]\nseeds: [1]\n", "field spce not found"},
		{"unknown seeds field", "name: t\npolicies: [random]\nscenarios: [steady]\nseeds: {count: 2, bsae: 1}\n", "field bsae not found"},
		{"seeds scalar", "name: t\npolicies: [random]\nscenarios: [steady]\nseeds: 5\n", "want a list of seeds"},
		{"negative seed", "name: t\npolicies: [random]\nscenarios: [steady]\nseeds: [-1]\n", "seeds must be non-negative"},
		{"spec and name", "name: t\npolicies: [{spec: random, name: ucb1}]\nscenarios: [steady]\nseeds: [1]\n", "either spec or name+params"},
		{"no name", "policies: [random]\nscenarios: [steady]\nseeds: [1]\n", "name: required"},
		{"no policies", "name: t\nscenarios: [steady]\nseeds: [1]\n", "policies: at least one"},
		{"unknown policy", "name: t\npolicies: [random, nosuch]\nscenarios: [steady]\nseeds: [1]\n", "policies[1].spec \"nosuch\""},
		{"bad parameter", "name: t\npolicies: [random, ucb1=cc:2]\nscenarios: [steady]\nseeds: [1]\n", "policies[1].spec \"ucb1=cc:2\""},
		{"malformed spec", "name: t\npolicies: [\"ucb1=c\"]\nscenarios: [steady]\nseeds: [1]\n", "policies[0].spec"},
		{"duplicate label", "name: t\npolicies: [random, {label: random, spec: ucb1}]\nscenarios: [steady]\nseeds: [1]\n", "policies[1].label: \"random\" already names policies[0]"},
		{"no scenarios", "name: t\npolicies: [random]\nseeds: [1]\n", "scenarios: at least one"},
		{"unknown scenario", "name: t\npolicies: [random]\nscenarios: [steady, nowhere]\nseeds: [1]\n", "scenarios[1]: unknown scenario"},
		{"invalid scenario file", "name: t\npolicies: [random]\nscenarios: [bad.yaml]\nseeds: [1]\n", "scenarios[0]: scenario \"bad\""},
		{"duplicate scenario", "name: t\npolicies: [random]\nscenarios: [steady, steady]\nseeds: [1]\n", "scenarios[1]: scenario name \"steady\" already used by scenarios[0]"},
		{"unknown scenario field", "name: t\npolicies: [random]\nscenarios: [{scenario: steady, reqs: 5}]\nseeds: [1]\n", "field reqs not found"},
		{"negative scenario requests", "name: t\npolicies: [random]\nscenarios: [steady, {scenario: tasks, requests: -1}]\nseeds: [1]\n", "scenarios[1].requests: -1 outside"},
		{"empty scenario", "name: t\npolicies: [random]\nscenarios: [{requests: 5}]\nseeds: [1]\n", "scenarios[0]: empty"},
		{"no seeds", "name: t\npolicies: [random]\nscenarios: [steady]\n", "seeds.count: 0 outside"},
		{"duplicate seed", "name: t\npolicies: [random]\nscenarios: [steady]\nseeds: [1, 2, 1]\n", "seeds[2]: seed 1 repeats seeds[0]"},
		{"seed count too big", "name: t\npolicies: [random]\nscenarios: [steady]\nseeds: {count: 20000}\n", "seeds.count: 20000 outside"},
		{"negative requests", validSpec + "requests: -5\n", "requests: -5 outside"},
		{"negative window", validSpec + "window: -1\n", "window: -1"},
		{"unknown baseline", validSpec + "baseline: ucb1\n", "baseline: \"ucb1\" is not a policy label"},
		{"unknown metric", validSpec + "metrics: [regret, rgret]\n", "metrics[1]: unknown metric \"rgret\""},
		{"duplicate metric", validSpec + "metrics: [regret, regret]\n", "metrics[1]: \"regret\" listed twice"},
		{"confidence", validSpec + "report: {confidence: 1.5}\n", "report.confidence: 1.5 outside"},
		{"correction", validSpec + "report: {correction: holm}\n", "report.correction: \"holm\" is not"},
		{"unknown report field", validSpec + "report: {confidnce: 0.9}\n", "field confidnce not found"},
		{"two documents", validSpec + "---\nname: u\n", "more than one YAML document"},
		{"empty", "", "empty document"},
	}
	reg := policy.NewBuiltinRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec([]byte(tt.yaml), dir)
			if err == nil {
				err = s.Validate(reg)
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSpecDefaultsAndForms(t *testing.T) {
	s, err := ParseSpec([]byte(`
name: forms
policies:
  - random
  - {label: TS, spec: thompson}
  - {name: epsilon-greedy, params: {epsilon: "0.2"}}
scenarios: [steady, {scenario: outage, requests: 1234}]
seeds: {count: 3, base: 7}
requests: 999
`), "")
	require.NoError(t, err)
	require.NoError(t, s.Validate(policy.NewBuiltinRegistry()))
	assert.Equal(t, []string{"random", "TS", "epsilon-greedy=epsilon:0.2"}, s.Labels(), "labels")
	assert.Equal(t, "random", s.Baseline, "baseline defaults to the first policy")
	assert.Equal(t, []uint64{7, 8, 9}, s.Seeds.Values())
	assert.Equal(t, MetricNames(), s.Metrics)
	assert.Equal(t, DefaultConfidence, s.Report.Confidence)
	assert.Equal(t, []string{"steady", "outage"}, s.ScenarioNames())
	assert.True(t, s.Report.plots())
	assert.Equal(t, 999, s.RequestsFor(0), "spec's requests")
	assert.Equal(t, 1234, s.RequestsFor(1), "the entry's own")
	s.SetRequests(50)
	assert.Equal(t, 50, s.RequestsFor(0))
	assert.Equal(t, 50, s.RequestsFor(1), "an override wins over the entry")
}

// TestSpecMarshalRoundTrip: the written spec reruns the same experiment.
func TestSpecMarshalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b, err := sim.BuiltinScenarioYAML("steady")
	require.NoError(t, err)
	// A file scenario needs its own name not to clash with the built-in.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(replaceName(string(b), "mine")), 0o644))
	s, err := ParseSpec([]byte("name: rt\npolicies: [random, {label: u, spec: ucb1=c:2}]\nscenarios: [steady, {scenario: mine.yaml, requests: 700}]\nseeds: {count: 2, base: 5}\nrequests: 1000\nreport: {plots: false}\n"), dir)
	require.NoError(t, err)
	reg := policy.NewBuiltinRegistry()
	require.NoError(t, s.Validate(reg))
	out, err := s.Marshal()
	require.NoError(t, err)

	s2, err := ParseSpec(out, t.TempDir()) // another directory: file paths must be absolute
	require.NoError(t, err, "spec:\n%s", out)
	require.NoError(t, s2.Validate(reg))
	assert.Equal(t, s.Labels(), s2.Labels())
	assert.Equal(t, s.Seeds.Values(), s2.Seeds.Values())
	assert.Equal(t, s.ScenarioNames(), s2.ScenarioNames())
	assert.Equal(t, s.Requests, s2.Requests)
	assert.Equal(t, 700, s2.RequestsFor(1))
	assert.Equal(t, s.Baseline, s2.Baseline)
	assert.False(t, s2.Report.plots())
	for i := range s.Policies {
		assert.Equal(t, s.Policies[i].Spec, s2.Policies[i].Spec)
	}
}

// replaceName gives a scenario YAML another name.
func replaceName(yaml, name string) string {
	var b strings.Builder
	b.WriteString("name: " + name + "\n")
	for _, line := range strings.Split(yaml, "\n") {
		if !strings.HasPrefix(line, "name:") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(validSpec))
	f.Add([]byte("name: x\npolicies: [{label: a, name: ucb1, params: {c: '2'}}]\nscenarios: [steady]\nseeds: {count: 3}\n"))
	f.Add([]byte("seeds: 3"))
	f.Add([]byte("policies: {a: b}"))
	reg := policy.NewBuiltinRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data, "")
		if err != nil {
			return
		}
		if s.Validate(reg) != nil {
			return
		}
		out, err := s.Marshal()
		require.NoError(t, err)
		s2, err := ParseSpec(out, "")
		require.NoError(t, err, "re-parse of marshalled spec:\n%s", out)
		require.NoError(t, s2.Validate(reg), "re-validate of marshalled spec:\n%s", out)
		assert.Equal(t, s.Labels(), s2.Labels())
		assert.Equal(t, s.Seeds.Values(), s2.Seeds.Values())
	})
}

// TestLoadSpecFile: a file scenario resolves against the spec's directory
// and the cells follow the entries' run lengths.
func TestLoadSpecFile(t *testing.T) {
	s, err := LoadSpec(filepath.Join("testdata", "spec.yaml"))
	require.NoError(t, err)
	res, err := Run(t.Context(), s, Opts{Registry: policy.NewBuiltinRegistry()})
	require.NoError(t, err)
	assert.Equal(t, []string{"two-models", "steady"}, s.ScenarioNames())
	require.Len(t, res.Cells, 2*2*3)
	assert.Equal(t, 1200, res.Cells[0].Result.Requests, "spec's requests")
	assert.Equal(t, 800, res.Cells[len(res.Cells)-1].Result.Requests, "the entry's requests")
	a, err := Analyze(res)
	require.NoError(t, err)
	assert.Equal(t, 0.9, a.Confidence)
	c, ok := a.Comparison("two-models", "ucb", "oracle_ratio")
	require.True(t, ok)
	assert.Equal(t, Better, c.Verdict, "UCB finds the better of two models: Δ %v [%v, %v]", c.Diff.Mean, c.Diff.Lo, c.Diff.Hi)

	_, err = LoadSpec(filepath.Join("testdata", "missing.yaml"))
	assert.Error(t, err)
}
