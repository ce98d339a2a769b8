package route_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/route"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// unjudged is a successful outcome of unknown quality: what waits for
// feedback.
func unjudged() decision.Outcome {
	o := okOutcome()
	o.QualityKnown, o.Quality = false, 0
	return o
}

func ptr(v float64) *float64 { return &v }

func TestDeferredUpdatesLearnExactlyOnce(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := &fixed{name: "p", pick: "b"}
	var logged []float64
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Now: clock.Now,
		Sink:    sinkFunc(func(r *decision.Record) { logged = append(logged, r.Reward) }),
		Pending: route.PendingOpts{MaxEntries: 10, TTL: time.Minute, Defer: true}})
	require.NoError(t, err)
	ctx := context.Background()
	run := func(id string, out decision.Outcome, forced string) {
		var rec decision.Record
		req := decision.Request{ID: id, Forced: forced, Features: decision.Features{Task: "code", Tags: []string{"x"}, Vector: []float64{1}}}
		require.NoError(t, core.Run(ctx, &req, &scripted{out: out}, &rec))
	}
	run("r1", unjudged(), "")
	run("r2", unjudged(), "")
	judged := okOutcome()
	run("r3", judged, "") // quality known: learns now
	failed := unjudged()
	failed.Status = decision.StatusError
	run("r4", failed, "")      // a failure: learns now
	run("r5", unjudged(), "a") // forced: never learns
	_, rewards := p.seen()
	require.Len(t, rewards, 2, "only the judged and the failed request learned at completion")
	assert.Len(t, logged, 5, "every record is logged at completion")
	immediate := logged[0]

	// Out of order: r2 rated first, with a quality the core turns into a reward.
	res, err := core.Feedback("r2", ptr(1), nil)
	require.NoError(t, err)
	want := core.Reward().Of(&judged)
	assert.Equal(t, route.FeedbackResult{Model: "b", Reward: want, Learned: true}, res)
	res, err = core.Feedback("r3", nil, ptr(0.25))
	require.NoError(t, err)
	assert.Equal(t, route.FeedbackResult{Model: "b", Reward: 0.25, Learned: false}, res, "r3 learned at completion: not counted twice")
	_, err = core.Feedback("r2", ptr(1), nil)
	assert.ErrorIs(t, err, route.ErrUnknownRequest, "rated once")

	clock.Advance(2 * time.Minute)
	run("r6", judged, "") // any traffic sweeps what outlived the ttl
	_, rewards = p.seen()
	// r3 and r4 at completion, r2 from feedback, r6 at completion, then
	// r1, swept by r6, its immediate reward; r5 (forced) never.
	assert.Equal(t, []float64{want, 0, want, want, immediate}, rewards)
	_, err = core.Feedback("r1", nil, ptr(0.1))
	assert.ErrorIs(t, err, route.ErrUnknownRequest, "too late: it already learned its default")

	run("r7", unjudged(), "")
	core.Flush()
	_, rewards = p.seen()
	assert.Len(t, rewards, 6, "flush credits what still waits")
	_, err = core.Feedback("r7", nil, ptr(0.1))
	assert.ErrorIs(t, err, route.ErrUnknownRequest)
	assert.Equal(t, route.PendingStats{Deferred: 3, FromFeedback: 1, Expired: 2}, core.PendingStats())
}

func TestFeedbackWithoutDeferLearnsAtCompletionOnly(t *testing.T) {
	p := &fixed{name: "p", pick: "a"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Pending: route.PendingOpts{MaxEntries: 4}})
	require.NoError(t, err)
	var rec decision.Record
	require.NoError(t, core.Run(context.Background(), &decision.Request{ID: "x"}, &scripted{out: unjudged()}, &rec))
	_, rewards := p.seen()
	require.Len(t, rewards, 1)
	res, err := core.Feedback("x", ptr(0.5), nil)
	require.NoError(t, err)
	assert.False(t, res.Learned)
	_, rewards = p.seen()
	assert.Len(t, rewards, 1)
	assert.Equal(t, 0.5, core.Profiles().Get("a").Quality, "the rating feeds the quality profile")
}

