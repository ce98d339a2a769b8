// Command gateway-bench measures the routelab gateway against a bare
// reverse-proxy floor on loopback (make bench-gateway).
//
// It starts three processes from its own binary — a zero-latency mock
// OpenAI upstream, the floor (httputil.ReverseProxy that decodes and
// re-encodes the JSON request body, the least any LLM gateway must do) and
// the gateway (thompson routing, decision logging, metrics and the
// feedback store on) — and attacks, at each open-loop rate, the mock
// directly, then the floor, then the gateway, with vegeta from this
// process, -reps times. Per target, rate and repetition it reports latency
// percentiles (p50/p90/p99/max), the latency added over the direct call,
// the achieved rate, errors, the proxy process's CPU time per request
// (from /proc/PID/stat) and its resident memory; then the streaming
// variant (SSE, -stream-chunks chunks from the mock, open loop at
// -stream-rate): time to first byte and the gap between chunks, each as
// added over the direct call; then peak RSS (VmHWM) per process, the
// gateway/floor ratios and the targets, each PASS or FAIL.
// -json writes everything as JSON.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/routelab/routelab/decisionlog"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/policy"
)

func main() {
	role := flag.String("role", "", "internal: mock|floor|gateway")
	addr := flag.String("addr", "", "internal: listen address")
	upstream := flag.String("upstream", "", "internal: upstream base URL")
	logDir := flag.String("log-dir", "", "internal: decision log root for the gateway")
	rates := flag.String("rates", "1000,2000,3000,5000", "comma-separated request rates per second")
	dur := flag.Duration("duration", 10*time.Second, "attack duration per target and rate")
	warm := flag.Duration("warmup", 2*time.Second, "warm-up attack per target before the measured runs")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	targetsFlag := flag.String("targets", "direct,floor,gateway", "comma-separated targets to attack, in turn")
	reps := flag.Int("reps", 1, "repetitions of the whole rate sweep (each reported)")
	streamRate := flag.Int("stream-rate", 100, "streaming variant: streams started per second (0 = skip the streaming variant)")
	streamDur := flag.Duration("stream-duration", 0, "streaming variant: duration per target (0 = -duration)")
	chunks := flag.Int("stream-chunks", 20, "streaming variant: content chunks the mock sends per stream")
	chunkGap := flag.Duration("chunk-interval", 2*time.Millisecond, "streaming variant: the mock's pause between chunks (internal for -role mock)")
	flag.Parse()
	var err error
	switch *role {
	case "mock":
		err = serveMock(*addr, *chunks, *chunkGap)
	case "floor":
		err = serveFloor(*addr, *upstream)
	case "gateway":
		err = serveGateway(*addr, *upstream, *logDir)
	case "":
		sd := *streamDur
		if sd == 0 {
			sd = *dur
		}
		err = run(runOpts{rates: *rates, targets: *targetsFlag, dur: *dur, warm: *warm, jsonOut: *jsonOut, reps: *reps,
			streamRate: *streamRate, streamDur: sd, chunks: *chunks, chunkGap: *chunkGap})
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway-bench:", err)
		os.Exit(1)
	}
}

// mockBody is a typical short chat.completion answer.
var mockBody = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"The capital of France is Paris. It has been the capital since the 10th century."},"finish_reason":"stop"}],"usage":{"prompt_tokens":62,"completion_tokens":19,"total_tokens":81}}`)

// requestBody is a typical chat request.
var requestBody = []byte(`{"model":"auto","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and accurately."},{"role":"user","content":"What is the capital of France, and since when has it been the capital? Please answer in one sentence."}],"temperature":0.2,"max_tokens":128,"user":"bench-user"}`)

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

func serveUntilSignal(h http.Handler, addr string) error {
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func serveMock(addr string, chunks int, gap time.Duration) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			streamMock(w, chunks, gap)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(mockBody)))
		_, _ = w.Write(mockBody)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"mock","object":"model"}]}`)
	})
	return serveUntilSignal(mux, addr)
}

// serveFloor is the floor: a bare httputil.ReverseProxy that decodes the
// JSON request body into a generic map, sets the model, and re-encodes it.
// It shares the gateway's pooled transport settings, so the difference is
// what the gateway does on top.
func serveFloor(addr, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return fmt.Errorf("upstream %q: %w", upstream, err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.URL.Path = u.Path + strings.TrimPrefix(pr.In.URL.Path, "/v1")
			body, err := io.ReadAll(pr.In.Body)
			var m map[string]any
			if err == nil {
				err = json.Unmarshal(body, &m)
			}
			if err == nil {
				m["model"] = "mock"
				body, err = json.Marshal(m)
			}
			if err != nil {
				body = nil
			}
			pr.Out.Body = io.NopCloser(bytes.NewReader(body))
			pr.Out.ContentLength = int64(len(body))
			pr.Out.Header.Set("Content-Length", strconv.Itoa(len(body)))
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, DisableCompression: true, ForceAttemptHTTP2: true},
	}
	return serveUntilSignal(rp, addr)
}

