package gateway

import "fmt"

// validateMemory checks log.max_memory_rows against the settings it
// bounds: the queue (queue_size rows) plus one row group per open file
// (two files).
func (l LogConfig) validateMemory() error {
	if l.MaxMemoryRows < 0 {
		return fmt.Errorf("log.max_memory_rows: %d must be >= 0 (0 = the writer's default)", l.MaxMemoryRows)
	}
	if l.MaxMemoryRows == 0 {
		return nil
	}
	if need := l.QueueSize + 2*l.RowGroupRows; need > l.MaxMemoryRows {
		return fmt.Errorf("log.max_memory_rows: %d is less than log.queue_size %d + 2 × log.row_group_rows %d = %d",
			l.MaxMemoryRows, l.QueueSize, l.RowGroupRows, need)
	}
	return nil
}
