package fromlogs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// DefaultMaxTraceRows bounds a Trace when TraceOpts.MaxRows is 0: at about
// 32 bytes per request (plus the distinct task, tenant and tag-set strings)
// it is some 640 MB.
const DefaultMaxTraceRows = 20_000_000

// ErrTraceTooLong: the log holds more decisions than TraceOpts.MaxRows.
var ErrTraceTooLong = errors.New("trace too long")

// TraceOpts configures BuildTrace.
type TraceOpts struct {
	// Tenants renames logged tenants (the decision log keeps
	// HashTenant(salt, tenant)) — e.g. the hashes of a scenario's tenants
	// to their names. A tenant not in the map stays as logged.
	Tenants map[string]string
	// MaxRows is the most requests the trace holds; more is an error
	// wrapping ErrTraceTooLong. 0 means DefaultMaxTraceRows.
	MaxRows int
	// RouteForced hands requests whose caller named the model (logged as
	// forced) to the policy too. By default they stay forced to the
	// logged model, as they would be whatever the policy.
	RouteForced bool
}

// Trace is the request sequence of a decision log, in arrival order: per
// logged decision its arrival time, task, tenant, tags, prompt length and,
// when it was answered, completion length — the traffic that the
// simulator replays (sim.Opts.Trace) under another policy. It is held
// in memory compactly (about 32 bytes per request, strings interned), so
// that it can be sorted by arrival: the log is in completion order.
// Requests the caller forced to a model stay forced (TraceOpts.RouteForced).
type Trace struct {
	rows    []traceRow
	tasks   []string // interned names; index 0 is ""
	tenants []string // index 0 is ""
	tagSets [][]string
	forced  []string // index 0 is "" (routed by the policy)
	taskN   []int
	tenantN []int
	forcedN []int
}

type traceRow struct {
	at     int64 // arrival, Unix nanoseconds
	prompt int32 // 0 = unknown
	compl  int32 // 0 = unknown
	tenant uint32
	tags   uint32 // index into tagSets; 0 = none
	seq    uint32 // position in the log, to keep ties in log order
	task   uint16
	forced uint16 // index into forced; 0 = routed by the policy
}

// BuildTrace reads every decision of src and returns their requests in
// arrival order. A request's arrival is its features' time (the logged
// request time), or the record's time when that is unknown; a row with
// neither is an error wrapping replay.ErrBadRow. The prompt length is the
// features' estimate, or the tokens sent when that is unknown; the
// completion length is the tokens answered when the request succeeded
// (unknown otherwise). An empty log is an error.
func BuildTrace(ctx context.Context, src replay.Source, o TraceOpts) (*Trace, error) {
	maxRows := o.MaxRows
	if maxRows <= 0 {
		maxRows = DefaultMaxTraceRows
	}
	maxRows = min(maxRows, math.MaxUint32)
	t := &Trace{tasks: []string{""}, tenants: []string{""}, tagSets: [][]string{nil}, forced: []string{""},
		taskN: []int{0}, tenantN: []int{0}, forcedN: []int{0}}
	forcedIdx := map[string]uint16{"": 0}
	taskIdx := map[string]uint16{"": 0}
	tenantIdx := map[string]uint32{"": 0}
	tagIdx := map[string]uint32{"": 0}
	var key []byte
	var n int64
	err := src.Scan(ctx, func(rec *decision.Record) error {
		i := n
		n++
		if i&8191 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(t.rows) >= maxRows {
			return fmt.Errorf("%w: more than %d logged requests (select a window with a time range, or raise the limit)", ErrTraceTooLong, maxRows)
		}
		f := &rec.Request.Features
		at := f.Time
		if at.IsZero() {
			at = rec.Time
		}
		if at.IsZero() {
			return rowErr(i, rec, fmt.Errorf("%w: no request time (needed for the arrival)", replay.ErrBadRow))
		}
		r := traceRow{at: at.UnixNano(), seq: uint32(i)}
		ti, ok := taskIdx[f.Task]
		if !ok {
			if len(t.tasks) > math.MaxUint16 {
				return rowErr(i, rec, fmt.Errorf("%w: more than %d task types", replay.ErrBadRow, math.MaxUint16))
			}
			ti = uint16(len(t.tasks))
			taskIdx[strings.Clone(f.Task)] = ti
			t.tasks = append(t.tasks, strings.Clone(f.Task))
			t.taskN = append(t.taskN, 0)
		}
		r.task = ti
		t.taskN[ti]++
		tenant := f.Tenant
		if name, ok := o.Tenants[tenant]; ok {
			tenant = name
		}
		tn, ok := tenantIdx[tenant]
		if !ok {
			tn = uint32(len(t.tenants))
			tenantIdx[strings.Clone(tenant)] = tn
			t.tenants = append(t.tenants, strings.Clone(tenant))
			t.tenantN = append(t.tenantN, 0)
		}
		r.tenant = tn
		t.tenantN[tn]++
		if len(f.Tags) > 0 {
			key = key[:0]
			for _, tag := range f.Tags {
				key = append(append(key, tag...), 0)
			}
			tg, ok := tagIdx[string(key)] // no allocation for the lookup
			if !ok {
				tg = uint32(len(t.tagSets))
				tagIdx[string(key)] = tg
				t.tagSets = append(t.tagSets, slices.Clone(f.Tags))
			}
			r.tags = tg
		}
		if arm := rec.Request.Forced; arm != "" && !o.RouteForced {
			fi, ok := forcedIdx[arm]
			if !ok {
				if len(t.forced) > math.MaxUint16 {
					return rowErr(i, rec, fmt.Errorf("%w: more than %d forced models", replay.ErrBadRow, math.MaxUint16))
				}
				fi = uint16(len(t.forced))
				forcedIdx[strings.Clone(arm)] = fi
				t.forced = append(t.forced, strings.Clone(arm))
				t.forcedN = append(t.forcedN, 0)
			}
			r.forced = fi
			t.forcedN[fi]++
		}
		out := &rec.Outcome
		p := f.PromptTokens
		if p <= 0 && out.TokensIn > 0 {
			p = out.TokensIn
		}
		r.prompt = int32(min(max(p, 0), sim.MaxTokens))
		if out.Status == decision.StatusOK && out.TokensOut > 0 {
			r.compl = int32(min(out.TokensOut, sim.MaxTokens))
		}
		t.rows = append(t.rows, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build trace: %w", err)
	}
	if len(t.rows) == 0 {
		return nil, fmt.Errorf("build trace: the log holds no decisions")
	}
	slices.SortFunc(t.rows, func(a, b traceRow) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	t.rows = slices.Clip(t.rows)
	return t, nil
}

// Len is the number of requests.
func (t *Trace) Len() int { return len(t.rows) }

// First is the arrival time of the first request (zero for an empty
// Trace, which only the zero value is: BuildTrace refuses empty logs).
func (t *Trace) First() time.Time {
	if len(t.rows) == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.rows[0].at).UTC()
}

// Last is the arrival time of the last request (zero for an empty Trace).
func (t *Trace) Last() time.Time {
	if len(t.rows) == 0 {
		return time.Time{}
	}
	return time.Unix(0, t.rows[len(t.rows)-1].at).UTC()
}

// Tasks counts the requests by task type as logged ("" = unknown).
func (t *Trace) Tasks() map[string]int { return counts(t.tasks, t.taskN) }

// Tenants counts the requests by tenant ("" = none), after TraceOpts.Tenants.
func (t *Trace) Tenants() map[string]int { return counts(t.tenants, t.tenantN) }

// HashedTenants maps the decision log's hashes of names (as
// decisionlog.HashTenant(salt, name) writes them) back to the names: the
// TraceOpts.Tenants of a scenario's tenants.
func HashedTenants(salt string, names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]string, len(names))
	for _, name := range names {
		m[decisionlog.HashTenant(salt, name)] = name
	}
	return m
}

