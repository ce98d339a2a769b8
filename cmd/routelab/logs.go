package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/routelab/routelab/decisionlog"
	"github.com/spf13/cobra"
)

func newLogsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Work with decision logs (Parquet written by the gateway or `routelab sim --log`)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newLogsInspectCmd())
	return cmd
}

func newLogsInspectCmd() *cobra.Command {
	var asJSON, includeOpen bool
	cmd := &cobra.Command{
		Use:   "inspect DIR [DIR|FILE ...]",
		Short: "Summarise decision logs: rows, time range, policies, arms, drops, schema versions, corrupt files",
		Long: `Summarise the decision logs under each DIR (a log root as written by the
gateway or "routelab sim --log", a partition directory, or single Parquet
files): row count, time range, rows per policy and chosen arm, schema
versions, feedback rows, unfinished .tmp files, the drop count from the
writers' stats sidecars (DIR/_stats), and the files that could not be read.

Corrupt files are listed and make the command exit non-zero after printing
the summary.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := decisionlog.InspectWith(cmd.Context(), decisionlog.InspectOpts{Paths: args, IncludeOpen: includeOpen})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(s); err != nil {
					return err
				}
			} else if err := writeLogSummary(out, s); err != nil {
				return err
			}
			if len(s.Corrupt) > 0 {
				return fmt.Errorf("logs inspect: %d unreadable file(s) or path(s)", len(s.Corrupt))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as one JSON object")
	cmd.Flags().BoolVar(&includeOpen, "include-open", true, "also count the rows of files still being written (their .wal segments)")
	return cmd
}

func writeLogSummary(out io.Writer, s *decisionlog.Summary) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "files\t%d decisions, %d feedback, %d unfinished (.tmp)\n", s.Files, s.FeedbackFiles, s.TmpFiles)
	fmt.Fprintf(w, "rows\t%d decisions, %d feedback\n", s.Rows, s.FeedbackRows)
	if s.Rows > 0 {
		fmt.Fprintf(w, "time range\t%s .. %s\n", s.First.Format(time.RFC3339Nano), s.Last.Format(time.RFC3339Nano))
	}
	versions := make([]string, 0, len(s.SchemaVersions))
	for v, n := range s.SchemaVersions {
		versions = append(versions, fmt.Sprintf("v%d (%d rows)", v, n))
	}
	sort.Strings(versions)
	fmt.Fprintf(w, "schema versions\t%v\n", versions)
	if len(s.Refused) > 0 {
		refused := make([]string, 0, len(s.Refused))
		var n int64
		for code, k := range s.Refused {
			refused = append(refused, fmt.Sprintf("%s %d", code, k))
			n += k
		}
		sort.Strings(refused)
		fmt.Fprintf(w, "refused\t%d rows of requests refused before any attempt (%s)\n", n, strings.Join(refused, ", "))
	}
	fmt.Fprintf(w, "dropped\t%d (from %d writer sidecar(s)), %d of them logged after the writer closed\n", s.Dropped, len(s.Writers), s.DroppedClosed)
	fmt.Fprintf(w, "lost\t%d (%d dropped, %d failed writes); %d torn WAL record(s) cut (%d bytes)\n", s.Lost, s.Dropped, s.Failed, s.TornRecords, s.TornBytes)
	fmt.Fprintf(w, "recovered\t%d rows from %d segment(s) of crashed writers; %d orphan .tmp removed\n", s.Recovered, s.RecoveredSegments, s.OrphanTmp)
	if s.OpenSegments > 0 {
		fmt.Fprintf(w, "open files\t%d rows in %d .wal segment(s) of files being written (included above)\n", s.OpenRows, s.OpenSegments)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, t := range []struct {
		title  string
		counts map[string]int64
	}{{"POLICY@VERSION", s.Policies}, {"CHOSEN ARM", s.Arms}} {
		fmt.Fprintln(out)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "%s\tROWS\tSHARE\n", t.title)
		keys := make([]string, 0, len(t.counts))
		for k := range t.counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s\t%d\t%s\n", k, t.counts[k], strconv.FormatFloat(float64(t.counts[k])/float64(s.Rows), 'f', 3, 64))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(s.Corrupt) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "UNREADABLE FILES")
		for _, c := range s.Corrupt {
			fmt.Fprintf(out, "%s: %s\n", c.Path, c.Error)
		}
	}
	return nil
}
