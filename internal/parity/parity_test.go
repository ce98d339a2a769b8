package parity_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routelab/routelab/datasets"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sim"
	"go.yaml.in/yaml/v3"
)

// encoderBlock is the one `encoder:` block both the scenario and the
// gateway config carry: what "train in the simulator, serve in the
// gateway" asks users to do. It differs from every caller's default (task
// order, buckets, crosses), so a caller that ignores it fails the test.
const encoderBlock = `
encoder:
  version: 1
  intercept: true
  tasks: [code, chat, math, summarize]
  token_buckets: [256, 1024, 4096]
  hour_buckets: 6
  hour_cyclic: true
  tenant_buckets: 16
  crosses: [[task, tenant]]
`

// models are the tasks scenario's providers, in its order.
var models = []string{"chatty", "coder", "mathlete", "summarizer", "generalist"}

const requests = 40

// call is one Select a policy saw, deep-copied.
type call struct {
	f      decision.Features
	cands  []string
	chosen int
	probs  []float64
}

// frozen wraps a policy: it records every Select and ignores Update, so
// two paths feeding it the same inputs in the same order must get the same
// decisions even though their outcomes (and so rewards) differ.
type frozen struct {
	policy.Policy
	mu    sync.Mutex
	calls []call
}

func (p *frozen) Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	i, err := p.Policy.Select(ctx, f, cands, probs)
	c := call{f: *f, chosen: i, probs: append([]float64(nil), probs[:len(cands)]...)}
	c.f.Vector = append([]float64(nil), f.Vector...)
	c.f.Tags = append([]string(nil), f.Tags...)
	for _, a := range cands {
		c.cands = append(c.cands, a.ID)
	}
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	return i, err
}

func (p *frozen) Update(*decision.Features, []decision.Arm, int, float64) error { return nil }

func newFrozen(t *testing.T, spec string) *frozen {
	t.Helper()
	p, err := policy.NewBuiltinRegistry().NewFromString(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &frozen{Policy: p}
}

// simPath runs the tasks scenario with the encoder block, the encoder built
// as `routelab sim` and experiments build it, and returns the first calls.
func simPath(t *testing.T, spec string) ([]call, policy.Encoder) {
	t.Helper()
	data, err := os.ReadFile("../../sim/scenarios/tasks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.ParseScenario("tasks", append(data, encoderBlock...))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := experiments.DefaultEncoder(sc)
	if err != nil {
		t.Fatal(err)
	}
	p := newFrozen(t, spec)
	if _, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: p, Seed: 1, Requests: requests, Encoder: enc}); err != nil {
		t.Fatal(err)
	}
	if len(p.calls) < requests {
		t.Fatalf("sim made %d selections, want %d", len(p.calls), requests)
	}
	return p.calls[:requests], enc
}

