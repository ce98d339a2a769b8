package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/policy"
	"github.com/routelab/routelab/replay"
	"github.com/routelab/routelab/sim"
)

// logStats wraps a log source and records what an artifact's provenance
// and consistency checks need: rows, time range, tasks, arms and the
// logged feature-vector length. Counts are of the last complete pass.
type logStats struct {
	src      replay.Source
	rows     int64
	from, to time.Time
	tasks    map[string]bool
	arms     map[string]bool
	dims     map[int]int64
}

func (s *logStats) Scan(ctx context.Context, fn func(*decision.Record) error) error {
	s.rows, s.from, s.to = 0, time.Time{}, time.Time{}
	s.tasks, s.arms, s.dims = map[string]bool{}, map[string]bool{}, map[int]int64{}
	return s.src.Scan(ctx, func(rec *decision.Record) error {
		s.rows++
		if t := rec.Time; !t.IsZero() {
			if s.from.IsZero() || t.Before(s.from) {
				s.from = t
			}
			if t.After(s.to) {
				s.to = t
			}
		}
		if rec.Request.Features.Task != "" {
			s.tasks[rec.Request.Features.Task] = true
		}
		for _, a := range rec.Decision.Candidates {
			s.arms[a.ID] = true
		}
		s.dims[len(rec.Request.Features.Vector)]++
		return fn(rec)
	})
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// trainingContext is the encoder, reward and catalogue an offline-trained
// policy is recorded with.
type trainingContext struct {
	enc       policy.EncoderSpec
	reward    decision.Reward
	catalogue []string
	note      string
	scenario  string
}

// trainingContextFor determines the encoder and reward the logs were
// written with: from --scenario (a sim scenario), --config (a gateway
// config), or else policy.DefaultEncoderSpec over the tasks seen in the
// logs and decision.DefaultReward — checked against the logged vector
// length, so that a log written with another encoder is an error rather
// than a silently wrong artifact.
func trainingContextFor(scenario, config string, st *logStats) (trainingContext, error) {
	tc := trainingContext{catalogue: sortedSet(st.arms)}
	switch {
	case scenario != "" && config != "":
		return tc, fmt.Errorf("--scenario and --config: give at most one")
	case scenario != "":
		sc, err := sim.LoadScenario(scenario)
		if err != nil {
			return tc, fmt.Errorf("--scenario: %w", err)
		}
		tc.enc, tc.reward, tc.scenario = sc.EncoderSpec(), sc.RewardFunc(), sc.Name
		tc.note = "encoder and reward of scenario " + scenario
		for _, p := range sc.Providers {
			st.arms[p.Name] = true
		}
		tc.catalogue = sortedSet(st.arms)
	case config != "":
		c, err := gateway.LoadConfig(config)
		if err != nil {
			return tc, fmt.Errorf("--config: %w", err)
		}
		rw, err := c.Reward.Reward()
		if err != nil {
			return tc, fmt.Errorf("--config: %w", err)
		}
		tc.enc, tc.reward = c.EncoderSpec(), rw
		tc.note = "encoder and reward of gateway config " + config
		for _, m := range c.Models {
			st.arms[m.ID] = true
		}
		tc.catalogue = sortedSet(st.arms)
	default:
		tc.enc, tc.reward = policy.DefaultEncoderSpec(sortedSet(st.tasks)), decision.DefaultReward()
		tc.note = "encoder: default over the tasks seen in the logs; reward: default (give --scenario or --config for others)"
	}
	enc, err := policy.NewEncoder(tc.enc)
	if err != nil {
		return tc, err
	}
	for d, n := range st.dims {
		if d != 0 && d != enc.Dim() {
			return tc, fmt.Errorf("the logs hold %d rows with %d-slot feature vectors, but the encoder (%s) has %d slots: give the --scenario or --config the logs were written with",
				n, d, tc.note, enc.Dim())
		}
	}
	if len(tc.catalogue) == 0 {
		return tc, fmt.Errorf("the logs name no arms")
	}
	return tc, nil
}

// writeTrained writes p as an artifact learned from the logs st describes.
func writeTrained(path, source string, p policy.Policy, tc trainingContext, st *logStats, logs []string, seed uint64) error {
	prov := artifact.Provenance{Source: source, Rows: st.rows, Seed: seed, Scenario: tc.scenario, Data: logs, Command: os.Args, Note: tc.note, CodeVersion: versionString()}
	if !st.from.IsZero() {
		f, t := st.from.UTC(), st.to.UTC()
		prov.From, prov.To = &f, &t
	}
	a, err := artifact.New(p, tc.enc, tc.reward, tc.catalogue, prov)
	if err != nil {
		return err
	}
	return artifact.Write(path, a)
}

// loadInit reads --init: an artifact or a bare policy snapshot.
func loadInit(reg *policy.Registry, path string) (policy.Policy, error) {
	p, _, err := artifact.LoadPolicy(reg, path)
	if err != nil {
		return nil, fmt.Errorf("--init: %w", err)
	}
	return p, nil
}

// scenarioCatalogue is the arm ids of a scenario.
func scenarioCatalogue(sc *sim.Scenario) []string {
	ids := make([]string, len(sc.Providers))
	for i, p := range sc.Providers {
		ids[i] = p.Name
	}
	return ids
}

func newPoliciesListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list DIR",
		Short: "List the policy artifacts in DIR with their provenance, then its promote/rollback history (DIR/history.jsonl)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return listArtifacts(args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func newPoliciesShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show FILE|DIR",
		Short: "Print a policy artifact's header (spec, encoder, reward, catalogue, provenance); for a DIR, every artifact's and every promote/rollback record of its history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := []string{args[0]}
			if fi, err := os.Stat(args[0]); err != nil {
				return err
			} else if fi.IsDir() {
				if paths, err = artifactFiles(args[0]); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			for _, p := range paths {
				a, err := artifact.Read(p)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "file\t%s\n", p)
				a.State = nil
				a.StateSHA256 = a.StateSHA256[:12] + "…"
				if err := a.Encode(out); err != nil {
					return err
				}
			}
			if len(paths) == 1 && paths[0] == args[0] {
				return nil
			}
			return showHistory(args[0], out)
		},
	}
}

