package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/routelab/routelab/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spyPolicy wraps a policy and records every Select and Update.
type spyPolicy struct {
	policy.Policy
	selects int
	rewards []float64
}

func (s *spyPolicy) Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	s.selects++
	return s.Policy.Select(ctx, f, cands, probs)
}

func (s *spyPolicy) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	s.rewards = append(s.rewards, reward)
	return s.Policy.Update(f, cands, chosen, reward)
}

// spySink keeps what it needs of every record, and the serving policy's
// update count at the moment the record was logged.
type spySink struct {
	serving    *spyPolicy
	reasons    []string
	rewards    []float64
	recomputed []float64
	shadowSame int
	updatesAt  []int
	reward     decision.Reward
}

func (s *spySink) Log(rec *decision.Record) {
	s.reasons = append(s.reasons, rec.Decision.Reason)
	s.rewards = append(s.rewards, rec.Reward)
	s.recomputed = append(s.recomputed, s.reward.ForDecision(&rec.Decision, &rec.Outcome))
	if rec.Decision.Shadow.Policy != "" && rec.Decision.Shadow.Arm == rec.Decision.Arm().ID {
		s.shadowSame++
	}
	s.updatesAt = append(s.updatesAt, len(s.serving.rewards))
}

// The simulator acts and nothing else: every policy update and every
// reward comes from route.Core.Complete, exactly one per completed routed
// request, in completion order; forced requests teach no policy; the
// shadow learns only where it agreed (ShadowMatched; weighted learning is
// route's tests' business); and the Result's rewards are the
// core's.
func TestSimLearnsOnlyThroughTheCore(t *testing.T) {
	sc := load(t, "tasks")
	const n = 600
	var tr sim.TraceSlice
	for i := range n {
		r := sim.TraceRequest{At: time.Duration(i) * 200 * time.Millisecond}
		r.Features.Task = []string{"math", "code", "chat"}[i%3]
		if i%5 == 0 {
			r.Forced = "coder"
		}
		tr = append(tr, r)
	}
	for _, immediate := range []bool{false, true} {
		serving := &spyPolicy{Policy: newPolicy(t, "thompson", 3)}
		shadow := &spyPolicy{Policy: newPolicy(t, "random", 4)}
		sink := &spySink{serving: serving, reward: sc.RewardFunc()}
		res := run(t, sim.Opts{Scenario: sc, Policy: serving, Shadow: shadow, Seed: 3, Trace: tr,
			Sink: sink, ImmediateFeedback: immediate, ShadowLearn: route.ShadowLearnOpts{Mode: route.ShadowMatched}})

		require.Len(t, sink.rewards, n, "immediate=%v: records logged", immediate)
		routed, sum := 0, 0.0
		var routedRewards []float64
		for i, why := range sink.reasons {
			sum += sink.rewards[i]
			assert.Equal(t, sink.recomputed[i], sink.rewards[i], "immediate=%v: record %d's reward is the core's reward function", immediate, i)
			if why == decision.ReasonPolicy {
				routed++
				routedRewards = append(routedRewards, sink.rewards[i])
			}
			assert.Equal(t, routed, sink.updatesAt[i], "immediate=%v: serving updates when record %d was logged", immediate, i)
		}
		assert.Equal(t, n-n/5, routed, "immediate=%v: routed requests", immediate)
		assert.Equal(t, routed, serving.selects, "immediate=%v: serving selects", immediate)
		assert.Equal(t, routedRewards, serving.rewards, "immediate=%v: serving updates, one per completed routed request with its logged reward", immediate)
		assert.Equal(t, routed, shadow.selects, "immediate=%v: shadow selects", immediate)
		assert.Len(t, shadow.rewards, sink.shadowSame, "immediate=%v: shadow updates where it chose the served arm", immediate)
		assert.InDelta(t, sum/n, res.MeanReward, 1e-12, "immediate=%v: result mean reward is the mean logged reward", immediate)
	}
}