func TestFeedbackErrors(t *testing.T) {
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"}})
	require.NoError(t, err)
	var rec decision.Record
	require.NoError(t, core.Run(context.Background(), &decision.Request{ID: "x"}, &scripted{out: unjudged()}, &rec))
	_, err = core.Feedback("x", ptr(0.5), nil)
	assert.ErrorIs(t, err, route.ErrUnknownRequest, "the zero PendingOpts keeps nothing")

	core, err = route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"}, Pending: route.PendingOpts{MaxEntries: 4, Defer: true}})
	require.NoError(t, err)
	require.NoError(t, core.Run(context.Background(), &decision.Request{ID: "x"}, &scripted{out: unjudged()}, &rec))
	for _, tc := range []struct {
		q, r *float64
		want string
	}{
		{nil, nil, "exactly one of quality or reward"},
		{ptr(1), ptr(1), "exactly one of quality or reward"},
		{ptr(math.NaN()), nil, "quality NaN outside [0,1]"},
		{nil, ptr(-1), "reward -1 outside [0,1]"},
	} {
		_, err := core.Feedback("x", tc.q, tc.r)
		assert.ErrorContains(t, err, tc.want)
	}
	_, err = core.Feedback("x", nil, ptr(1))
	assert.NoError(t, err, "bad feedback leaves the decision waiting")

	for _, o := range []route.PendingOpts{{MaxEntries: -1}, {MaxEntries: 1, TTL: -time.Second}} {
		_, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: &fixed{name: "p"}, Pending: o})
		assert.ErrorContains(t, err, "pending")
	}
}

func TestPendingBoundedEvictionCredits(t *testing.T) {
	p := &fixed{name: "p", pick: "a"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Pending: route.PendingOpts{MaxEntries: 3, Defer: true}})
	require.NoError(t, err)
	var rec decision.Record
	for i := range 5 {
		require.NoError(t, core.Run(context.Background(), &decision.Request{ID: fmt.Sprint(i)}, &scripted{out: unjudged()}, &rec))
	}
	st := core.PendingStats()
	assert.Positive(t, st.Bytes)
	assert.LessOrEqual(t, st.Mapped, int64(64<<10+104<<10), "three small decisions in one block, and one block of 1,024 slots")
	st.Bytes, st.Mapped = 0, 0
	assert.Equal(t, route.PendingStats{Waiting: 3, Deferred: 5, Expired: 2, Evicted: 2}, st)
	_, rewards := p.seen()
	assert.Len(t, rewards, 2, "each evicted deferred decision learned its immediate reward once")
	_, err = core.Feedback("0", ptr(1), nil)
	assert.ErrorIs(t, err, route.ErrUnknownRequest)
}

// TestPendingWithALearningPolicy runs the pending store concurrently in
// front of a real policy: ratings arrive in any order, some never; the
// statistics the policy ends with are those of the ratings delivered plus
// the immediate rewards of the unrated.
func TestPendingWithALearningPolicy(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	ucb, err := policy.NewUCB1(policy.UCB1Opts{C: 1})
	require.NoError(t, err)
	p := &counting{Policy: ucb}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue()[:2], Policy: p, Now: clock.Now,
		Pending: route.PendingOpts{MaxEntries: 1000, TTL: time.Minute, Defer: true}})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec decision.Record
			for i := range 200 {
				id := fmt.Sprintf("%d-%d", g, i)
				req := decision.Request{ID: id, Forced: ""}
				assert.NoError(t, core.Decide(context.Background(), &req, &rec.Decision))
				rec.Request = req
				rec.Outcome = unjudged()
				rec.Outcome.Arm = rec.Decision.Arm().ID
				rec.Time = time.Time{}
				assert.NoError(t, core.Complete(&rec))
				if i%4 != 3 { // every fourth rating never arrives
					_, err := core.Feedback(id, nil, ptr(1))
					assert.NoError(t, err)
				}
			}
		}()
	}
	wg.Wait()
	clock.Advance(2 * time.Minute)
	core.Flush()
	st := core.PendingStats()
	assert.Equal(t, route.PendingStats{Deferred: 800, FromFeedback: 600, Expired: 200}, st, "every decision learned exactly once")
	assert.Equal(t, int64(800), p.updates.Load(), "the policy got one update per decision")
}