// artifactFiles lists the *.json files of dir, sorted.
func artifactFiles(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	slices.Sort(m)
	return m, nil
}

func listArtifacts(dir string, out, errOut io.Writer) error {
	if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory (use \"routelab policies show FILE\")", dir)
	}
	paths, err := artifactFiles(dir)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "FILE\tSPEC\tSOURCE\tROWS\tDATA RANGE\tSEED\tARMS\tCREATED\tCODE")
	bad := 0
	for _, p := range paths {
		a, err := artifact.Read(p)
		if err != nil {
			fmt.Fprintf(errOut, "skipping %v\n", err)
			bad++
			continue
		}
		pr := a.Provenance
		rng := "-"
		if pr.From != nil && pr.To != nil {
			rng = pr.From.Format(time.RFC3339) + ".." + pr.To.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\t%s\n", filepath.Base(p), a.Spec, pr.Source, pr.Rows, rng, pr.Seed,
			len(a.Catalogue), pr.Created.UTC().Format(time.RFC3339), shortVersion(pr.CodeVersion))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	herr := listHistory(dir, out)
	if bad > 0 {
		return errors.Join(fmt.Errorf("%d of %d files in %s are not readable artifacts", bad, len(paths), dir), herr)
	}
	return herr
}

// listHistory prints DIR's promote/rollback history as a table (nothing
// when there is none). Torn lines are reported after the records read.
func listHistory(dir string, out io.Writer) error {
	recs, err := artifact.ReadHistory(dir)
	if len(recs) == 0 {
		return err
	}
	fmt.Fprintf(out, "\nhistory (%s):\n", filepath.Join(dir, artifact.HistoryFile))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tACTION\tWHO\tFORCED\tFROM\tTO\tESTIMATE (shadow − serving)")
	for _, r := range recs {
		action := r.Action
		if r.Trigger != "" {
			action += " (" + r.Trigger + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), action, r.Identity, r.Forced,
			refString(r.From), refString(r.To), estimateString(r.Estimate))
	}
	if ferr := w.Flush(); ferr != nil {
		return ferr
	}
	return err
}

// showHistory prints every history record of dir in full, one JSON object each.
func showHistory(dir string, out io.Writer) error {
	recs, err := artifact.ReadHistory(dir)
	if len(recs) > 0 {
		fmt.Fprintf(out, "history\t%s\n", filepath.Join(dir, artifact.HistoryFile))
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	for _, r := range recs {
		if eerr := enc.Encode(r); eerr != nil {
			return eerr
		}
	}
	return err
}

func refString(r *artifact.PolicyRef) string {
	if r == nil {
		return "-"
	}
	s := r.Policy
	if r.Version != "" {
		s += "/" + r.Version
	}
	if len(r.StateSHA256) >= 12 {
		s += "@" + r.StateSHA256[:12]
	}
	return s
}

func estimateString(e *artifact.Estimate) string {
	if e == nil {
		return "-"
	}
	ci := "no interval"
	if e.CILow != nil && e.CIHigh != nil {
		ci = fmt.Sprintf("%.0f%% CI [%+.4f, %+.4f]", 100*e.Confidence, *e.CILow, *e.CIHigh)
	}
	return fmt.Sprintf("%+.4f %s n=%d ess=%.0f", e.Diff, ci, e.N, e.ESS)
}

// shortVersion trims "routelab v1.2 (commit abc, go1.26)" to "v1.2".
func shortVersion(v string) string {
	v = strings.TrimPrefix(v, "routelab ")
	if i := strings.Index(v, " (commit "); i > 0 {
		v = v[:i]
	}
	return v
}
