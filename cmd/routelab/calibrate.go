package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/routelab/routelab/internal/atomicfile"
	"github.com/routelab/routelab/sim"
	"github.com/routelab/routelab/sim/fromlogs"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// calibrateFlags are the inputs of `routelab calibrate`.
type calibrateFlags struct {
	logs     []string
	out      string
	name     string
	seed     uint64
	json     bool
	from, to string
	feedback bool
	skipBad  bool
	quiet    bool
}

func newCalibrateCmd() *cobra.Command {
	var fl calibrateFlags
	cmd := &cobra.Command{
		Use:   "calibrate",
		Short: "Fit a simulator scenario (provider profiles and traffic) to decision logs",
		Long: `Fit a simulator scenario to decision logs, so that "routelab sim" reproduces
what production saw: per provider the latency model (log-normal time to first
token plus per prompt- and completion-token times), error/429/timeout rates
overall, by hour of day and in outage windows, latency multipliers by hour
of day, prices per 1k tokens (with hourly multipliers),
and quality per task type; for the traffic the arrival rate, diurnal curve,
task and tenant mix and token lengths.

The scenario is written as YAML to --out. The report gives, per provider,
the fitted parameters and the Kolmogorov–Smirnov distance between the
logged latency (and TTFT) distribution and the fitted model's, followed by
notes on what the fit cannot capture (queueing capacity, token-bucket rate
limits, the reward function).`,
		Example: `  routelab calibrate --logs data/decisions --out fitted.yaml
  routelab sim --scenario fitted.yaml --policy thompson`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCalibrate(cmd.Context(), fl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addLogFlags(f, &fl.logs, &fl.from, &fl.to, &fl.feedback, &fl.skipBad, "join delayed feedback (quality) found under --logs")
	f.StringVar(&fl.out, "out", "", "write the fitted scenario YAML to this file")
	f.StringVar(&fl.name, "name", "", "scenario name (default: the --out file's base name)")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of the sampling behind the goodness-of-fit report")
	f.BoolVar(&fl.json, "json", false, "print the report as JSON")
	f.BoolVar(&fl.quiet, "quiet", false, "no progress bar")
	return cmd
}

func runCalibrate(ctx context.Context, fl calibrateFlags, out, errOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkLogPaths(fl.logs); err != nil {
		return err
	}
	if fl.out == "" {
		return fmt.Errorf("--out: no scenario file given")
	}
	// Calibrate keeps no record past its callback: the reader may reuse them.
	ropts, cleanup, err := logReaderOpts(ctx, fl.logs, fl.from, fl.to, fl.feedback, errOut)
	if err != nil {
		return err
	}
	defer cleanup()
	ropts.Log.Reuse = true
	name := fl.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(fl.out), filepath.Ext(fl.out))
	}
	src := newLogSource(ropts, fl.skipBad, fl.quiet, errOut)
	cal, err := fromlogs.Calibrate(ctx, src, fromlogs.CalibrateOpts{Name: name, Seed: fl.seed})
	if err != nil {
		return err
	}
	// Six significant digits: fitted values carry no more precision, and
	// the file reads 0.0008, not 0.0008000000000000004.
	roundFloats(reflect.ValueOf(cal.Scenario), 6)
	y, err := yaml.Marshal(cal.Scenario)
	if err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	header := "# Fitted by routelab calibrate. " + strings.Join(cal.Notes, "; ") + "\n"
	if err := atomicfile.Write(fl.out, func(w io.Writer) error {
		_, err := w.Write(append([]byte(wrapComment(header)), y...))
		return err
	}); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if fl.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Scenario string            `json:"scenario"`
			Out      string            `json:"out"`
			Arms     []fromlogs.ArmFit `json:"arms"`
			Notes    []string          `json:"notes"`
			Traffic  map[string]any    `json:"traffic"`
		}{name, fl.out, cal.Arms, cal.Notes, map[string]any{
			"rate": cal.Scenario.Traffic.Rate, "tasks": cal.Scenario.Traffic.Tasks, "requests": cal.Scenario.Requests,
		}})
	}
	fmt.Fprintf(out, "scenario %q written to %s (%d requests, %.3g req/s)\n\n", name, fl.out, cal.Scenario.Requests, cal.Scenario.Traffic.Rate)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ARM\tATTEMPTS\tOK\tTTFT_MEDIAN_MS\tSIGMA\tMS/OUT_TOK\tERROR\t429\tTIMEOUT\tPRICE_IN\tPRICE_OUT\tKS_LATENCY\tKS_TTFT\tKS_CRIT")
	for _, a := range cal.Arms {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.1f\t%.3f\t%.3f\t%.4f\t%.4f\t%.4f\t%.5f\t%.5f\t%s\t%s\t%s\n", a.Arm, a.Attempts, a.OK, a.MedianMS, a.Sigma,
			a.PerOutputTokenMS, a.ErrorRate, a.RateLimitedRate, a.TimeoutRate, a.PriceIn, a.PriceOut,
			ksCell(a.KSLatency, a.KSLatencyFit, a.Samples), ksCell(a.KSTTFT, a.KSTTFTFit, a.Samples), ksCrit(a))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "KS: distance between the logged and the fitted latency (TTFT) distributions of answered requests; "+
		"%q = not told apart by a two-sample KS test at α=0.05 (distance ≤ KS_CRIT), %q = told apart but ≤ %.2g, %q = more.\n",
		fromlogs.FitGood, fromlogs.FitClose, fromlogs.KSClose, fromlogs.FitPoor)
	for _, a := range cal.Arms {
		if a.KSLatencyFit == fromlogs.FitPoor || a.KSTTFTFit == fromlogs.FitPoor {
			fmt.Fprintf(out, "%s: poor fit of the latency model (KS latency %.3f, TTFT %.3f): simulated latencies will not match the logs well\n", a.Arm, a.KSLatency, a.KSTTFT)
		}
	}
	for _, a := range cal.Arms {
		if len(a.HourlyFailure) > 0 {
			fmt.Fprintf(out, "%s: failure rate by hour (UTC) where it differs: %s\n", a.Arm, hourList(a.HourlyFailure, "%.3f"))
		}
	}
	for _, a := range cal.Arms {
		if len(a.HourlyLatency) > 0 {
			fmt.Fprintf(out, "%s: latency multiplier by hour (UTC) where it differs: %s\n", a.Arm, hourList(a.HourlyLatency, "%.2fx"))
		}
		if len(a.HourlyPrice) > 0 {
			fmt.Fprintf(out, "%s: price multiplier by hour (UTC) where it differs: %s\n", a.Arm, hourList(a.HourlyPrice, "%.2fx"))
		}
	}
	for _, a := range cal.Arms {
		for _, o := range a.Outages {
			fmt.Fprintf(out, "%s: outage (%s) from %s to %s after the first request (%d of %d attempts failed)\n",
				a.Arm, o.Status, time.Duration(o.From*float64(time.Second)), time.Duration(o.To*float64(time.Second)), o.Failed, o.Attempts)
		}
	}
	for _, n := range cal.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	return nil
}