// counting counts the updates of the policy it wraps.
type counting struct {
	policy.Policy
	updates atomic.Int64
}

func (c *counting) Update(f *decision.Features, cands []decision.Arm, chosen int, r float64) error {
	c.updates.Add(1)
	return c.Policy.Update(f, cands, chosen, r)
}

func TestRequestsWithoutIDAreNotKept(t *testing.T) {
	p := &fixed{name: "p", pick: "a"}
	core, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Pending: route.PendingOpts{MaxEntries: 4, Defer: true}})
	require.NoError(t, err)
	var rec decision.Record
	require.NoError(t, core.Run(context.Background(), &decision.Request{}, &scripted{out: unjudged()}, &rec))
	_, rewards := p.seen()
	assert.Len(t, rewards, 1, "no id, no feedback possible: learns at once")
	assert.Equal(t, route.PendingStats{}, core.PendingStats())
}

// mapBackend is a PendingBackend in memory, shared by several cores as
// Redis is by several gateway replicas; down makes every call fail.
type mapBackend struct {
	mu   sync.Mutex
	m    map[string][]byte
	down atomic.Bool
}

func (b *mapBackend) Put(id string, data []byte, _ time.Duration) error {
	if b.down.Load() {
		return fmt.Errorf("backend down")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[id] = append([]byte(nil), data...)
	return nil
}

func (b *mapBackend) Take(id string) ([]byte, bool, error) {
	if b.down.Load() {
		return nil, false, fmt.Errorf("backend down")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.m[id]
	delete(b.m, id)
	return d, ok, nil
}

// Feedback reaching another core joins the decision through the shared
// backend, and the deferred update happens exactly once across the cores:
// on the core that got the feedback, not again at expiry on the one that
// decided. A decision made while the backend was down is known locally only.
func TestPendingBackendJoinsAcrossCores(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	be := &mapBackend{m: map[string][]byte{}}
	pa, pb := &fixed{name: "p", pick: "b"}, &fixed{name: "p", pick: "b"}
	newCore := func(p policy.Policy) *route.Core {
		c, err := route.NewCore(route.CoreOpts{Catalogue: catalogue(), Policy: p, Now: clock.Now,
			Pending: route.PendingOpts{MaxEntries: 10, TTL: time.Minute, Defer: true, Backend: be}})
		require.NoError(t, err)
		return c
	}
	a, b := newCore(pa), newCore(pb)
	run := func(id string) {
		var rec decision.Record
		req := decision.Request{ID: id, Features: decision.Features{Task: "code", Vector: []float64{1}}}
		require.NoError(t, a.Run(context.Background(), &req, &scripted{out: unjudged()}, &rec))
	}
	run("r1")
	run("r2")
	be.down.Store(true)
	run("r3") // not shared
	be.down.Store(false)

	res, err := b.Feedback("r1", nil, ptr(0.75))
	require.NoError(t, err)
	assert.Equal(t, route.FeedbackResult{Model: "b", Reward: 0.75, Learned: true}, res)
	_, rb := pb.seen()
	assert.Equal(t, []float64{0.75}, rb, "the core that got the feedback learned")
	_, err = a.Feedback("r1", nil, ptr(0.5))
	assert.ErrorIs(t, err, route.ErrUnknownRequest, "rated once across cores")
	_, err = b.Feedback("r3", nil, ptr(0.5))
	assert.ErrorIs(t, err, route.ErrUnknownRequest, "made while the backend was down: local only")
	res, err = a.Feedback("r3", nil, ptr(0.5))
	require.NoError(t, err)
	assert.True(t, res.Learned)

	a.Flush() // r1 was rated through b: only r2 expires here
	_, ra := pa.seen()
	assert.Len(t, ra, 2, "r3 from feedback, r2 at expiry; r1 not again")
	st := a.PendingStats()
	assert.Equal(t, uint64(1), st.Expired)
	assert.Equal(t, uint64(1), st.BackendErrors)
	assert.Equal(t, uint64(1), b.PendingStats().Remote)
}
