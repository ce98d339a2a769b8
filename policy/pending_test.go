package policy_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a policy that records the rewards it is given, by arm.
type recorder struct {
	mu      sync.Mutex
	rewards map[string][]float64
	tasks   []string
}

func (*recorder) Name() string { return "recorder" }
func (*recorder) Select(context.Context, *decision.Features, []decision.Arm, []float64) (int, error) {
	return 0, nil
}
func (r *recorder) Update(f *decision.Features, cands []decision.Arm, chosen int, reward float64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rewards == nil {
		r.rewards = map[string][]float64{}
	}
	r.rewards[cands[chosen].ID] = append(r.rewards[cands[chosen].ID], reward)
	r.tasks = append(r.tasks, f.Task)
	return nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestPendingDeliversLateOutOfOrderAndDefaultRewards(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	rec := &recorder{}
	q, err := policy.NewPending(rec, policy.PendingOpts{Timeout: time.Minute, DefaultReward: 0.25, Now: clock.Now})
	require.NoError(t, err)
	cands := arms(3)
	f := &decision.Features{Task: "code", Tags: []string{"a"}, Vector: []float64{1, 2}}
	require.NoError(t, q.Add("r1", f, cands, 0))
	clock.Advance(10 * time.Second)
	require.NoError(t, q.Add("r2", f, cands, 1))
	clock.Advance(10 * time.Second)
	require.NoError(t, q.Add("r3", f, cands, 2))
	// The caller reuses its buffers: Pending must have copied them.
	f.Task, f.Tags[0], f.Vector[0] = "chat", "b", 9
	cands[2].ID = "changed"

	// Out of order: r3 before r1; r2 never arrives.
	require.NoError(t, q.Complete("r3", 1))
	clock.Advance(30 * time.Second) // r1 is 50 s old, r2 40 s
	require.NoError(t, q.Complete("r1", 0.75))
	assert.Equal(t, map[string][]float64{"m2": {1}, "m0": {0.75}}, rec.rewards)

	clock.Advance(25 * time.Second) // r2 is 65 s old
	n, err := q.Expire()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []float64{0.25}, rec.rewards["m1"], "timeout delivers the default reward")
	assert.Equal(t, []string{"code", "code", "code"}, rec.tasks, "features as they were at Add")

	// A reward arriving after its timeout is dropped and counted.
	assert.ErrorIs(t, q.Complete("r2", 1), policy.ErrUnknownRequest)
	assert.ErrorIs(t, q.Complete("never", 1), policy.ErrUnknownRequest)
	assert.Equal(t, policy.PendingStats{Added: 3, Completed: 2, Expired: 1, Unknown: 2}, q.Stats())
}

func TestPendingExpiresLazilyAndBoundsItsSize(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	rec := &recorder{}
	q, err := policy.NewPending(rec, policy.PendingOpts{Timeout: time.Second, DefaultReward: 0, MaxSize: 3, Now: clock.Now})
	require.NoError(t, err)
	cands := arms(1)
	for i := 0; i < 5; i++ {
		require.NoError(t, q.Add(fmt.Sprint(i), nil, cands, 0))
	}
	st := q.Stats()
	assert.Equal(t, uint64(2), st.Evicted, "two oldest evicted")
	assert.Equal(t, 3, st.Waiting)
	assert.Empty(t, rec.rewards, "eviction does not update the policy")
	assert.ErrorIs(t, q.Complete("0", 1), policy.ErrUnknownRequest)

	clock.Advance(2 * time.Second)
	// The next Add expires the three waiting ones first.
	require.NoError(t, q.Add("late", nil, cands, 0))
	assert.Equal(t, []float64{0, 0, 0}, rec.rewards["m0"])
	st = q.Stats()
	assert.Equal(t, uint64(3), st.Expired)
	assert.Equal(t, 1, st.Waiting)
}

func TestPendingBadInput(t *testing.T) {
	rec := &recorder{}
	_, err := policy.NewPending(rec, policy.PendingOpts{})
	assert.ErrorContains(t, err, "timeout")
	_, err = policy.NewPending(rec, policy.PendingOpts{Timeout: time.Second, DefaultReward: math.NaN()})
	assert.ErrorContains(t, err, "default reward")
	_, err = policy.NewPending(nil, policy.PendingOpts{Timeout: time.Second})
	assert.Error(t, err)
	q, err := policy.NewPending(rec, policy.PendingOpts{Timeout: time.Hour})
	require.NoError(t, err)
	cands := arms(2)
	assert.ErrorContains(t, q.Add("", nil, cands, 0), "empty request id")
	assert.ErrorIs(t, q.Add("a", nil, nil, 0), policy.ErrNoCandidates)
	assert.ErrorIs(t, q.Add("a", nil, cands, 2), policy.ErrBadChosen)
	require.NoError(t, q.Add("a", nil, cands, 1))
	assert.ErrorContains(t, q.Add("a", nil, cands, 1), "already waiting")
	assert.ErrorIs(t, q.Complete("a", math.NaN()), policy.ErrBadReward)
	assert.Equal(t, 1, q.Stats().Waiting, "a NaN reward leaves the decision waiting")
	require.NoError(t, q.Complete("a", 1))
	assert.Equal(t, []float64{1}, rec.rewards["m1"])
}

// TestPendingWithALearningPolicy runs Pending concurrently in front of a
// real policy: rewards arrive shuffled, some never; the statistics the
// policy ends with are those of the rewards delivered plus the defaults.
func TestPendingWithALearningPolicy(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	p, err := policy.NewUCB1(policy.UCB1Opts{C: 1})
	require.NoError(t, err)
	q, err := policy.NewPending(p, policy.PendingOpts{Timeout: time.Minute, DefaultReward: 0, Now: clock.Now})
	require.NoError(t, err)
	cands := arms(2)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := fmt.Sprintf("%d-%d", g, i)
				assert.NoError(t, q.Add(id, nil, cands, i%2))
				if i%4 != 3 { // every fourth reward never arrives
					assert.NoError(t, q.Complete(id, 1))
				}
			}
		}()
	}
	wg.Wait()
	clock.Advance(2 * time.Minute)
	n, err := q.Expire()
	require.NoError(t, err)
	assert.Equal(t, 200, n)
	// Arm m1 (odd i) got 400 rewards: 200 ones and 200 defaults of 0; arm
	// m0 got 400 ones. UCB1 must now prefer m0.
	probs := make([]float64, 2)
	c, err := p.Select(context.Background(), nil, cands, probs)
	require.NoError(t, err)
	assert.Equal(t, 0, c)
	st := q.Stats()
	assert.Equal(t, policy.PendingStats{Added: 800, Completed: 600, Expired: 200}, st)
}
