package route

import (
	"fmt"
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