func serveGateway(addr, upstream, logDir string) error {
	if path := os.Getenv("ROUTELAB_BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if a := os.Getenv("ROUTELAB_BENCH_PPROF"); a != "" { // diagnosis only: net/http/pprof on its own listener
		servePprof(a)
	}
	cfg, err := gateway.ParseConfig([]byte(fmt.Sprintf(`
mode: development
listen: %q
policy: {name: thompson, params: {seed: "1"}}
providers:
  - {name: mock, type: openai, base_url: %q, max_concurrency: 4096}
models:
  - {id: mock-small, provider: mock, upstream: mock, price_in: 0.00015, price_out: 0.0006}
  - {id: mock-medium, provider: mock, upstream: mock, price_in: 0.0005, price_out: 0.0015}
  - {id: mock-large, provider: mock, upstream: mock, price_in: 0.003, price_out: 0.015}
fallbacks:
  - {name: all, models: [mock-medium, mock-small, mock-large], when: ["status in (429, 5xx, timeout)", "error_rate > 0.05"]}
log: {dir: %q}
%s
`, addr, upstream, logDir, os.Getenv("ROUTELAB_BENCH_EXTRA_CONFIG"))))
	if err != nil {
		return err
	}
	dw, err := decisionlog.NewWriter(decisionlog.WriterOpts{Root: logDir})
	if err != nil {
		return err
	}
	opts := gateway.Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: dw,
		SinkStats: func() (int, uint64) { st := dw.Stats(); return st.QueueDepth, st.Dropped },
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if os.Getenv("ROUTELAB_BENCH_NOLOG") != "" { // diagnosis only: the gateway without its decision log
		opts.Sink, opts.SinkStats = nil, nil
	}
	srv, err := gateway.New(opts)
	if err != nil {
		return err
	}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err = srv.Serve(ctx, ln)
	st := dw.Stats()
	fmt.Fprintf(os.Stderr, "gateway decision log: %d enqueued, %d dropped\n", st.Enqueued, st.Dropped)
	return errors.Join(err, dw.Close())
}

type proc struct {
	name string
	cmd  *exec.Cmd
	url  string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func start(self, role, upstream, logDir string, extra ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-role", role, "-addr", addr, "-upstream", upstream, "-log-dir", logDir}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	p := &proc{name: role, cmd: cmd, url: "http://" + addr}
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s did not start listening on %s", role, addr)
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the process's user+system CPU time from /proc/PID/stat.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of %s: %w", p.name, err)
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime field 14, stime field 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc stat of %s", p.name)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// machineCPU returns the machine's idle and total CPU time in clock
// ticks, from the first line of /proc/stat (idle counts iowait).
func machineCPU() (idle, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) (idle, total uint64, err error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: first line %q is not the cpu totals", line)
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: cpu field %d %q: %w", i+1, v, err)
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total, nil
}

func attack(target string, rate int, d time.Duration) vegeta.Metrics {
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: target + "/v1/chat/completions", Body: requestBody,
		Header: http.Header{"Content-Type": {"application/json"}}})
	// One client per attack whose connections are closed afterwards, so
	// the targets never inherit each other's sockets.
	tp := &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext}
	defer tp.CloseIdleConnections()
	a := vegeta.NewAttacker(vegeta.Client(&http.Client{Transport: tp, Timeout: 10 * time.Second}),
		vegeta.Workers(64), vegeta.MaxWorkers(4096))
	var m vegeta.Metrics
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, "bench") {
		m.Add(res)
	}
	m.Close()
	return m
}

// raiseFileLimit lifts the open-file soft limit to the hard limit (the
// children inherit it): open-loop overload opens many sockets.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

type runOpts struct {
	rates, targets string
	dur, warm      time.Duration
	jsonOut        string
	reps           int
	streamRate     int
	streamDur      time.Duration
	chunks         int
	chunkGap       time.Duration
}

type target struct {
	name string
	url  string
	p    *proc
}

