package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/routelab/routelab/experiments"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// runExperimentShard runs one slice of the cells and writes it to dir.
func runExperimentShard(ctx context.Context, spec *experiments.Spec, opts experiments.Opts, sh experiments.Shard, dir string, bar *progressbar.ProgressBar, out io.Writer) error {
	p, err := experiments.RunShard(ctx, spec, opts, sh)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	path, err := experiments.WritePartial(dir, p)
	if err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	fmt.Fprintf(out, "experiment %s shard %v: %d of %d cells in %s on %d workers\n", spec.Name, sh, len(p.Cells), p.Total, p.Elapsed.Round(1e6), p.Workers)
	fmt.Fprintf(out, "partial: %s\n", path)
	fmt.Fprintf(out, "merge all %d shards with: routelab experiment merge DIR...\n", sh.Count)
	return nil
}

func newExperimentMergeCmd() *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "merge DIR...",
		Short: "Build an experiment's report from the slices of `experiment --shard I/N`",
		Long: `Read the part-I-of-N.gob files that "routelab experiment --shard I/N" wrote
into each DIR (or the named files), check that they come from one spec and
together hold every cell exactly once, and write the report, cells.parquet,
windows.parquet, figures and spec.yaml to --out, exactly as one run of the
whole spec would (the one difference: decisions_per_second, a wall-clock
column, is each shard's own).

The effective spec travels in the partials; its scenario files (absolute
paths) must be readable where merge runs.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dirs []string) error {
			return runExperimentMerge(dirs, outDir, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&outDir, "out", "", "output `DIR` (default the first DIR)")
	return cmd
}

func runExperimentMerge(dirs []string, outDir string, out io.Writer) error {
	parts, err := experiments.ReadPartials(dirs...)
	if err != nil {
		return err
	}
	res, err := experiments.Merge(parts, newRegistry(), "")
	if err != nil {
		return err
	}
	if outDir == "" {
		outDir = dirs[0]
		if st, err := os.Stat(outDir); err == nil && !st.IsDir() {
			outDir = filepath.Dir(outDir)
		}
	}
	a, err := experiments.Write(outDir, res)
	if err != nil {
		return fmt.Errorf("--out %s: %w", outDir, err)
	}
	fmt.Fprintf(out, "experiment %s: %d cells merged from %d shards\n\n", res.Spec.Name, len(res.Cells), len(parts))
	if err := writeExperimentOverview(out, a); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nreport: %s\n", filepath.Join(outDir, experiments.FileReportHTML))
	fmt.Fprintf(out, "        %s\n", filepath.Join(outDir, experiments.FileReportMD))
	fmt.Fprintf(out, "data:   %s, %s\n", filepath.Join(outDir, experiments.FileCells), filepath.Join(outDir, experiments.FileWindows))
	return nil
}
