package policy_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/policy"
)

// sumStore is the merge a shared store does: it adds deltas field by field
// and sets the "!" fields.
type sumStore policy.Stats

func (s sumStore) publish(d policy.Stats) {
	for k, v := range d {
		if k[0] == '!' {
			s[k] = v
		} else {
			s[k] += v
		}
	}
}

func (s sumStore) sync(t *testing.T, m policy.Mergeable) {
	t.Helper()
	s.publish(m.TakeDelta())
	require.NoError(t, m.SetShared(policy.Stats(s)))
}

// Two replicas learning disjoint halves of the traffic and merging through
// a summing store end with the statistics of one policy that learned all
// of it; a third replica built later (a restart) gets them from the store.
func TestMergedReplicasEqualOnePolicy(t *testing.T) {
	e := benchEncoder(t)
	for _, spec := range []string{"epsilon-greedy", "ucb1", "softmax", "thompson", "thompson=model:gaussian", "d-thompson=gamma:1", "linucb", "lin-thompson", "egreedy-ridge", "linucb=floor:0.1"} {
		t.Run(spec, func(t *testing.T) {
			ref, a, b := build(t, spec, 1), build(t, spec, 2), build(t, spec, 3)
			ma, ok := policy.AsMergeable(a)
			require.True(t, ok, "%s: want mergeable", spec)
			mb, _ := policy.AsMergeable(b)
			mr, _ := policy.AsMergeable(ref)
			assert.Equal(t, ma.MergeKey(), mb.MergeKey(), "merge keys ignore the seed")
			store := sumStore{}
			cands := arms(5)
			for i := 0; i < 600; i++ {
				f := feat(e, i)
				chosen := (i * 7 / 3) % len(cands)
				r := bernoulli(float64(i%10)/10, f, cands[chosen])
				p := a
				if i%3 == 0 {
					p = b
				}
				require.NoError(t, p.Update(f, cands, chosen, r))
				require.NoError(t, ref.Update(f, cands, chosen, r))
				if i%50 == 49 {
					store.sync(t, ma)
				}
				if i%70 == 69 {
					store.sync(t, mb)
				}
			}
			store.sync(t, ma)
			store.sync(t, mb)
			store.sync(t, ma)
			want := mr.Stats()
			assert.InDelta(t, 600, want.Updates(), 1e-9)
			c := build(t, spec, 4) // a restarted replica
			mc, _ := policy.AsMergeable(c)
			mc.TakeDelta()
			require.NoError(t, mc.SetShared(policy.Stats(store)))
			for name, m := range map[string]policy.Mergeable{"a": ma, "b": mb, "restarted": mc} {
				got := m.Stats()
				assert.Len(t, got, len(want), "%s: fields", name)
				for k, v := range want {
					assert.InDelta(t, v, got[k], 1e-9*math.Max(1, math.Abs(v)), "%s: field %s", name, k)
				}
			}
		})
	}
}

func TestNotMergeable(t *testing.T) {
	for _, spec := range []string{"random", "weighted", "d-ucb", "sw-ucb", "d-thompson", "linucb=gamma:0.999", "d-ucb=floor:0.1"} {
		_, ok := policy.AsMergeable(build(t, spec, 1))
		assert.False(t, ok, spec)
	}
}

func TestSetSharedRejectsBadStats(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		stats policy.Stats
	}{
		{"thompson", policy.Stats{"x:m1": 1}},
		{"thompson", policy.Stats{"n:m1": -1}},
		{"thompson", policy.Stats{"n:m1": math.NaN()}},
		{"thompson", policy.Stats{"n:m1": 1, "s:m1": 3}}, // Beta posterior improper
		{"linucb", policy.Stats{"n:m1": 1}},              // no !dim
		{"linucb", policy.Stats{"!dim": 4, "b:9:m1": 1}},
		{"linucb", policy.Stats{"!dim": 4, "a:2:1:m1": 1}},
		{"linucb=dim:3", policy.Stats{"!dim": 4}},
	} {
		p := build(t, tc.spec, 1)
		m, _ := policy.AsMergeable(p)
		before := m.Stats()
		err := m.SetShared(tc.stats)
		assert.Error(t, err, "%s %v", tc.spec, tc.stats)
		assert.Equal(t, before, m.Stats(), "a refused SetShared changes nothing")
	}
}
