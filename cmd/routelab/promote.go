package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/routelab/routelab/gateway"
	"github.com/spf13/cobra"
)

// promoteOpts are the flags of `routelab promote`.
type promoteOpts struct {
	admin    string
	token    string
	force    bool
	status   bool
	json     bool
	rollback bool
	timeout  time.Duration
}

func newPromoteCmd() *cobra.Command {
	var o promoteOpts
	cmd := &cobra.Command{
		Use:   "promote",
		Short: "Promote the gateway's shadow policy to serving (guarded), show the shadow estimate, or roll back",
		Long: `Talk to a running gateway's admin API.

  routelab promote --admin URL            promote the shadow policy if its running
                                          off-policy estimate beats the incumbent
                                          (lower confidence bound > margin over
                                          min_samples requests); refused otherwise
  routelab promote --admin URL --force    promote regardless (the gateway warns)
  routelab promote --admin URL --status   print GET /admin/shadow/status
  routelab promote --admin URL --rollback restore the serving policy the last
                                          promotion replaced

The admin token comes from --token or the ROUTELAB_ADMIN_TOKEN environment
variable. A refused promotion exits non-zero with the gateway's reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.token == "" {
				o.token = os.Getenv("ROUTELAB_ADMIN_TOKEN")
			}
			return runPromote(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.admin, "admin", "http://localhost:8080", "gateway base URL")
	f.StringVar(&o.token, "token", "", "admin token (default $ROUTELAB_ADMIN_TOKEN)")
	f.BoolVar(&o.force, "force", false, "promote even when the estimate does not justify it")
	f.BoolVar(&o.status, "status", false, "print the running shadow-vs-incumbent estimate and exit")
	f.BoolVar(&o.rollback, "rollback", false, "restore the serving policy the last promotion replaced")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "HTTP timeout")
	f.BoolVar(&o.json, "json", false, "with --status, print the gateway's JSON instead of the summary")
	cmd.MarkFlagsMutuallyExclusive("status", "rollback", "force")
	return cmd
}

func runPromote(ctx context.Context, out io.Writer, o promoteOpts) error {
	if ctx == nil {
		ctx = context.Background()
	}
	base, err := url.Parse(strings.TrimRight(o.admin, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("--admin %q: want an http(s) URL such as http://localhost:8080", o.admin)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", o.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	method, path, body := http.MethodPost, "/admin/promote", []byte(nil)
	switch {
	case o.status:
		method, path = http.MethodGet, "/admin/shadow/status"
	case o.rollback:
		path = "/admin/rollback"
	case o.force:
		body = []byte(`{"force": true}`)
	}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, e.Error.Message)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	if o.status && !o.json {
		var st gateway.ShadowStatus
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("%s %s: answer is not a shadow status: %w", method, path, err)
		}
		return writeShadowStatus(out, &st)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		return errors.Join(fmt.Errorf("%s %s: answer is not JSON", method, path), err)
	}
	pretty.WriteByte('\n')
	_, err = out.Write(pretty.Bytes())
	return err
}

// writeShadowStatus prints GET /admin/shadow/status for a person: what is
// compared, the estimate with its interval, and whether promotion is
// allowed and why.
func writeShadowStatus(out io.Writer, st *gateway.ShadowStatus) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "serving policy:\t%s\n", st.Incumbent)
	if st.Shadow == "" {
		fmt.Fprintf(tw, "shadow policy:\t(none: set one with POST /admin/shadow)\n")
	} else {
		fmt.Fprintf(tw, "shadow policy:\t%s\n", st.Shadow)
	}
	fmt.Fprintf(tw, "requests compared:\t%d (effective sample size %.1f; promotion needs >= %d)\n", st.N, st.ESS, st.MinSamples)
	if st.N > 0 {
		fmt.Fprintf(tw, "serving value:\t%.4f\n", st.IncumbentValue)
		fmt.Fprintf(tw, "shadow value:\t%.4f (SNIPS %.4f)\n", st.ShadowValue, st.ShadowSNIPS)
		ci := "interval not available yet"
		if st.CILow != nil && st.CIHigh != nil {
			ci = fmt.Sprintf("%.0f%% interval [%+.4f, %+.4f]", 100*st.Confidence, *st.CILow, *st.CIHigh)
		}
		fmt.Fprintf(tw, "shadow − serving:\t%+.4f, %s; promotion needs the lower bound > %+.4f\n", st.Diff, ci, st.Margin)
	}
	verdict := "NOT eligible"
	if st.Eligible {
		verdict = "eligible"
	}
	fmt.Fprintf(tw, "promotion:\t%s: %s\n", verdict, st.Reason)
	if st.Previous != "" {
		fmt.Fprintf(tw, "rollback would restore:\t%s\n", st.Previous)
	}
	if g := st.Guard; g != nil {
		fmt.Fprintf(tw, "rollback guard:\tlive mean %.4f over %d/%d requests; rolls back below %.4f (baseline %.4f)\n", g.Mean, g.Seen, g.Window, g.Threshold, g.Baseline)
	}
	if st.Warning != "" {
		fmt.Fprintf(tw, "warning:\t%s\n", st.Warning)
	}
	return tw.Flush()
}
