package datasets

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// always is a test policy that always chooses the candidate with its id.
type always struct {
	id      string
	updates []float64
	err     error
}

func (a *always) Name() string { return "always-" + a.id }

func (a *always) Select(_ context.Context, _ *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	for i := range cands {
		probs[i] = 0
	}
	for i, c := range cands {
		if c.ID == a.id {
			probs[i] = 1
			return i, nil
		}
	}
	return -1, nil
}

func (a *always) Update(_ *decision.Features, _ []decision.Arm, _ int, r float64) error {
	a.updates = append(a.updates, r)
	return nil
}

func tinyTable() *Table {
	return &Table{Name: "tiny", Models: []string{"a", "b"}, Rows: []Row{
		{ID: "r1", Task: "x", PromptTokens: 10, Scores: []float64{1, 0}, Costs: []float64{0.001, 0}},
		{ID: "r2", Task: "y", PromptTokens: 20, Scores: []float64{0, 1}, Costs: []float64{0.001, 0.003}},
	}}
}

// halfHalf weighs quality and cost equally, with no latency term, so the
// rewards are easy to compute by hand: r = q/2 + 1/(2(1+cost/0.001)).
var halfHalf = decision.Reward{Quality: 0.5, Cost: 0.5, CostRef: 0.001, LatencyRef: time.Second, Failure: 1, UnknownQuality: 0.5}

func TestEvaluateFixedPolicy(t *testing.T) {
	// rewards: r1 a 0.5+0.25=0.75, b 0+0.5=0.5; r2 a 0+0.25=0.25, b 0.5+0.125=0.625.
	p := &always{id: "a"}
	res, err := Evaluate(context.Background(), tinyTable(), p, Opts{Reward: halfHalf, Passes: 2})
	require.NoError(t, err)
	assert.Equal(t, []float64{0.75, 0.25, 0.75, 0.25}, p.updates, "rewards passed to Update, table order")
	assert.Equal(t, 2, res.Rows)
	assert.Equal(t, 4, res.Decisions)
	assert.InDelta(t, 0.5, res.MeanReward, 1e-12)
	assert.InDelta(t, (0.75+0.625)/2, res.OracleMeanReward, 1e-12)
	assert.InDelta(t, 2*0.375, res.Regret, 1e-12)
	assert.InDelta(t, 0.5, res.MeanScore, 1e-12)
	assert.InDelta(t, 0.004, res.CostTotal, 1e-12)
	assert.Equal(t, []Share{{"a", 1}, {"b", 0}}, res.Shares)
	require.Len(t, res.Fixed, 2)
	assert.InDelta(t, 0.5, res.Fixed[0].MeanReward, 1e-12)
	assert.InDelta(t, 0.5625, res.Fixed[1].MeanReward, 1e-12)
	assert.InDelta(t, 0.5, res.Fixed[1].MeanScore, 1e-12)
	assert.InDelta(t, 0.006, res.Fixed[1].CostTotal, 1e-12, "two passes of b's 0.003")
	assert.Equal(t, "b", res.BestFixed)
	assert.Equal(t, "always-a", res.Policy)
}

func TestEvaluateDefaultRewardAndLatency(t *testing.T) {
	tb := &Table{Name: "one", Models: []string{"a"}, Rows: []Row{{ID: "r", Scores: []float64{1}, Costs: []float64{0.001}}}}
	// BenchReward: 0.6·1 + 0.2·1/(1+1) + 0.2·1/(1+latency/2s).
	res, err := Evaluate(context.Background(), tb, &always{id: "a"}, Opts{})
	require.NoError(t, err)
	assert.InDelta(t, 0.6+0.1+0.2/1.5, res.MeanReward, 1e-12, "default latency 1 s")
	res, err = Evaluate(context.Background(), tb, &always{id: "a"}, Opts{LatencyMS: map[string]float64{"a": 2000}})
	require.NoError(t, err)
	assert.InDelta(t, 0.6+0.1+0.1, res.MeanReward, 1e-12, "latency 2 s")
}

func TestEvaluateShuffleSeeded(t *testing.T) {
	tb := &Table{Name: "n", Models: []string{"a"}}
	for i := range 50 {
		tb.Rows = append(tb.Rows, Row{ID: "r", Scores: []float64{float64(i) / 50}, Costs: []float64{0}})
	}
	run := func(seed uint64, shuffle bool) []float64 {
		p := &always{id: "a"}
		_, err := Evaluate(context.Background(), tb, p, Opts{Seed: seed, Shuffle: shuffle, Reward: halfHalf})
		require.NoError(t, err)
		return p.updates
	}
	inOrder := run(1, false)
	assert.Equal(t, run(7, true), run(7, true), "same seed, same order")
	assert.NotEqual(t, inOrder, run(7, true), "shuffled")
	assert.NotEqual(t, run(7, true), run(8, true), "seed changes the order")
	assert.ElementsMatch(t, inOrder, run(7, true), "a permutation")
}

