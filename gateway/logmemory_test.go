package gateway

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogMaxMemoryRows(t *testing.T) {
	base := "providers: [{name: p, type: sim}]\nmodels: [{id: m, provider: p, sim: {}}]\n"
	c, err := ParseConfig([]byte(base + "log: {dir: x, max_memory_rows: 9000, queue_size: 1000, row_group_rows: 4000}\n"))
	require.NoError(t, err)
	assert.Equal(t, 9000, c.Log.MaxMemoryRows)
	_, err = ParseConfig([]byte(base + "log: {dir: x, max_memory_rows: 8000, queue_size: 1000, row_group_rows: 4000}\n"))
	assert.ErrorContains(t, err, "log.max_memory_rows: 8000 is less than log.queue_size 1000 + 2 × log.row_group_rows 4000 = 9000")
	_, err = ParseConfig([]byte(base + "log: {dir: x, max_memory_rows: -1}\n"))
	assert.ErrorContains(t, err, "log.max_memory_rows: -1 must be >= 0")
}
