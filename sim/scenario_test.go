package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltinScenariosParse(t *testing.T) {
	names := sim.BuiltinScenarios()
	for _, want := range []string{"steady", "outage", "diurnal", "drift", "ratelimit", "tasks", "tasks-nonlinear", "drift-contextual"} {
		assert.Contains(t, names, want)
	}
	for _, n := range names {
		sc, err := sim.LoadScenario(n)
		require.NoError(t, err, n)
		assert.Equal(t, n, sc.Name, "a built-in's name matches its file")
		assert.NotEmpty(t, sc.Description, n)
		assert.Positive(t, sc.Requests, n)
	}
}

// minimal is a valid scenario that the bad-input cases edit.
const minimal = `
name: x
traffic:
  rate: 5
  tasks: {chat: 1, code: 1}
providers:
  - name: a
    latency: {median: 100ms}
    quality: {"*": 0.5}
  - name: b
    latency: {median: 100ms}
    quality: {chat: 0.5, code: 0.6}
  - name: c
    latency: {median: 100ms}
    error_rate: 0.1
    quality: {"*": 0.5}
`

func TestParseScenarioErrorsNameTheField(t *testing.T) {
	_, err := sim.ParseScenario("x", []byte(minimal))
	require.NoError(t, err)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"probability above 1", "error_rate: 0.1", "error_rate: 1.3", `scenario "x": providers[2].error_rate: 1.3 outside [0,1]`},
		{"negative probability", `quality: {chat: 0.5, code: 0.6}`, `quality: {chat: -0.5, code: 0.6}`, `providers[1].quality.chat: -0.5 outside [0,1]`},
		{"zero rate", "rate: 5", "rate: 0", "traffic.rate: 0 must be a finite number > 0"},
		{"negative rate", "rate: 5", "rate: -2", "traffic.rate: -2 must be a finite number > 0"},
		{"unknown field", "rate: 5", "rate: 5\n  rat: 3", "field rat not found"},
		{"malformed yaml", "rate: 5", "rate: [5", `scenario "x": yaml:`},
		{"bad duration", "median: 100ms}\n    quality: {\"*\": 0.5}\n  - name: b", "median: fast}\n    quality: {\"*\": 0.5}\n  - name: b", `"fast" is not a duration`},
		{"zero latency", "median: 100ms}\n    quality: {\"*\": 0.5}\n  - name: b", "median: 0s}\n    quality: {\"*\": 0.5}\n  - name: b", "providers[0].latency.median: 0s must be > 0"},
		{"duplicate name", "name: b", "name: a", `providers[1].name: "a" already used by providers[0]`},
		{"missing task quality", `quality: {chat: 0.5, code: 0.6}`, `quality: {chat: 0.5}`, `providers[1].quality: no entry for task "code"`},
		{"unknown task", `quality: {chat: 0.5, code: 0.6}`, `quality: {chat: 0.5, code: 0.6, math: 0.1}`, `providers[1].quality.math: unknown task`},
		{"negative weight", "tasks: {chat: 1, code: 1}", "tasks: {chat: 1, code: -1}", "traffic.tasks.code: -1 must be a finite number > 0"},
		{"bad outage", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{outage: down}]", `providers[2].modifiers[0].outage: "down" is not error, timeout or rate_limited`},
		{"empty modifier", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{when: {from: 1m}}]", "providers[2].modifiers[0]: changes nothing"},
		{"window backwards", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{when: {from: 2m, to: 1m}, outage: error}]", "providers[2].modifiers[0].when.to: 1m0s must be after from 2m0s"},
		{"empty hours", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{when: {hours: [5, 5]}, outage: error}]", "providers[2].modifiers[0].when.hours: [5, 5] is empty"},
		{"whole day", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{when: {hours: [0, 24]}, outage: error}]", ""},
		{"bad hours", "error_rate: 0.1", "error_rate: 0.1\n    modifiers: [{when: {hours: [3, 27]}, outage: error}]", "providers[2].modifiers[0].when.hours: 27 outside [0,24]"},
		{"burst multiplier", "rate: 5", "rate: 5\n  bursts: [{from: 1m, to: 2m, multiplier: 0}]", "traffic.bursts[0].multiplier: 0 must be a finite number > 0"},
		{"rate limit", "error_rate: 0.1", "error_rate: 0.1\n    rate_limit: {rps: 0, burst: 3}", "providers[2].rate_limit.rps: 0 must be a finite number > 0"},
		{"diurnal amplitude", "rate: 5", "rate: 5\n  diurnal: {amplitude: 2, peak_hour: 3}", "traffic.diurnal.amplitude: 2 outside [0,1]"},
		{"capacity", "error_rate: 0.1", "error_rate: 0.1\n    capacity: -1", "providers[2].capacity: -1 outside"},
		{"reward weight", "name: x", "name: x\nreward: {cost: -1}", "reward: reward weight cost: -1 must be a finite number >= 0"},
		{"start time", "name: x", "name: x\nstart: yesterday", `start: "yesterday" is not an RFC 3339 time`},
		{"no providers", "providers:", "providers: []\nold:", "field old not found"},
		{"two documents", "name: x", "name: x\n---\nname: y", "more than one YAML document"},
		{"context window too small", "name: a\n", "name: a\n    context_window: 10\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(minimal, tc.old, tc.new, 1)
			require.NotEqual(t, minimal, src, "the case must change the scenario")
			_, err := sim.ParseScenario("x", []byte(src))
			if tc.want == "" {
				assert.NoError(t, err, "a valid edit")
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), `scenario "x": `), "error %q names the scenario", err)
		})
	}
}

