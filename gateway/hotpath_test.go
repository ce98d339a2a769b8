package gateway

import (
	"math"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
)

func rateOf(e *ewma) float64 { return math.Float64frombits(e.bits.Load()) }

func collected(s *successRates) int {
	ch := make(chan prometheus.Metric, 8)
	s.Collect(ch)
	close(ch)
	n := 0
	for range ch {
		n++
	}
	return n
}

func TestSuccessRates(t *testing.T) {
	s := newSuccessRates()
	assert.Equal(t, 0, collected(s), "nothing before the first request")
	s.observe("policy", true)
	s.observe("policy", false) // 1 + 0.01·(0 − 1)
	s.observe("forced", false)
	s.observe("other", true)
	s.observe("other", false)
	assert.InDelta(t, 0.99, rateOf(&s.policy), 1e-15)
	assert.Equal(t, 0.0, rateOf(&s.forced))
	assert.InDelta(t, 0.99, s.rate["other"], 1e-15)
	assert.Equal(t, 3, collected(s))

	// Concurrent updates all apply, as under a mutex: 160 successes
	// after a failure.
	c := newSuccessRates()
	c.observe("policy", false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				c.observe("policy", true)
			}
		}()
	}
	wg.Wait()
	want := 0.0
	for range 160 {
		want += 0.01 * (1 - want)
	}
	assert.InDelta(t, want, rateOf(&c.policy), 1e-12)
	assert.Equal(t, 1, collected(c))
}
