package datasets

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHullStrongShare(t *testing.T) {
	// Two models: the random router, strong share = PGR level.
	two := []Point{{Cost: 0.001, Quality: 0.6}, {Cost: 0.03, Quality: 0.8}}
	assert.InDelta(t, 0.5, HullStrongShare(two, 0.5), 1e-12)
	assert.InDelta(t, 0.8, HullStrongShare(two, 0.8), 1e-12)
	// Its APGR is 1/2.
	assert.InDelta(t, 0.5, Measure(two, two, 0).APGR, 1e-9)
	// A mid model on the hull reaching 50% PGR alone: no strong call.
	three := []Point{{Cost: 0.001, Quality: 0.6}, {Cost: 0.002, Quality: 0.72}, {Cost: 0.03, Quality: 0.8}}
	assert.Zero(t, HullStrongShare(three, 0.5))
	// 80% PGR (0.76) lies halfway between the mid and the strong model.
	assert.InDelta(t, 0.5, HullStrongShare(three, 0.8), 1e-12)
	// No gap to recover.
	assert.True(t, math.IsNaN(HullStrongShare([]Point{{Cost: 1, Quality: 0.5}, {Cost: 2, Quality: 0.5}}, 0.5)))
}
