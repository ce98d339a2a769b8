package policy

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/routelab/routelab/decision"
)

// ErrUnknownRequest is returned by Pending.Complete for a request id that
// was never added, already completed, expired, or evicted.
var ErrUnknownRequest = errors.New("no pending decision with this request id")

// PendingOpts configures NewPending.
type PendingOpts struct {
	// Timeout is how long a decision waits for its reward; after it the
	// policy is updated with DefaultReward. Required (> 0).
	Timeout time.Duration
	// DefaultReward is the reward assumed when none arrives in time (for
	// example 0.5 for "no complaint", or 0 for "no success signal").
	DefaultReward float64
	// MaxSize bounds how many decisions wait at once; when full, Add evicts
	// the oldest. 0 means 100,000.
	MaxSize int
	// Now is the clock; nil means time.Now. The simulator passes its
	// virtual clock.
	Now func() time.Time
}

// PendingStats are Pending's counters since it was built.
type PendingStats struct {
	// Added counts decisions added; Completed those whose reward arrived in
	// time; Expired those updated with the default reward; Evicted those
	// dropped, without any update, because the buffer was full.
	Added, Completed, Expired, Evicted uint64
	// Unknown counts Complete calls for unknown ids (typically rewards that
	// arrived after their timeout or eviction); they are dropped.
	Unknown uint64
	// UpdateErrors counts policy Updates that returned an error.
	UpdateErrors uint64
	// Waiting is the number of decisions waiting now.
	Waiting int
}

// Pending holds decisions whose reward has not arrived yet, keyed by
// request id, for rewards that come late (user feedback, judged quality),
// out of order, or never. Complete delivers a reward to the policy; a
// decision still waiting after Timeout is delivered DefaultReward instead
// (lazily, on the next Add, Complete or Expire). The buffer is bounded:
// when MaxSize decisions wait, Add evicts the oldest without updating the
// policy — a dropped sample biases nothing, whereas assuming a reward for
// it under overload would — and counts it.
//
// Policies keep correct statistics under this: the stationary and linear
// policies' sufficient statistics are sums, so the order rewards arrive in
// does not matter; the sliding-window and discounted policies define their
// window and discount by reward arrival, by design.
//
// Pending copies the Features and candidates it is given, so callers may
// reuse their buffers. It is safe for concurrent use; the policy's Update
// runs outside its lock.
type Pending struct {
	p Policy
	o PendingOpts

	mu    sync.Mutex
	byID  map[string]*pendingEntry
	queue []*pendingEntry // in Add order; completed entries are skipped
	head  int
	st    PendingStats
}

type pendingEntry struct {
	id       string
	f        decision.Features
	cands    []decision.Arm
	chosen   int
	deadline time.Time
	done     bool
}

