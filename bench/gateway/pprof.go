package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
)

// servePprof serves net/http/pprof on addr, with mutex and block
// profiling on, for diagnosing the gateway under load
// (ROUTELAB_BENCH_PPROF=127.0.0.1:6061 make bench-gateway).
func servePprof(addr string) {
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(10000) // one sample per 10 µs blocked
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintln(os.Stderr, "pprof:", err)
		}
	}()
}
