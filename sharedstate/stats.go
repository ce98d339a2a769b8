package sharedstate

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/routelab/routelab/policy"
)

// StatsSync shares one Mergeable policy's statistics under a shared id:
// Sync publishes what the policy learned since the last Sync as one
// numbered batch (Client.Merge, applied exactly once) and installs the
// merged totals of every replica. While Redis is unreachable batches queue
// up (summed) and the policy keeps its local state; the next Sync that
// reaches Redis publishes them and re-merges. Safe for concurrent use.
type StatsSync struct {
	c  *Client
	id string
	m  policy.Mergeable

	mu      sync.Mutex
	seq     uint64       // number of the last batch formed
	seed    policy.Stats // complete state to publish first (Seed); nil when none
	pending policy.Stats // batch seq, formed but not acknowledged; nil when none
	seeded  bool         // pending is the seed
	next    policy.Stats // deltas taken since
	last    time.Time    // last successful merge
	updates float64      // merged updates at the last merge
}

// NewStatsSync shares m's statistics under id. The first Sync publishes
// what m learned since it was built or restored (its delta: learning no
// replica has seen, such as a replica's while it started without Redis)
// and replaces m's state by the shared totals plus that; a state m was
// restored with (a checkpoint) is not published. Call Seed to publish m's
// complete state once instead, for the replica that starts the shared
// statistics (a warm start from an artifact or a checkpoint).
func (c *Client) NewStatsSync(id string, m policy.Mergeable) *StatsSync {
	return &StatsSync{c: c, id: id, m: m, next: policy.Stats{}}
}

// Carry queues deltas that another sync of the same policy took but never
// published (its statistics id was abandoned), so they reach these totals.
// An unpublished seed is not carried: it is the state every replica
// started from, which the totals' own seed holds.
func (s *StatsSync) Carry(from *StatsSync) {
	from.mu.Lock()
	var st []policy.Stats
	if from.pending != nil && !from.seeded {
		st = append(st, from.pending)
	}
	st = append(st, from.next)
	from.seed, from.pending, from.next = nil, nil, policy.Stats{}
	from.mu.Unlock()
	s.mu.Lock()
	for _, d := range st {
		add(s.next, d)
	}
	s.mu.Unlock()
}

// Seed queues m's complete statistics as this replica's first batch.
func (s *StatsSync) Seed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.TakeDelta() // contained in Stats
	s.seed = s.m.Stats()
}

// ID is the shared statistics' id.
func (s *StatsSync) ID() string { return s.id }

// Policy is the synchronised policy.
func (s *StatsSync) Policy() policy.Mergeable { return s.m }

func add(dst, src policy.Stats) {
	for k, v := range src {
		if len(k) > 0 && k[0] == '!' {
			dst[k] = v
		} else {
			dst[k] += v
		}
	}
}

// Sync publishes the unpublished deltas and installs the merged totals.
// On error nothing is lost: the deltas stay queued and the policy keeps
// learning locally.
func (s *StatsSync) Sync(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	add(s.next, s.m.TakeDelta())
	for {
		batch, seq := s.pending, s.seq
		switch {
		case batch != nil:
		case s.seed != nil:
			s.seq++
			s.pending, s.seeded, s.seed = s.seed, true, nil
			batch, seq = s.pending, s.seq
		case len(s.next) > 0:
			s.seq++
			s.pending, s.seeded, s.next = s.next, false, policy.Stats{}
			batch, seq = s.pending, s.seq
		}
		totals, err := s.c.Merge(ctx, s.id, seq, batch)
		if err != nil {
			return fmt.Errorf("merge statistics %s: %w", s.id, err)
		}
		s.pending, s.seeded = nil, false
		if len(s.next) > 0 {
			continue
		}
		// Everything taken is in totals; what Update added since the
		// TakeDelta above stays in the policy's delta.
		if err := s.m.SetShared(totals); err != nil {
			return fmt.Errorf("install statistics %s: %w", s.id, err)
		}
		s.last, s.updates = time.Now(), totals.Updates()
		return nil
	}
}

// LastMerge returns when Sync last installed merged totals (zero before)
// and how many updates they held.
func (s *StatsSync) LastMerge() (time.Time, float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.updates
}
