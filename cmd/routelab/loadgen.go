package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// loadTask is one kind of request in the generated mix.
type loadTask struct {
	name    string
	weight  float64
	prompts []string
}

// loadMix is a realistic task mix: mostly chat and code, some summaries,
// maths, translation and extraction, with prompts of varied length.
var loadMix = []loadTask{
	{"chat", 0.35, []string{
		"What are some good habits for staying focused while working from home?",
		"Suggest a name for a small bakery that specialises in sourdough.",
		"How do I politely decline a meeting invitation from my manager?",
		"Write a short, friendly birthday message for a colleague.",
	}},
	{"code", 0.25, []string{
		"Write a Python function that returns the n-th Fibonacci number iteratively.",
		"Why does this Go code deadlock?\n```go\nch := make(chan int)\nch <- 1\nfmt.Println(<-ch)\n```",
		"Refactor this JavaScript function to use async/await instead of promise chains.",
		"Write a SQL query that returns the top 5 customers by total order value.",
	}},
	{"summarize", 0.15, []string{
		"Summarize the following text in two sentences: " + strings.Repeat("The quarterly report shows revenue growth in all regions, driven by strong demand for the new product line and improved retention. ", 6),
		"Give me a TL;DR of this meeting transcript: " + strings.Repeat("Alice proposed moving the launch by a week; Bob agreed but asked for a risk review; Carol will update the plan. ", 5),
	}},
	{"math", 0.1, []string{
		"Solve the equation 3x + 7 = 22 and explain each step.",
		"What is the derivative of x^3 * sin(x)?",
		"Calculate the probability of rolling two sixes with two fair dice.",
	}},
	{"translate", 0.08, []string{
		"Translate 'Where is the nearest train station?' into French and German.",
		"Translate this paragraph into Spanish: The meeting has been moved to Thursday afternoon.",
	}},
	{"extract", 0.07, []string{
		"Extract the names, dates and amounts from this invoice text: Invoice 1042 from ACME Ltd, dated 3 March, total 1,250 EUR, contact Jane Doe.",
	}},
}

var loadTenants = []string{"search", "support", "marketing", "internal-tools"}

// loadTargeter builds varied chat requests from a seeded stream.
type loadTargeter struct {
	mu         sync.Mutex
	rng        *rand.Rand
	url        string
	key        string
	model      string
	streamFrac float64
	total      float64
}

func (l *loadTargeter) next(t *vegeta.Target) error {
	l.mu.Lock()
	u := l.rng.Float64() * l.total
	task := loadMix[len(loadMix)-1]
	for _, m := range loadMix {
		if u < m.weight {
			task = m
			break
		}
		u -= m.weight
	}
	prompt := task.prompts[l.rng.IntN(len(task.prompts))]
	tenant := loadTenants[l.rng.IntN(len(loadTenants))]
	stream := l.rng.Float64() < l.streamFrac
	named := l.rng.Float64() < 0.5 // half the callers name their task
	maxTok := 32 + l.rng.IntN(160)
	l.mu.Unlock()

	body := map[string]any{
		"model":      l.model,
		"messages":   []map[string]string{{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": prompt}},
		"max_tokens": maxTok,
		"metadata":   map[string]string{"source": "loadgen"},
	}
	if stream {
		body["stream"] = true
		body["stream_options"] = map[string]bool{"include_usage": true}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	t.Method, t.URL, t.Body = http.MethodPost, l.url, b
	t.Header = http.Header{"Content-Type": {"application/json"}, "X-Routelab-Tenant": {tenant}}
	if named {
		t.Header.Set("X-Routelab-Task", task.name)
	}
	if l.key != "" {
		t.Header.Set("Authorization", "Bearer "+l.key)
	}
	return nil
}

// newLoadRand is the request mix's random stream.
func newLoadRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x10ad)) }