func run(o runOpts) error {
	var rates []int
	for _, s := range strings.Split(o.rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			return fmt.Errorf("-rates: %q is not a positive integer", s)
		}
		rates = append(rates, r)
	}
	if o.reps < 1 {
		return fmt.Errorf("-reps: %d must be at least 1", o.reps)
	}
	if o.streamRate < 0 || o.chunks < 1 {
		return fmt.Errorf("-stream-rate %d must be >= 0 and -stream-chunks %d >= 1", o.streamRate, o.chunks)
	}
	raiseFileLimit()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logDir, err := os.MkdirTemp("", "routelab-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)
	mock, err := start(self, "mock", "", "", "-stream-chunks", strconv.Itoa(o.chunks), "-chunk-interval", o.chunkGap.String())
	if err != nil {
		return err
	}
	defer mock.stop()
	floor, err := start(self, "floor", mock.url+"/v1", "")
	if err != nil {
		return err
	}
	defer floor.stop()
	gw, err := start(self, "gateway", mock.url+"/v1", logDir)
	if err != nil {
		return err
	}
	defer gw.stop()
	all := map[string]target{"direct": {"direct", mock.url, mock}, "floor": {"floor", floor.url, floor}, "gateway": {"gateway", gw.url, gw}}
	var targets []target
	for _, n := range strings.Split(o.targets, ",") {
		t, ok := all[strings.TrimSpace(n)]
		if !ok {
			return fmt.Errorf("-targets: %q is not direct, floor or gateway", n)
		}
		targets = append(targets, t)
	}
	fmt.Fprintf(os.Stderr, "warming up (%v per target)…\n", o.warm)
	for _, t := range targets {
		attack(t.url, 500, o.warm)
	}
	rep := Report{Duration: o.dur, Reps: o.reps, LoadBefore: loadAvg()}
	for k := 1; k <= o.reps; k++ {
		for _, rate := range rates {
			var directP50 time.Duration
			for _, t := range targets {
				fmt.Fprintf(os.Stderr, "rep %d  %-8s %5d/s for %v…\n", k, t.name, rate, o.dur)
				r := measure(t, rate, o.dur)
				r.Rep = k
				if t.name == "direct" {
					directP50 = r.P50
				} else if directP50 > 0 {
					r.AddedP50 = r.P50 - directP50
				}
				rep.Results = append(rep.Results, r)
				time.Sleep(500 * time.Millisecond) // let connections settle between targets
			}
		}
		if o.streamRate > 0 {
			var direct *StreamResult
			for _, t := range targets {
				fmt.Fprintf(os.Stderr, "rep %d  %-8s streaming %d/s for %v…\n", k, t.name, o.streamRate, o.streamDur)
				sr := measureStream(t, o.streamRate, o.streamDur, o.chunks)
				sr.Rep = k
				if t.name == "direct" {
					direct = &sr
				} else if direct != nil {
					sr.AddedTTFBP50 = sr.TTFBP50 - direct.TTFBP50
					sr.AddedTTFBP99 = sr.TTFBP99 - direct.TTFBP99
					sr.AddedGapMean = sr.GapMean - direct.GapMean
				}
				rep.Streams = append(rep.Streams, sr)
				time.Sleep(500 * time.Millisecond)
			}
		}
	}
	rep.Peak = map[string]int64{}
	for _, t := range targets {
		if hwm, _, err := t.p.mem(); err == nil {
			rep.Peak[t.name] = hwm
		}
	}
	rep.LoadAfter = loadAvg()
	rep.Checks = checks(rep)
	report(os.Stdout, rep)
	gatewayCounters(os.Stdout, gw.url)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", o.jsonOut, err)
		}
		fmt.Fprintf(os.Stdout, "\nresults written to %s\n", o.jsonOut)
	}
	return nil
}

// measure attacks t at rate for d and returns the result with the
// process's CPU time per request and resident memory afterwards.
func measure(t target, rate int, d time.Duration) Result {
	c0, err := t.p.cpu()
	if err != nil {
		fmt.Fprintln(os.Stderr, "warning:", err)
	}
	i0, n0, errIdle := machineCPU()
	m := attack(t.url, rate, d)
	r := Result{Target: t.name, Rate: rate, Requests: m.Requests, Achieved: m.Rate, Throughput: m.Throughput,
		Codes: m.StatusCodes, P50: m.Latencies.P50, P90: m.Latencies.P90, P99: m.Latencies.P99, Max: m.Latencies.Max}
	r.Errors = m.Requests - uint64(m.StatusCodes["200"])
	if len(m.Errors) > 5 {
		m.Errors = m.Errors[:5]
	}
	r.ErrorTexts = m.Errors
	if c1, err := t.p.cpu(); err != nil {
		fmt.Fprintln(os.Stderr, "warning:", err)
	} else if m.Requests > 0 && c0 > 0 {
		r.CPUPerReq = (c1 - c0) / time.Duration(m.Requests)
	}
	if i1, n1, err := machineCPU(); err == nil && errIdle == nil && n1 > n0 {
		idle := float64(i1-i0) / float64(n1-n0)
		r.MachineIdle = &idle
	}
	if _, rss, err := t.p.mem(); err == nil {
		r.RSS = rss
	}
	return r
}

// reportedMetrics are the prefixes of the gateway's metrics the report
// prints: its counters, and where its memory is.
var reportedMetrics = []string{"routelab_upstream_attempts_total", "routelab_fallbacks_total", "routelab_retries_total",
	"routelab_log_dropped_total", "routelab_connections_", "routelab_feedback_", "go_memstats_heap_inuse_bytes",
	"go_memstats_stack_inuse_bytes", "go_memstats_next_gc_bytes", "go_goroutines", "process_resident_memory_bytes"}

// gatewayCounters prints the gateway's metrics named in reportedMetrics.
func gatewayCounters(w io.Writer, base string) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		fmt.Fprintln(w, "gateway metrics:", err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	fmt.Fprintln(w, "\ngateway counters (and, at the end, where its memory is):")
	for _, l := range strings.Split(string(b), "\n") {
		if slices.ContainsFunc(reportedMetrics, func(p string) bool { return strings.HasPrefix(l, p) }) {
			fmt.Fprintln(w, "  "+l)
		}
	}
}
