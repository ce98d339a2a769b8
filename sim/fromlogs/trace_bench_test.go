package fromlogs_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim/fromlogs"
)

// traceSynthLog is a Source of n records in completion order (arrivals a few
// hundred milliseconds out of order), without holding them: one record
// is reused, as the decision-log reader does with Reuse.
func traceSynthLog(n int) replay.Source {
	tasks := []string{"chat", "code", "math", "summarize"}
	tenants := []string{"", "5f0c1d2e3a4b5c6d", "0a1b2c3d4e5f6071"}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	return replay.SourceFunc(func(ctx context.Context, fn func(*decision.Record) error) error {
		var rec decision.Record
		tags := []string{"tier=gold"}
		for i := range n {
			f := &rec.Request.Features
			f.Time = start.Add(time.Duration(i)*50*time.Millisecond - time.Duration(i*7919%9)*40*time.Millisecond)
			f.Task, f.Tenant, f.PromptTokens = tasks[i%4], tenants[i%3], 100+i%900
			f.Tags = nil
			if i%5 == 0 {
				f.Tags = tags
			}
			rec.Outcome.Status, rec.Outcome.TokensOut = decision.StatusOK, 50+i%300
			if err := fn(&rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkBuildTrace reads and sorts a million logged requests per op
// and reports the trace's heap per request.
func BenchmarkBuildTrace(b *testing.B) {
	const n = 1_000_000
	src := traceSynthLog(n)
	b.ReportAllocs()
	var perRow float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr, err := fromlogs.BuildTrace(context.Background(), src, fromlogs.TraceOpts{})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perRow = float64(after.HeapAlloc-before.HeapAlloc) / n
		if tr.Len() != n {
			b.Fatalf("trace holds %d requests, want %d", tr.Len(), n)
		}
		runtime.KeepAlive(tr)
	}
	b.ReportMetric(perRow, "heap-B/request")
	b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "requests/s")
}
