package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"testing"

	"github.com/routelab/routelab/policy"
)

// BenchmarkInflightMemory measures what a request in flight costs in
// memory — the quantity an overload multiplies (docs/gateway-benchmark.md)
// — for the gateway and, beside it, for the floor of the gateway
// benchmark (httputil.ReverseProxy). 1,000 requests over their own
// connections wait at an upstream that holds them; with all of them
// waiting, the goroutines, stack bytes and live heap bytes (after a
// collection) per request are reported, minus what the same requests
// cost the client and the upstream alone (the "direct" run, subtracted
// from the others). The numbers are of this process, which is client,
// proxy and upstream at once, so only the differences are the proxy's.
//
//	go test -run '^$' -bench BenchmarkInflightMemory -benchtime 1x ./gateway
func BenchmarkInflightMemory(b *testing.B) {
	const n = 1000
	var direct inflightCost
	for _, target := range []string{"direct", "floor", "gateway"} {
		b.Run(target, func(b *testing.B) {
			var c inflightCost
			for b.Loop() {
				c = measureInflight(b, target, n)
			}
			if target == "direct" {
				direct = c
			} else {
				c = c.minus(direct)
			}
			b.ReportMetric(c.goroutines, "goroutines/req")
			b.ReportMetric(c.stack/1024, "stack-KB/req")
			b.ReportMetric(c.heap/1024, "heap-KB/req")
		})
	}
}

type inflightCost struct{ goroutines, stack, heap float64 }

func (c inflightCost) minus(d inflightCost) inflightCost {
	return inflightCost{c.goroutines - d.goroutines, c.stack - d.stack, c.heap - d.heap}
}

// measureInflight holds n requests in flight through target (direct: to
// the upstream itself) and returns what they cost per request.
func measureInflight(b *testing.B, target string, n int) inflightCost {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(n)
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived.Done()
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(memBody)
	})}
	uln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = up.Serve(uln) }()
	defer up.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	stop := cancel
	switch target {
	case "direct":
		addr = uln.Addr().String()
		ln.Close()
		close(served)
	case "floor": // as bench/gateway's floor: the body decoded and re-encoded is not in flight
		u, _ := url.Parse("http://" + uln.Addr().String())
		rp := httputil.NewSingleHostReverseProxy(u)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}
		hs := &http.Server{Handler: rp}
		go func() { _ = hs.Serve(ln); close(served) }()
		stop = func() { _ = hs.Close() }
	default:
		cfg, err := ParseConfig(fmt.Appendf(nil, `
policy: {name: thompson, params: {seed: "1"}}
providers:
  - {name: mock, type: openai, base_url: "http://%s/v1", max_concurrency: 4096, health_check: false}
models:
  - {id: mock-small, provider: mock, upstream: mock, price_in: 0.00015, price_out: 0.0006}
  - {id: mock-medium, provider: mock, upstream: mock, price_in: 0.0005, price_out: 0.0015}
  - {id: mock-large, provider: mock, upstream: mock, price_in: 0.003, price_out: 0.015}
log: {dir: ""}
server: {max_connections: 4096, max_inflight: 4096}
`, uln.Addr()))
		if err != nil {
			b.Fatal(err)
		}
		srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: nopSink{},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = srv.Serve(ctx, ln); close(served) }()
	}
	defer cancel()
	defer func() { stop(); <-served }()

	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	before, g0 := memNow()
	var done sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		done.Go(func() {
			resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", bytes.NewReader(benchRequest))
			if err != nil {
				errs <- err
				arrived.Done() // never reached the upstream
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("%s: status %d", target, resp.StatusCode)
			}
		})
	}
	arrived.Wait()
	during, g1 := memNow()
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return inflightCost{
		goroutines: float64(g1-g0) / float64(n),
		stack:      float64(int64(during.StackInuse)-int64(before.StackInuse)) / float64(n),
		heap:       float64(int64(during.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
	}
}

func memNow() (runtime.MemStats, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m, runtime.NumGoroutine()
}