// NewPending returns a pending-reward buffer feeding policy p.
func NewPending(p Policy, o PendingOpts) (*Pending, error) {
	if p == nil {
		return nil, fmt.Errorf("pending: no policy")
	}
	if o.Timeout <= 0 {
		return nil, fmt.Errorf("pending: timeout %v must be > 0", o.Timeout)
	}
	if math.IsNaN(o.DefaultReward) || math.IsInf(o.DefaultReward, 0) || math.Abs(o.DefaultReward) > maxMagnitude {
		return nil, fmt.Errorf("pending: default reward %v must be finite", o.DefaultReward)
	}
	if o.MaxSize < 0 {
		return nil, fmt.Errorf("pending: max size %d must be >= 0", o.MaxSize)
	}
	if o.MaxSize == 0 {
		o.MaxSize = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Pending{p: p, o: o, byID: map[string]*pendingEntry{}}, nil
}

// Add records that request id chose cands[chosen] for f and now awaits its
// reward. Adding an id that is already waiting is an error.
func (q *Pending) Add(id string, f *decision.Features, cands []decision.Arm, chosen int) error {
	if id == "" {
		return fmt.Errorf("pending add: empty request id")
	}
	if len(cands) == 0 {
		return fmt.Errorf("pending add %q: %w", id, ErrNoCandidates)
	}
	if chosen < 0 || chosen >= len(cands) {
		return fmt.Errorf("pending add %q: %w: %d of %d candidates", id, ErrBadChosen, chosen, len(cands))
	}
	e := &pendingEntry{id: id, cands: append([]decision.Arm(nil), cands...), chosen: chosen}
	if f != nil {
		e.f = *f
		e.f.Tags = append([]string(nil), f.Tags...)
		e.f.Vector = append([]float64(nil), f.Vector...)
	}
	q.mu.Lock()
	if _, dup := q.byID[id]; dup {
		q.mu.Unlock()
		return fmt.Errorf("pending add: request id %q is already waiting", id)
	}
	now := q.o.Now()
	due := q.dueLocked(now)
	for len(q.byID) >= q.o.MaxSize {
		old := q.popLocked()
		if old == nil {
			break
		}
		delete(q.byID, old.id)
		q.st.Evicted++
	}
	e.deadline = now.Add(q.o.Timeout)
	q.byID[id] = e
	q.queue = append(q.queue, e)
	q.st.Added++
	q.mu.Unlock()
	return q.apply(due)
}

// Complete delivers the reward of request id to the policy. A reward the
// policies would reject (NaN, infinite, beyond ±1e100) is an error and
// leaves the decision waiting.
func (q *Pending) Complete(id string, reward float64) error {
	if math.IsNaN(reward) || math.IsInf(reward, 0) || math.Abs(reward) > maxMagnitude {
		return fmt.Errorf("pending complete %q: %w: %v", id, ErrBadReward, reward)
	}
	q.mu.Lock()
	due := q.dueLocked(q.o.Now())
	e, ok := q.byID[id]
	if ok {
		delete(q.byID, id)
		e.done = true
		q.st.Completed++
	} else {
		q.st.Unknown++
	}
	q.mu.Unlock()
	err := q.apply(due)
	if !ok {
		return errors.Join(fmt.Errorf("pending complete %q: %w", id, ErrUnknownRequest), err)
	}
	if uerr := q.p.Update(&e.f, e.cands, e.chosen, reward); uerr != nil {
		q.mu.Lock()
		q.st.UpdateErrors++
		q.mu.Unlock()
		err = errors.Join(fmt.Errorf("pending complete %q: %w", id, uerr), err)
	}
	return err
}

// Expire delivers DefaultReward for every decision past its timeout and
// returns how many it expired. Add and Complete expire lazily too; call
// Expire from a ticker when traffic may stop.
func (q *Pending) Expire() (int, error) {
	q.mu.Lock()
	due := q.dueLocked(q.o.Now())
	q.mu.Unlock()
	return len(due), q.apply(due)
}

// Stats returns the counters.
func (q *Pending) Stats() PendingStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.st
	s.Waiting = len(q.byID)
	return s
}

// dueLocked removes and returns the waiting entries whose deadline is not
// after now, oldest first. Entries are queued in Add order, which is
// deadline order for a monotonic clock.
func (q *Pending) dueLocked(now time.Time) []*pendingEntry {
	var due []*pendingEntry
	for {
		e := q.peekLocked()
		if e == nil || e.deadline.After(now) {
			break
		}
		q.popLocked()
		delete(q.byID, e.id)
		q.st.Expired++
		due = append(due, e)
	}
	return due
}

// peekLocked returns the oldest waiting entry, dropping completed ones.
func (q *Pending) peekLocked() *pendingEntry {
	for q.head < len(q.queue) && q.queue[q.head].done {
		q.queue[q.head] = nil
		q.head++
	}
	if q.head == len(q.queue) {
		q.queue, q.head = q.queue[:0], 0
		return nil
	}
	return q.queue[q.head]
}

// popLocked removes and returns the oldest waiting entry (nil when none),
// compacting the queue once its dead prefix or completed entries dominate.
func (q *Pending) popLocked() *pendingEntry {
	e := q.peekLocked()
	if e == nil {
		return nil
	}
	e.done = true
	q.queue[q.head] = nil
	q.head++
	if q.head > 1024 && q.head > len(q.queue)/2 || len(q.queue)-q.head > 2*q.o.MaxSize {
		live := q.queue[:0]
		for _, x := range q.queue[q.head:] {
			if x != nil && !x.done {
				live = append(live, x)
			}
		}
		for i := len(live); i < len(q.queue); i++ {
			q.queue[i] = nil
		}
		q.queue, q.head = live, 0
	}
	return e
}

// apply updates the policy with the default reward for expired entries.
func (q *Pending) apply(due []*pendingEntry) error {
	var errs []error
	for _, e := range due {
		if err := q.p.Update(&e.f, e.cands, e.chosen, q.o.DefaultReward); err != nil {
			errs = append(errs, fmt.Errorf("pending expire %q: %w", e.id, err))
		}
	}
	if len(errs) > 0 {
		q.mu.Lock()
		q.st.UpdateErrors += uint64(len(errs))
		q.mu.Unlock()
	}
	return errors.Join(errs...)
}