// gatewayPath serves each of reqs' features as a real HTTP request through
// a gateway configured with the encoder block, and returns the calls its
// policy saw.
func gatewayPath(t *testing.T, spec string, reqs []call) []call {
	t.Helper()
	p := newFrozen(t, spec)
	reg := policy.NewBuiltinRegistry()
	if err := reg.Register("frozen", "test wrapper", func(policy.Params) (policy.Policy, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}
	return gatewayServe(t, "policy: {name: frozen}\n", reg, func() *frozen { return p }, reqs)
}

// gatewayServe serves reqs through a gateway whose config has policyLine
// (the models, encoder block and an empty log added), with policies from
// reg; rec returns the recording policy once the gateway is built.
func gatewayServe(t *testing.T, policyLine string, reg *policy.Registry, rec func() *frozen, reqs []call) []call {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString("providers: [{name: sim, type: sim, time_scale: 0.0001}]\nmodels:\n")
	for _, m := range models {
		fmt.Fprintf(&cfg, "  - {id: %s, provider: sim, price_in: 0.0005, price_out: 0.0015, context_window: 100000, sim: {ttft_ms: 1, output_tokens: 2}}\n", m)
	}
	cfg.WriteString(policyLine + "log: {dir: \"\"}\n" + encoderBlock)
	c, err := gateway.ParseConfig([]byte(cfg.String()))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	srv, err := gateway.New(gateway.Opts{Config: c, Registry: reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    func() time.Time { return time.Unix(0, now.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	p := rec()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for i, r := range reqs {
		// The gateway estimates 4 tokens per message plus len(content)/4.
		if r.f.PromptTokens < 5 {
			t.Fatalf("request %d: %d prompt tokens, too few to reproduce", i, r.f.PromptTokens)
		}
		content := strings.Repeat("abcd", r.f.PromptTokens-4)
		body := fmt.Sprintf(`{"model":"auto","messages":[{"role":"user","content":%q}]}`, content)
		req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(gateway.HeaderTask, r.f.Task)
		if r.f.Tenant != "" {
			req.Header.Set(gateway.HeaderTenant, r.f.Tenant)
		}
		now.Store(r.f.Time.UnixNano())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) != len(reqs) {
		t.Fatalf("gateway made %d selections for %d requests", len(p.calls), len(reqs))
	}
	return p.calls
}

// datasetsPath evaluates a table of reqs' tasks and prompt sizes (benchmark
// rows carry no tenant or time) with an encoder built from spec.
func datasetsPath(t *testing.T, polSpec string, enc policy.EncoderSpec, reqs []call) []call {
	t.Helper()
	tb := &datasets.Table{Name: "parity", Models: models}
	for i, r := range reqs {
		tb.Rows = append(tb.Rows, datasets.Row{ID: fmt.Sprint(i), Task: r.f.Task, PromptTokens: r.f.PromptTokens,
			Scores: make([]float64, len(models)), Costs: make([]float64, len(models))})
	}
	e, err := policy.NewEncoder(enc)
	if err != nil {
		t.Fatal(err)
	}
	p := newFrozen(t, polSpec)
	if _, err := datasets.Evaluate(context.Background(), tb, p, datasets.Opts{Seed: 1, Passes: 1, Encoder: e}); err != nil {
		t.Fatal(err)
	}
	return p.calls
}

// sameBits reports whether a and b are byte-identical float vectors.
func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func compare(t *testing.T, what string, want, got []call) {
	t.Helper()
	for i := range want {
		w, g := want[i], got[i]
		if w.f.Task != g.f.Task || w.f.PromptTokens != g.f.PromptTokens || w.f.Tenant != g.f.Tenant || !w.f.Time.Equal(g.f.Time) {
			t.Fatalf("%s request %d: features %+v, want %+v", what, i, g.f, w.f)
		}
		if !sameBits(w.f.Vector, g.f.Vector) {
			t.Fatalf("%s request %d (%s, %d tokens, tenant %q): vector\n%v\nwant\n%v", what, i, w.f.Task, w.f.PromptTokens, w.f.Tenant, g.f.Vector, w.f.Vector)
		}
		if strings.Join(w.cands, ",") != strings.Join(g.cands, ",") {
			t.Fatalf("%s request %d: candidates %v, want %v", what, i, g.cands, w.cands)
		}
		if w.chosen != g.chosen || !sameBits(w.probs, g.probs) {
			t.Fatalf("%s request %d: chose %d %v, want %d %v", what, i, g.chosen, g.probs, w.chosen, w.probs)
		}
	}
}

func TestParity(t *testing.T) {
	for _, spec := range []string{"linucb=seed:7", "lin-thompson=seed:7"} {
		t.Run(spec, func(t *testing.T) {
			simCalls, simEnc := simPath(t, spec)
			tenants := map[string]bool{}
			for _, c := range simCalls {
				tenants[c.f.Tenant] = true
			}
			if len(tenants) < 2 {
				t.Fatalf("sim requests cover tenants %v; the test needs several", tenants)
			}
			compare(t, "gateway", simCalls, gatewayPath(t, spec, simCalls))

			// Datasets: the same tasks and sizes without tenant or time,
			// against the sim's encoder on the same reduced features.
			var doc struct {
				Encoder policy.EncoderSpec `yaml:"encoder"`
			}
			if err := yaml.Unmarshal([]byte(encoderBlock), &doc); err != nil {
				t.Fatal(err)
			}
			dsCalls := datasetsPath(t, spec, doc.Encoder, simCalls)
			want := newFrozen(t, spec)
			probs := make([]float64, len(models))
			arms := make([]decision.Arm, len(models))
			for i, m := range models {
				arms[i] = decision.Arm{ID: m}
			}
			for _, c := range simCalls {
				f := decision.Features{Task: c.f.Task, PromptTokens: c.f.PromptTokens}
				f.Vector = simEnc.Encode(&f, nil)
				if _, err := want.Select(context.Background(), &f, arms, probs); err != nil {
					t.Fatal(err)
				}
			}
			compare(t, "datasets", want.calls, dsCalls)
		})
	}
}

// TestDefaultSpecsAgree: without an encoder block the simulator and the
// gateway use the same default, differing only in their task vocabulary
// (the scenario's tasks, the gateway's TaskNames): tenants, sizes and time
// are encoded alike.
func TestDefaultSpecsAgree(t *testing.T) {
	sc, err := sim.LoadScenario("tasks")
	if err != nil {
		t.Fatal(err)
	}
	c, err := gateway.ParseConfig([]byte("providers: [{name: sim, type: sim}]\nmodels: [{id: a, provider: sim, sim: {ttft_ms: 1}}]\nlog: {dir: \"\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, g := sc.EncoderSpec(), c.EncoderSpec()
	if !s.Equal(policy.DefaultEncoderSpec(sc.Tasks())) || !g.Equal(policy.DefaultEncoderSpec(gateway.TaskNames())) {
		t.Fatalf("defaults: sim %s, gateway %s", s.Canonical(), g.Canonical())
	}
	s.Tasks, g.Tasks = nil, nil
	if !s.Equal(g) {
		t.Fatalf("sim default %s and gateway default %s differ beyond tasks", s.Canonical(), g.Canonical())
	}
	if s.TenantBuckets == 0 {
		t.Fatal("default spec has no tenant block")
	}
}

// TestRewardSchemaShared: the gateway config and a scenario read one
// `reward:` schema (decision.RewardSpec) into the same decision.Reward, with
// durations in the forms both accepted before, and name a bad field alike.
func TestRewardSchemaShared(t *testing.T) {
	scenario, err := os.ReadFile("../../sim/scenarios/tasks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gw := "providers: [{name: sim, type: sim}]\nmodels: [{id: a, provider: sim, sim: {ttft_ms: 1}}]\nlog: {dir: \"\"}\n"
	for _, block := range []string{
		"reward: {quality: 0.5, cost: 0.3, latency: 0.2, cost_ref: 0.01, latency_ref: 1500ms, unknown_quality: 0.4}\n",
		"reward: {failure: 0.5, latency_ref: \"3s\"}\n",
		"reward: {quality: 1, cost: 0, latency: 0, lambda: 20}\n",
		"reward: {}\n",
	} {
		sc, err := sim.ParseScenario("tasks", append(append([]byte(nil), scenario...), block...))
		if err != nil {
			t.Fatalf("%s: scenario: %v", block, err)
		}
		c, err := gateway.ParseConfig([]byte(gw + block))
		if err != nil {
			t.Fatalf("%s: gateway: %v", block, err)
		}
		g, err := c.Reward.Reward()
		if err != nil {
			t.Fatal(err)
		}
		if sc.RewardFunc() != g {
			t.Fatalf("%s: scenario reward %+v, gateway %+v", block, sc.RewardFunc(), g)
		}
		if block == "reward: {}\n" && g != decision.DefaultReward() {
			t.Fatalf("empty block: %+v, want the default", g)
		}
	}
	if r := func() time.Duration {
		c, _ := gateway.ParseConfig([]byte(gw + "reward: {latency_ref: 1500ms}\n"))
		return c.Reward.LatencyRef.D()
	}(); r != 1500*time.Millisecond {
		t.Fatalf("latency_ref 1500ms read as %v", r)
	}
	for _, bad := range []struct{ block, field string }{
		{"reward: {cost_ref: -1}\n", "cost_ref"},
		{"reward: {unknown_quality: 2}\n", "unknown_quality"},
		{"reward: {latency_ref: soon}\n", "latency_ref"},
		{"reward: {latency_ref: 1.5}\n", "latency_ref"},
		{"reward: {qualty: 1}\n", "qualty"},
		{"reward: {lambda: -2}\n", "lambda"},
		{"encoder: {token_buckets: [10, 10]}\n", "encoder token_buckets[1]"},
		{"encoder: {version: 9, intercept: true}\n", "encoder version 9"},
	} {
		_, serr := sim.ParseScenario("tasks", append(append([]byte(nil), scenario...), bad.block...))
		_, gerr := gateway.ParseConfig([]byte(gw + bad.block))
		for _, err := range []error{serr, gerr} {
			if err == nil || !strings.Contains(err.Error(), bad.field) {
				t.Errorf("%s: err = %v, want one naming %s", bad.block, err, bad.field)
			}
		}
	}
}

// textEncoderBlock has a text block: the gateway (prompt from the request's
// messages) and datasets (the row's prompt) must encode a prompt alike.
const textEncoderBlock = `
encoder:
  version: 2
  intercept: true
  tasks: [code, chat, math, summarize]
  text: {buckets: 64, word_ngrams: 2, char_min: 3, char_max: 4, idf: [` +
	"1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4,1,2,3,4" +
	`], markers: true}
`

// TestTextParity: prompts with code, digits, unicode and several lines,
// each sent to the gateway as one user message, get the vectors and
// decisions datasets gives the same prompts as benchmark rows.
func TestTextParity(t *testing.T) {
	prompts := []string{
		"Write a python function to find the shared elements from the given two lists.\nassert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
		"Question: Which gas do plants absorb? A. oxygen B. carbon dioxide C. nitrogen D. helium\nAnswer:",
		"Ünïcödé prompt — with “quotes” and 12 + 30 = 42 maths; {braces}; ```code```",
		"short",
	}
	tasks := []string{"code", "chat", "math", "other"}
	var cfg strings.Builder
	cfg.WriteString("providers: [{name: sim, type: sim, time_scale: 0.0001}]\nmodels:\n")
	for _, m := range models {
		fmt.Fprintf(&cfg, "  - {id: %s, provider: sim, price_in: 0.0005, price_out: 0.0015, context_window: 100000, sim: {ttft_ms: 1, output_tokens: 2}}\n", m)
	}
	cfg.WriteString("policy: {name: frozen}\nlog: {dir: \"\"}\n" + textEncoderBlock)
	c, err := gateway.ParseConfig([]byte(cfg.String()))
	if err != nil {
		t.Fatal(err)
	}
	const spec = "linucb=seed:7"
	p := newFrozen(t, spec)
	reg := policy.NewBuiltinRegistry()
	if err := reg.Register("frozen", "test wrapper", func(policy.Params) (policy.Policy, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Opts{Config: c, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for i, pr := range prompts {
		body := fmt.Sprintf(`{"model":"auto","messages":[{"role":"user","content":%q}]}`, pr)
		req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(gateway.HeaderTask, tasks[i])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d", i, res.StatusCode)
		}
	}

	var doc struct {
		Encoder policy.EncoderSpec `yaml:"encoder"`
	}
	if err := yaml.Unmarshal([]byte(textEncoderBlock), &doc); err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewEncoder(doc.Encoder)
	if err != nil {
		t.Fatal(err)
	}
	tb := &datasets.Table{Name: "parity", Models: models}
	for i, pr := range prompts {
		tb.Rows = append(tb.Rows, datasets.Row{ID: fmt.Sprint(i), Task: tasks[i], PromptTokens: len(pr) / 4, Prompt: pr,
			Scores: make([]float64, len(models)), Costs: make([]float64, len(models))})
	}
	dp := newFrozen(t, spec)
	if _, err := datasets.Evaluate(context.Background(), tb, dp, datasets.Opts{Seed: 1, Passes: 1, Encoder: e}); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.calls) != len(prompts) || len(dp.calls) != len(prompts) {
		t.Fatalf("gateway made %d selections, datasets %d, for %d prompts", len(p.calls), len(dp.calls), len(prompts))
	}
	for i := range prompts {
		g, d := p.calls[i], dp.calls[i]
		if !sameBits(d.f.Vector, g.f.Vector) {
			t.Fatalf("prompt %d: gateway vector\n%v\ndatasets\n%v", i, g.f.Vector, d.f.Vector)
		}
		nz := 0
		for _, x := range g.f.Vector[1+len(tasks)+1:] {
			if x != 0 {
				nz++
			}
		}
		if nz < 3 {
			t.Fatalf("prompt %d: only %d text slots set: the prompt did not reach the encoder", i, nz)
		}
		if g.chosen != d.chosen || !sameBits(g.probs, d.probs) {
			t.Fatalf("prompt %d: gateway chose %d %v, datasets %d %v", i, g.chosen, g.probs, d.chosen, d.probs)
		}
	}
}