// loadgenOpts configure runLoadgen.
type loadgenOpts struct {
	// Target is the gateway's base URL (http:// or https://), required.
	Target string
	// Key is the API key; empty sends none.
	Key string
	// Model is the model to ask for; empty means "auto" (an alias routes).
	Model string
	// RPS is the open-loop request rate, required (> 0).
	RPS int
	// Duration is how long to send, required (> 0).
	Duration time.Duration
	// Timeout is the per-request timeout; 0 means 60s.
	Timeout time.Duration
	// Seed drives the request mix and the feedback draws.
	Seed uint64
	// StreamFrac is the fraction of streamed requests, in [0,1].
	StreamFrac float64
	// FeedbackRate is the fraction of answered requests rated on
	// /v1/feedback, in [0,1]; 0 sends no feedback.
	FeedbackRate float64
	// Workers is vegeta's initial worker count; 0 means 64.
	Workers uint64
	// Progress receives a progress line (answers so far, success rate,
	// p50/p99 latency, rate) every ProgressEvery; nil writes none.
	Progress io.Writer
	// ProgressEvery is the progress interval; 0 means 2s.
	ProgressEvery time.Duration
}

// withDefaults validates o, names the flag of a bad field, fills the zero
// values and returns the normalised options (Target without a trailing /).
func (o loadgenOpts) withDefaults() (loadgenOpts, error) {
	switch {
	case o.RPS <= 0:
		return o, fmt.Errorf("--rps: %d must be > 0", o.RPS)
	case o.Duration <= 0:
		return o, fmt.Errorf("--duration: %v must be > 0", o.Duration)
	case o.Timeout < 0:
		return o, fmt.Errorf("--timeout: %v must be >= 0", o.Timeout)
	case !(o.StreamFrac >= 0 && o.StreamFrac <= 1):
		return o, fmt.Errorf("--stream: %v outside [0,1]", o.StreamFrac)
	case !(o.FeedbackRate >= 0 && o.FeedbackRate <= 1):
		return o, fmt.Errorf("--feedback-rate: %v outside [0,1]", o.FeedbackRate)
	}
	base := strings.TrimRight(o.Target, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return o, fmt.Errorf("--target: %q must be an http:// or https:// URL", o.Target)
	}
	o.Target = base
	if o.Model == "" {
		o.Model = "auto"
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Workers == 0 {
		o.Workers = 64
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 2 * time.Second
	}
	return o, nil
}

func newLoadgenCmd() *cobra.Command {
	var (
		o     loadgenOpts
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Send a realistic task mix to a gateway at a fixed rate (fills the decision log)",
		Long: `Send chat completions to a running gateway (routelab serve) at a fixed
open-loop rate with vegeta: a task mix of chat, code, summaries, maths,
translation and extraction prompts, several tenants, half of the requests
naming their task (X-Routelab-Task), a share streamed. With --feedback-rate,
a share of the answered requests gets a delayed rating on /v1/feedback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			return runLoadgen(cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr (every 2s: answers, success, p50/p99, rate)")
	f.StringVar(&o.Target, "target", "http://localhost:8080", "gateway base URL")
	f.IntVar(&o.RPS, "rps", 20, "requests per second (open loop)")
	f.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to send")
	f.StringVar(&o.Key, "key", os.Getenv("ROUTELAB_KEY"), "API key (default $ROUTELAB_KEY)")
	f.StringVar(&o.Model, "model", "auto", "model to ask for (an alias routes)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the request mix")
	f.Float64Var(&o.StreamFrac, "stream", 0.2, "fraction of streamed requests")
	f.Float64Var(&o.FeedbackRate, "feedback-rate", 0, "fraction of answered requests rated on /v1/feedback (random quality in [0.4,1])")
	f.DurationVar(&o.Timeout, "timeout", 60*time.Second, "per-request timeout")
	f.Uint64Var(&o.Workers, "workers", 64, "initial vegeta workers")
	return cmd
}

// runLoadgen sends the task mix to o.Target and writes a summary to out.
func runLoadgen(out io.Writer, o loadgenOpts) error {
	o, err := o.withDefaults()
	if err != nil {
		return err
	}
	base, key, model, rps, dur, seed, streamFrac, fbRate := o.Target, o.Key, o.Model, o.RPS, o.Duration, o.Seed, o.StreamFrac, o.FeedbackRate
	lt := &loadTargeter{rng: newLoadRand(seed), url: base + "/v1/chat/completions", key: key, model: model, streamFrac: streamFrac}
	for _, m := range loadMix {
		lt.total += m.weight
	}
	atk := vegeta.NewAttacker(vegeta.Timeout(o.Timeout), vegeta.Workers(o.Workers), vegeta.KeepAlive(true), vegeta.MaxBody(1<<20))
	fbRng := rand.New(rand.NewPCG(seed, 0xfeed))
	var fbWG sync.WaitGroup
	fbSent, fbFailed := 0, 0
	var fbMu sync.Mutex
	models := map[string]int{}
	var metrics vegeta.Metrics
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	results := atk.Attack(vegeta.Targeter(lt.next), vegeta.Rate{Freq: rps, Per: time.Second}, dur, "loadgen")
	fmt.Fprintf(out, "sending %d req/s to %s for %v…\n", rps, base, dur)
	var tick <-chan time.Time
	if o.Progress != nil {
		t := time.NewTicker(o.ProgressEvery)
		defer t.Stop()
		tick = t.C
	}
	start, answered := time.Now(), 0
loop:
	for {
		select {
		case <-stop:
			atk.Stop()
		case now := <-tick:
			fmt.Fprintln(o.Progress, progressLine(now.Sub(start), dur, &metrics, answered))
		case res, ok := <-results:
			if !ok {
				break loop
			}
			metrics.Add(res)
			if res.Code != http.StatusOK {
				continue
			}
			answered++
			models[res.Headers.Get("X-Routelab-Model")]++
			if fbRate > 0 && fbRng.Float64() < fbRate {
				id := res.Headers.Get("X-Routelab-Request-Id")
				q := 0.4 + 0.6*fbRng.Float64()
				fbWG.Add(1)
				go func() {
					defer fbWG.Done()
					err := sendFeedback(base, key, id, q)
					fbMu.Lock()
					fbSent++
					if err != nil {
						fbFailed++
					}
					fbMu.Unlock()
				}()
			}
		}
	}
	metrics.Close()
	fbWG.Wait()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "requests\t%d\n", metrics.Requests)
	fmt.Fprintf(tw, "rate / throughput\t%.1f/s / %.1f/s\n", metrics.Rate, metrics.Throughput)
	fmt.Fprintf(tw, "success\t%.2f%%\n", 100*metrics.Success)
	fmt.Fprintf(tw, "latency p50 / p90 / p99\t%v / %v / %v\n", metrics.Latencies.P50.Round(time.Millisecond), metrics.Latencies.P90.Round(time.Millisecond), metrics.Latencies.P99.Round(time.Millisecond))
	codes := make([]string, 0, len(metrics.StatusCodes))
	for c, n := range metrics.StatusCodes {
		codes = append(codes, fmt.Sprintf("%s:%d", c, n))
	}
	sort.Strings(codes)
	fmt.Fprintf(tw, "status codes\t%s\n", strings.Join(codes, " "))
	names := make([]string, 0, len(models))
	for m := range models {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		fmt.Fprintf(tw, "answered by %s\t%d\n", m, models[m])
	}
	if fbRate > 0 {
		fmt.Fprintf(tw, "feedback sent / failed\t%d / %d\n", fbSent, fbFailed)
	}
	for i, e := range metrics.Errors {
		if i == 5 {
			fmt.Fprintf(tw, "…\t%d distinct errors\n", len(metrics.Errors))
			break
		}
		fmt.Fprintf(tw, "error\t%s\n", e)
	}
	return tw.Flush()
}

// progressLine is loadgen's progress report after elapsed of dur: answers
// received so far, the share answered 200, latency p50/p99 so far and the
// rate of answers.
func progressLine(elapsed, dur time.Duration, m *vegeta.Metrics, ok int) string {
	if m.Requests == 0 {
		return fmt.Sprintf("%5.0fs/%.0fs  no answer yet", elapsed.Seconds(), dur.Seconds())
	}
	return fmt.Sprintf("%5.0fs/%.0fs  %d answers  %.1f%% ok  p50 %v  p99 %v  %.1f req/s",
		elapsed.Seconds(), dur.Seconds(), m.Requests, 100*float64(ok)/float64(m.Requests),
		m.Latencies.Quantile(0.5).Round(time.Millisecond), m.Latencies.Quantile(0.99).Round(time.Millisecond),
		float64(m.Requests)/elapsed.Seconds())
}

func sendFeedback(base, key, id string, quality float64) error {
	b, err := json.Marshal(map[string]any{"request_id": id, "quality": quality, "source": "loadgen"})
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, base+"/v1/feedback", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("feedback %s: status %d", id, res.StatusCode)
	}
	return nil
}
