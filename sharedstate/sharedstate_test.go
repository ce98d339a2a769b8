package sharedstate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/sharedstate"
)

// redisClient connects to the test Redis named by ROUTELAB_REDIS_ADDR
// (make redis-up) under a fresh prefix, or skips.
func redisClient(t *testing.T, prefix string) *sharedstate.Client {
	t.Helper()
	addr := os.Getenv("ROUTELAB_REDIS_ADDR")
	if addr == "" {
		t.Skip("ROUTELAB_REDIS_ADDR not set (make redis-up)")
	}
	c, err := sharedstate.New(sharedstate.Opts{Addr: addr, Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()))
	return c
}

func freshPrefix(t *testing.T) string {
	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return "test-" + hex.EncodeToString(b[:]) + ":"
}

func TestMergeAppliesEachBatchOnce(t *testing.T) {
	c := redisClient(t, freshPrefix(t))
	ctx := context.Background()
	got, err := c.Merge(ctx, "s", 1, policy.Stats{"n:a": 2, "s:a": 1.5, "!dim": 3})
	require.NoError(t, err)
	assert.Equal(t, policy.Stats{"n:a": 2, "s:a": 1.5, "!dim": 3}, got)
	got, err = c.Merge(ctx, "s", 1, policy.Stats{"n:a": 2, "s:a": 1.5}) // a retry
	require.NoError(t, err)
	assert.Equal(t, 2.0, got["n:a"], "a retried batch counts once")
	got, err = c.Merge(ctx, "s", 2, policy.Stats{"n:a": 1, "n:b": 0.25})
	require.NoError(t, err)
	assert.Equal(t, policy.Stats{"n:a": 3, "s:a": 1.5, "n:b": 0.25, "!dim": 3}, got)
}

// Two replicas of a policy, each learning its own share of the traffic,
// end with the same statistics: those of one policy that saw all of it.
func TestStatsSyncConverges(t *testing.T) {
	prefix := freshPrefix(t)
	ctx := context.Background()
	reg := policy.NewBuiltinRegistry()
	mk := func(seed string) policy.Mergeable {
		p, err := reg.NewFromString("thompson=seed:" + seed)
		require.NoError(t, err)
		m, ok := policy.AsMergeable(p)
		require.True(t, ok)
		return m
	}
	ref := mk("9")
	syncs := []*sharedstate.StatsSync{redisClient(t, prefix).NewStatsSync("pol", mk("1")), redisClient(t, prefix).NewStatsSync("pol", mk("2"))}
	cands := []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	var wg sync.WaitGroup
	for r, s := range syncs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := s.Policy().(policy.Policy)
			for i := 0; i < 500; i++ {
				if err := p.Update(nil, cands, (i+r)%3, float64(i%2)); err != nil {
					t.Error(err)
					return
				}
				if i%37 == 0 {
					if err := s.Sync(ctx); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		for i := 0; i < 500; i++ {
			require.NoError(t, ref.(policy.Policy).Update(nil, cands, (i+r)%3, float64(i%2)))
		}
	}
	wg.Wait()
	for _, s := range syncs {
		require.NoError(t, s.Sync(ctx))
	}
	require.NoError(t, syncs[0].Sync(ctx))
	want := ref.Stats()
	for i, s := range syncs {
		got := s.Policy().Stats()
		for k, v := range want {
			assert.InDelta(t, v, got[k], 1e-9, "replica %d field %s", i, k)
		}
		_, n := s.LastMerge()
		assert.Equal(t, 1000.0, n)
	}
	// A restarted replica (a new process: another replica id) resumes.
	r := redisClient(t, prefix).NewStatsSync("pol", mk("3"))
	require.NoError(t, r.Sync(ctx))
	assert.InDelta(t, 1000, r.Policy().Stats().Updates(), 1e-9)
}

// The shared bucket holds across clients: over a burst of concurrent
// requests from two clients, accepted ≤ burst + rate × elapsed.
func TestAllowHoldsAcrossClients(t *testing.T) {
	prefix := freshPrefix(t)
	cs := []*sharedstate.Client{redisClient(t, prefix), redisClient(t, prefix)}
	const rps, burst = 20.0, 5
	var accepted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ok, wait, err := cs[w%2].Allow(context.Background(), "key:k", rps, burst)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					accepted.Add(1)
				} else if wait <= 0 {
					t.Errorf("refused with wait %v", wait)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	limit := float64(burst) + rps*elapsed
	t.Logf("accepted %d of 320 in %.3fs; limit %.1f", accepted.Load(), elapsed, limit)
	assert.LessOrEqual(t, float64(accepted.Load()), limit)
	assert.GreaterOrEqual(t, accepted.Load(), int64(burst), "the burst is allowed")
}

func TestPendingTakenOnce(t *testing.T) {
	c := redisClient(t, freshPrefix(t))
	require.NoError(t, c.PutPending("r1", []byte("x"), time.Minute))
	d, ok, err := c.TakePending("r1")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, []byte("x"), d)
	_, ok, err = c.TakePending("r1")
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestSecretShared(t *testing.T) {
	prefix := freshPrefix(t)
	a, err := redisClient(t, prefix).Secret(context.Background(), "ids")
	require.NoError(t, err)
	b, err := redisClient(t, prefix).Secret(context.Background(), "ids")
	require.NoError(t, err)
	assert.Len(t, a, 32)
	assert.Equal(t, a, b)
}

// Without Redis, operations fail at once with ErrDown after the first
// failure, and a sync keeps its deltas for later.
func TestDownFailsFast(t *testing.T) {
	var changes []bool
	c, err := sharedstate.New(sharedstate.Opts{Addr: "127.0.0.1:1", OnChange: func(up bool) { changes = append(changes, up) }})
	require.NoError(t, err)
	defer c.Close()
	assert.Error(t, c.Ping(context.Background()))
	assert.False(t, c.Up())
	_, _, err = c.Allow(context.Background(), "k", 1, 1)
	assert.ErrorIs(t, err, sharedstate.ErrDown)
	p, err := policy.NewBuiltinRegistry().NewFromString("ucb1")
	require.NoError(t, err)
	m, _ := policy.AsMergeable(p)
	s := c.NewStatsSync("x", m)
	require.NoError(t, p.Update(nil, []decision.Arm{{ID: "a"}}, 0, 1))
	assert.ErrorIs(t, s.Sync(context.Background()), sharedstate.ErrDown)
	assert.Equal(t, 1.0, m.Stats().Updates(), "local state kept")
	assert.Empty(t, changes, "never up: no change")
}