func TestParseScenarioEmptyAndNoFit(t *testing.T) {
	_, err := sim.ParseScenario("e", []byte("  \n"))
	assert.ErrorContains(t, err, `scenario "e": empty document`)
	src := strings.ReplaceAll(minimal, "latency: {median: 100ms}", "context_window: 100\n    latency: {median: 100ms}")
	_, err = sim.ParseScenario("x", []byte(src))
	assert.ErrorContains(t, err, "providers: no provider's context_window holds traffic.prompt_tokens.max 32000")
}

func TestLoadScenario(t *testing.T) {
	_, err := sim.LoadScenario("no-such-scenario")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown scenario "no-such-scenario"`)
	assert.Contains(t, err.Error(), "steady", "the error lists the built-ins")

	dir := t.TempDir()
	path := filepath.Join(dir, "mine.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(minimal, "name: x\n", "", 1)), 0o600))
	sc, err := sim.LoadScenario(path)
	require.NoError(t, err)
	assert.Equal(t, "mine", sc.Name, "a file's scenario without a name is named after the file")
	assert.Equal(t, []string{"chat", "code"}, sc.Tasks())
	assert.Empty(t, sc.Tenants())

	_, err = sim.BuiltinScenarioYAML("../sim")
	assert.ErrorContains(t, err, "unknown scenario")
	b, err := sim.BuiltinScenarioYAML("steady")
	require.NoError(t, err)
	_, err = sim.ParseScenario("copy", b)
	assert.NoError(t, err, "a built-in's YAML is a valid scenario file to copy")
}

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(minimal))
	for _, n := range sim.BuiltinScenarios() {
		b, err := sim.BuiltinScenarioYAML(n)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte("traffic: {rate: 1e400}"))
	f.Add([]byte("providers: [{name: a, latency: {median: -1s}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := sim.ParseScenario("fuzz", data)
		if err != nil {
			assert.True(t, strings.HasPrefix(err.Error(), `scenario "`), "error %q names the scenario", err)
			return
		}
		// A scenario that parses must simulate without error or panic.
		_, err = sim.Run(t.Context(), sim.Opts{Scenario: sc, Policy: newPolicy(t, "random", 1), Seed: 1, Requests: 50})
		assert.NoError(t, err)
	})
}
