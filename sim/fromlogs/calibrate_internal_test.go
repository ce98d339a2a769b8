package fromlogs

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Bins merge pairwise when there are too many, keeping every count.
func TestBinsCoarsen(t *testing.T) {
	a := &armCal{bins: map[int64]*binStat{}, binWidth: binSeconds}
	const n = maxBins + maxBins/4
	for i := int64(0); i < n; i++ {
		b := a.bin(1_700_000_000 + i*binSeconds)
		b.attempts++
		if i%2 == 0 {
			b.failed++
		}
	}
	assert.EqualValues(t, 2*binSeconds, a.binWidth)
	assert.LessOrEqual(t, len(a.bins), maxBins)
	var att, failed int64
	for _, b := range a.bins {
		att += b.attempts
		failed += b.failed
		assert.LessOrEqual(t, b.attempts, int64(2))
	}
	assert.EqualValues(t, n, att)
	assert.EqualValues(t, n/2, failed)
}