func TestEvaluateErrors(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	boom := errors.New("boom")
	ragged := tinyTable()
	ragged.Rows[1].Costs = ragged.Rows[1].Costs[:1]
	tests := []struct {
		name string
		ctx  context.Context
		t    *Table
		p    policy.Policy
		o    Opts
		msg  string
	}{
		{"empty", ctx, &Table{}, &always{id: "a"}, Opts{}, "empty table"},
		{"nil policy", ctx, tinyTable(), nil, Opts{}, "nil policy"},
		{"negative passes", ctx, tinyTable(), &always{id: "a"}, Opts{Passes: -1}, "passes -1"},
		{"bad reward", ctx, tinyTable(), &always{id: "a"}, Opts{Reward: decision.Reward{Quality: 1}}, "cost_ref"},
		{"bad latency", ctx, tinyTable(), &always{id: "a"}, Opts{LatencyMS: map[string]float64{"a": -1}}, "latency -1 ms"},
		{"unknown model latency", ctx, tinyTable(), &always{id: "a"}, Opts{LatencyMS: map[string]float64{"z": 1}}, "\"z\": not a model"},
		{"ragged row", ctx, ragged, &always{id: "a"}, Opts{}, "row 1 (r2)"},
		{"bad index", ctx, tinyTable(), &always{id: "z"}, Opts{}, "chose -1 of 2 candidates"},
		{"select error", ctx, tinyTable(), &always{err: boom}, Opts{}, "boom"},
		{"cancelled", cancelled, tinyTable(), &always{id: "a"}, Opts{}, "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(tc.ctx, tc.t, tc.p, tc.o)
			assert.ErrorContains(t, err, tc.msg)
		})
	}
}

// TestEvaluateLearnsOnRouterBench: on the real RouterBench table a learning
// policy must beat uniform random routing, and stay below the oracle.
func TestEvaluateLearnsOnRouterBench(t *testing.T) {
	tb, err := LoadRouterBench(sharedData(t, "routerbench"))
	require.NoError(t, err)
	reg := policy.NewBuiltinRegistry()
	run := func(spec string) *Result {
		p, err := reg.NewFromString(spec)
		require.NoError(t, err)
		res, err := Evaluate(context.Background(), tb, p, Opts{Seed: 1, Shuffle: true, Passes: 2})
		require.NoError(t, err)
		return res
	}
	rnd := run("random=seed:1")
	ts := run("thompson=seed:1")
	t.Logf("random %.4f, thompson %.4f, best fixed %s, oracle %.4f", rnd.MeanReward, ts.MeanReward, ts.BestFixed, ts.OracleMeanReward)
	assert.Greater(t, ts.MeanReward, rnd.MeanReward+0.04, "thompson %v, random %v", ts.MeanReward, rnd.MeanReward)
	assert.Less(t, ts.MeanReward, ts.OracleMeanReward)
}

// seeing is always that also records, on every Select, the quality the
// candidates carry.
type seeing struct {
	always
	quality [][]float64
}

func (s *seeing) Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	q := make([]float64, len(cands))
	for i := range cands {
		q[i] = cands[i].Quality
	}
	s.quality = append(s.quality, q)
	return s.always.Select(ctx, f, cands, probs)
}

// Evaluate drives the decision core: one Update per decision with the
// core's reward, and the candidates carry the core's live profiles (the
// chosen model's observed quality) as they do in the simulator and the
// gateway.
func TestEvaluateGoesThroughTheCore(t *testing.T) {
	p := &seeing{always: always{id: "a"}}
	res, err := Evaluate(context.Background(), tinyTable(), p, Opts{Reward: halfHalf, Passes: 2})
	require.NoError(t, err)
	assert.Len(t, p.updates, res.Decisions, "one update per decision")
	assert.Equal(t, []float64{0.75, 0.25, 0.75, 0.25}, p.updates, "rewards from the core")
	require.Len(t, p.quality, 4)
	assert.Equal(t, []float64{0, 0}, p.quality[0], "nothing observed before the first row")
	assert.Equal(t, []float64{1, 0}, p.quality[1], "a scored 1 on r1; b never chosen")
}
