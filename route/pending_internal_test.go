package route

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/stretchr/testify/assert"
)

func TestPendingStoreBounds(t *testing.T) {
	var expired []string
	p := newPendingStore(time.Minute, 3, 0, func(d *held) { expired = append(expired, d.features.Tenant) }, nil)
	now := time.Unix(0, 0)
	put := func(i int, at time.Time, deferred bool) {
		rec := &decision.Record{Request: decision.Request{ID: fmt.Sprint(i), Features: decision.Features{Tenant: fmt.Sprint(i)}},
			Decision: decision.Decision{Candidates: []decision.Arm{{ID: "a"}}, Probs: []float64{1}}}
		p.put(rec, at, deferred)
	}
	for i := range 5 {
		put(i, now, i != 1) // 1 learned at completion: never expires into a second update
	}
	assert.Equal(t, 3, p.stats().Waiting)
	assert.Equal(t, []string{"0"}, expired, "evicted deferred entries learn their default once; 1 was not deferred")
	assert.Equal(t, uint64(2), p.stats().Evicted, "both evictions counted")
	assert.Nil(t, p.take("0", now), "evicted")
	assert.NotNil(t, p.take("4", now))
	assert.Nil(t, p.take("4", now), "taken once")
	assert.Nil(t, p.take("3", now.Add(2*time.Minute)), "expired")
	assert.Equal(t, []string{"0", "2", "3"}, expired, "expired by age, oldest first; the taken 4 is not expired")
	put(5, now.Add(3*time.Minute), true)
	put(6, now.Add(3*time.Minute), true)
	p.flush()
	assert.Equal(t, []string{"0", "2", "3", "5", "6"}, expired, "flush expires what still waits, oldest first")
	assert.Equal(t, PendingStats{Deferred: 6, FromFeedback: 1, Expired: 5, Evicted: 2}, p.stats())
}

func TestPendingStoreReusedID(t *testing.T) {
	var expired []float64
	p := newPendingStore(time.Minute, 2, 0, func(d *held) { expired = append(expired, d.reward) }, nil)
	now := time.Unix(0, 0)
	put := func(id string, reward float64) {
		p.put(&decision.Record{Request: decision.Request{ID: id}, Reward: reward,
			Decision: decision.Decision{Candidates: []decision.Arm{{ID: "a"}}, Probs: []float64{1}}}, now, true)
	}
	put("x", 0.1)
	put("x", 0.2) // replaces the first x, which learns its default
	assert.Equal(t, []float64{0.1}, expired)
	put("y", 0.3) // the full ring drops the stale x slot, not the live x
	assert.Equal(t, []float64{0.1}, expired)
	assert.Equal(t, 0.2, p.take("x", now).reward)
	assert.Equal(t, 0.3, p.take("y", now).reward)
	assert.Equal(t, uint64(0), p.stats().Evicted)
}

func TestPendingStoreDisabled(t *testing.T) {
	p := newPendingStore(time.Minute, 0, 0, func(*held) { t.Fatal("nothing to expire") }, nil)
	p.put(&decision.Record{Request: decision.Request{ID: "x"}}, time.Unix(0, 0), true)
	assert.Nil(t, p.take("x", time.Unix(0, 0)))
	p.flush()
	assert.Equal(t, PendingStats{}, p.stats())
}

// Slots come in chunks added as decisions arrive and dropped once empty: a
// random mix of new ids, reused ids and takes gives what a plain FIFO of
// max slots gives (dead slots at the front swept, the oldest slot evicted
// when full), across many chunk boundaries; then the chunks go.
func TestPendingStoreChunksInOrder(t *testing.T) {
	const max = 3*pendingChunk - 100
	var expired []float64
	p := newPendingStore(time.Hour, max, 0, func(d *held) { expired = append(expired, d.reward) }, nil)
	now := time.Unix(0, 0)
	type slot struct {
		id     string
		reward float64
		live   bool
	}
	var ref []*slot // oldest first
	refLive := map[string]*slot{}
	var refExpired []float64
	sweep := func() {
		for len(ref) > 0 && !ref[0].live {
			ref = ref[1:]
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for op := range 40_000 {
		id := fmt.Sprint(rng.IntN(2 * max))
		if rng.IntN(4) == 0 {
			h := p.take(id, now)
			sweep()
			want, ok := refLive[id]
			if !ok {
				assert.Nil(t, h, "op %d: take %s", op, id)
				continue
			}
			want.live = false
			delete(refLive, id)
			if assert.NotNil(t, h, "op %d: take %s", op, id) {
				assert.Equal(t, want.reward, h.reward, "op %d", op)
			}
			sweep()
			continue
		}
		reward := float64(op)
		p.put(&decision.Record{Request: decision.Request{ID: id}, Reward: reward,
			Decision: decision.Decision{Candidates: []decision.Arm{{ID: "a"}}, Probs: []float64{1}}}, now, true)
		sweep()
		if old, ok := refLive[id]; ok {
			old.live = false
			refExpired = append(refExpired, old.reward)
		}
		if len(ref) == max {
			if ref[0].live {
				delete(refLive, ref[0].id)
				refExpired = append(refExpired, ref[0].reward)
			}
			ref = ref[1:]
		}
		s := &slot{id: id, reward: reward, live: true}
		ref = append(ref, s)
		refLive[id] = s
	}
	assert.LessOrEqual(t, len(p.chunks), max/pendingChunk+2, "chunks for at most max slots")
	assert.Equal(t, refExpired, expired, "replaced and evicted decisions, in order")
	assert.Equal(t, len(refLive), p.stats().Waiting)
	for id, s := range refLive {
		h := p.take(id, now)
		if assert.NotNil(t, h, id) {
			assert.Equal(t, s.reward, h.reward, id)
		}
	}
	p.put(&decision.Record{Request: decision.Request{ID: "last"}, Decision: decision.Decision{Candidates: []decision.Arm{{ID: "a"}}, Probs: []float64{1}}}, now, false)
	assert.Len(t, p.chunks, 1, "every taken slot swept, the emptied chunks dropped")
	assert.LessOrEqual(t, len(p.spare), 2)
	assert.NotNil(t, p.take("last", now))
}
