package parity_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/experiments"
	"github.com/routelab/routelab/offline"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// Snapshot and Restore make the recording wrapper restorable from an
// artifact (artifact.Policy builds it through the registry, then restores).
func (p *frozen) Snapshot(w io.Writer) error {
	s, ok := p.Policy.(policy.Snapshotter)
	if !ok {
		return fmt.Errorf("%s cannot snapshot", p.Name())
	}
	return s.Snapshot(w)
}

func (p *frozen) Restore(r io.Reader) error {
	s, ok := p.Policy.(policy.Snapshotter)
	if !ok {
		return fmt.Errorf("%s cannot restore", p.Name())
	}
	return s.Restore(r)
}

// recordingRegistry builds every builtin policy wrapped in a frozen
// recorder; built returns the recorders in the order they were made.
func recordingRegistry(t *testing.T) (*policy.Registry, func() []*frozen) {
	t.Helper()
	inner := policy.NewBuiltinRegistry()
	reg := policy.NewRegistry()
	var mu sync.Mutex
	var made []*frozen
	for _, name := range inner.Names() {
		err := reg.Register(name, inner.Doc(name), func(ps policy.Params) (policy.Policy, error) {
			p, err := inner.New(policy.Spec{Name: name, Params: ps})
			if err != nil {
				return nil, err
			}
			f := &frozen{Policy: p}
			mu.Lock()
			made = append(made, f)
			mu.Unlock()
			return f, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return reg, func() []*frozen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(made)
	}
}

func last(fs []*frozen) *frozen { return fs[len(fs)-1] }

// TestArtifactParity: one policy artifact, restored in the simulator (as
// `routelab sim --policy-file` does), in the gateway (`policy: {file:}`)
// and in the off-policy evaluator (`routelab replay --policy-file`: the
// decision log read back from Parquet), makes byte-identical decisions —
// chosen arm and every candidate's probability — on the same features. The
// artifact is trained first, so its learned state and (lin-thompson) RNG
// state are what is compared, not a fresh policy. The policies are frozen
// (they record and do not learn) so that the three paths, whose outcomes
// differ, see the same state at every request; replay gets the logged rows
// in decision order, as Select consumes the policy's random stream.
func TestArtifactParity(t *testing.T) {
	data, err := os.ReadFile("../../sim/scenarios/tasks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sim.ParseScenario("tasks", append(data, encoderBlock...))
	if err != nil {
		t.Fatal(err)
	}
	catalogue := make([]string, len(sc.Providers))
	for i, p := range sc.Providers {
		catalogue[i] = p.Name
	}
	for _, spec := range []string{"linucb=alpha:0.5;seed:7", "lin-thompson=seed:7"} {
		t.Run(spec, func(t *testing.T) {
			dir := t.TempDir()
			// Train in the simulator, save the artifact.
			trained, err := policy.NewBuiltinRegistry().NewFromString(spec)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := experiments.DefaultEncoder(sc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: trained, Seed: 3, Requests: 1500, Encoder: enc}); err != nil {
				t.Fatal(err)
			}
			a, err := artifact.New(trained, sc.EncoderSpec(), sc.RewardFunc(), catalogue, artifact.Provenance{Source: "test"})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "a.json")
			if err := artifact.Write(path, a); err != nil {
				t.Fatal(err)
			}

			reg, built := recordingRegistry(t)
			load := func() *frozen {
				a, err := artifact.Read(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Check(sc.EncoderSpec(), sc.RewardFunc(), catalogue); err != nil {
					t.Fatal(err)
				}
				if _, err := a.Policy(reg); err != nil {
					t.Fatal(err)
				}
				return last(built())
			}

			// sim --policy-file, writing the decision log.
			logs := filepath.Join(dir, "L")
			w, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logs, Full: decisionlog.FullBlock})
			if err != nil {
				t.Fatal(err)
			}
			sp := load()
			if _, err := sim.Run(context.Background(), sim.Opts{Scenario: sc, Policy: sp, Seed: 1, Requests: requests, Encoder: enc, Sink: w}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if len(sp.calls) < requests {
				t.Fatalf("sim made %d selections, want %d", len(sp.calls), requests)
			}
			simCalls := sp.calls[:requests]
			if first := simCalls[0]; !slices.ContainsFunc(simCalls, func(c call) bool { return c.chosen != first.chosen }) {
				t.Fatalf("the artifact chose arm %d on every request: the test would not see a wrong state", first.chosen)
			}

			// The gateway, policy: {file: a.json}.
			gwCalls := gatewayServe(t, "policy: {file: "+path+"}\n", reg, func() *frozen { return last(built()) }, simCalls)
			compare(t, "gateway", simCalls, gwCalls)

			// replay --policy-file on the log the sim wrote.
			var recs replay.Records
			src := &offline.LogSource{Opts: offline.ReaderOpts{Log: decisionlog.ReaderOpts{Paths: []string{logs}}}}
			if err := src.Scan(context.Background(), func(r *decision.Record) error {
				c := *r
				c.Request.Features.Vector = slices.Clone(r.Request.Features.Vector)
				c.Request.Features.Tags = slices.Clone(r.Request.Features.Tags)
				c.Decision.Candidates = slices.Clone(r.Decision.Candidates)
				c.Decision.Probs = slices.Clone(r.Decision.Probs)
				recs = append(recs, c)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// The sim logs in completion order; Select ran in arrival order.
			slices.SortStableFunc(recs, func(x, y decision.Record) int {
				return x.Request.Features.Time.Compare(y.Request.Features.Time)
			})
			if len(recs) < requests {
				t.Fatalf("log holds %d rows, want >= %d", len(recs), requests)
			}
			rp := load()
			if _, err := replay.Evaluate(context.Background(), recs[:requests], []replay.Target{{Name: "a.json", Policy: rp}},
				replay.Opts{Estimators: []replay.Estimator{replay.SNIPS}, Bootstrap: -1, AllowMissingSupport: true}); err != nil {
				t.Fatal(err)
			}
			compareLogged(t, "replay", simCalls, rp.calls)

		})
	}
}

// compareLogged is compare for calls made on logged features: the decision
// log pseudonymises tenants and keeps microseconds, so those are not
// compared; the vector the policy saw (built from the raw values before
// logging) must still be identical bit for bit.
func compareLogged(t *testing.T, what string, want, got []call) {
	t.Helper()
	w2, g2 := slices.Clone(want), slices.Clone(got)
	for i := range w2 {
		if w2[i].f.Time.Sub(g2[i].f.Time).Abs() >= 1e3 {
			t.Fatalf("%s request %d: time %v, want %v", what, i, g2[i].f.Time, w2[i].f.Time)
		}
		g2[i].f.Tenant, g2[i].f.Time = w2[i].f.Tenant, w2[i].f.Time
	}
	compare(t, what, w2, g2)
}