// RequestsOutside counts the requests whose tenant is set but not among
// names — with a scenario's tenants after HashedTenants, most likely a
// wrong salt.
func (t *Trace) RequestsOutside(names []string) int {
	n := 0
	for name, c := range t.Tenants() {
		if name != "" && !slices.Contains(names, name) {
			n += c
		}
	}
	return n
}

// Forced counts the requests forced to a model, by model.
func (t *Trace) Forced() map[string]int {
	m := counts(t.forced, t.forcedN)
	delete(m, "")
	return m
}

func counts(names []string, n []int) map[string]int {
	m := map[string]int{}
	for i, c := range n {
		if c > 0 {
			m[names[i]] = c
		}
	}
	return m
}

// Check reports whether sc can serve every request of the trace: an error
// listing the logged task types the scenario has no quality for (with
// their request counts and the scenario's tasks), or the models requests
// were forced to that are not among its providers. An unknown task is the
// simulator's DefaultTask.
func (t *Trace) Check(sc *sim.Scenario) error {
	known := map[string]bool{}
	for _, task := range sc.Tasks() {
		known[task] = true
	}
	var missing []string
	for i, name := range t.tasks {
		task := name
		if task == "" {
			task = sim.DefaultTask
		}
		if t.taskN[i] > 0 && !known[task] {
			label := fmt.Sprintf("%q", name)
			if name == "" {
				label = fmt.Sprintf("(none, i.e. %q)", sim.DefaultTask)
			}
			missing = append(missing, fmt.Sprintf("%s (%d requests)", label, t.taskN[i]))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("scenario %q does not serve the logged task types %s (its tasks: %s)",
			sc.Name, strings.Join(missing, ", "), strings.Join(sc.Tasks(), ", "))
	}
	arms := map[string]bool{}
	var names []string
	for _, p := range sc.Providers {
		arms[p.Name] = true
		names = append(names, p.Name)
	}
	for i, arm := range t.forced {
		if i > 0 && t.forcedN[i] > 0 && !arms[arm] {
			missing = append(missing, fmt.Sprintf("%q (%d requests)", arm, t.forcedN[i]))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("scenario %q has no provider for the models logged requests were forced to: %s (its providers: %s; or let the policy route them)",
			sc.Name, strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	return nil
}

// Since returns the trace as a sim.Trace whose arrival offsets count from
// start: the scenario's start of the run that replays it. A request
// before start is an error.
func (t *Trace) Since(start time.Time) (sim.Trace, error) {
	if len(t.rows) == 0 {
		return nil, fmt.Errorf("the trace is empty")
	}
	if first := t.First(); first.Before(start) {
		return nil, fmt.Errorf("the first logged request (%s) is before the start %s", first.Format(time.RFC3339Nano), start.UTC().Format(time.RFC3339Nano))
	}
	return traceView{t: t, start: start.UnixNano()}, nil
}

// traceView is a Trace with its clock anchored.
type traceView struct {
	t     *Trace
	start int64
}

func (v traceView) Len() int { return len(v.t.rows) }

func (v traceView) Request(i int, r *sim.TraceRequest) {
	row := &v.t.rows[i]
	r.At = time.Duration(row.at - v.start)
	r.Features = decision.Features{
		Task:         v.t.tasks[row.task],
		Tenant:       v.t.tenants[row.tenant],
		PromptTokens: int(row.prompt),
		Tags:         v.t.tagSets[row.tags],
	}
	r.CompletionTokens = int(row.compl)
	r.Forced = v.t.forced[row.forced]
}