// ksCell renders a KS distance with its verdict.
func ksCell(d float64, verdict string, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f %s", d, verdict)
}

func ksCrit(a fromlogs.ArmFit) string {
	if a.Samples == 0 {
		return "-"
	}
	return fmt.Sprintf("%.4f", a.KSCritical)
}

var simDuration = reflect.TypeFor[sim.Duration]()

// roundFloats rounds, in place, every float and sim.Duration (written as
// "379.742247ms") reachable from v (through pointers, structs' exported
// fields, slices, arrays, maps and interfaces) to digits significant
// digits.
func roundFloats(v reflect.Value, digits int) {
	if v.Type() == simDuration {
		if v.CanSet() {
			v.SetInt(int64(roundSig(float64(v.Int()), digits)))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			if v.Kind() == reflect.Interface {
				// An interface's dynamic value is not settable: round a copy.
				c := reflect.New(v.Elem().Type()).Elem()
				c.Set(v.Elem())
				roundFloats(c, digits)
				if v.CanSet() {
					v.Set(c)
				}
				return
			}
			roundFloats(v.Elem(), digits)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				roundFloats(v.Field(i), digits)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			roundFloats(v.Index(i), digits)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			c := reflect.New(iter.Value().Type()).Elem()
			c.Set(iter.Value())
			roundFloats(c, digits)
			v.SetMapIndex(iter.Key(), c)
		}
	case reflect.Float32, reflect.Float64:
		if v.CanSet() {
			v.SetFloat(roundSig(v.Float(), digits))
		}
	}
}

// roundSig rounds x to digits significant digits (NaN and ±Inf unchanged).
func roundSig(x float64, digits int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', digits, 64), 64)
	if err != nil {
		return x
	}
	return r
}

// wrapComment keeps a long YAML header comment readable.
func wrapComment(s string) string {
	var b strings.Builder
	line := 0
	for _, word := range strings.Fields(strings.TrimPrefix(s, "# ")) {
		if line > 0 && line+len(word) > 76 {
			b.WriteString("\n#")
			line = 1
		} else if line == 0 {
			b.WriteString("#")
			line = 1
		}
		b.WriteString(" " + word)
		line += len(word) + 1
	}
	b.WriteString("\n")
	return b.String()
}

// hourList renders an hour → value map in hour order.
func hourList(m map[int]float64, format string) string {
	hours := make([]int, 0, len(m))
	for h := range m {
		hours = append(hours, h)
	}
	sort.Ints(hours)
	parts := make([]string, len(hours))
	for i, h := range hours {
		parts[i] = fmt.Sprintf("%02d:00 "+format, h, m[h])
	}
	return strings.Join(parts, ", ")
}
