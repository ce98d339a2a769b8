package gateway_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/policy"
)

// A gateway over one simulated model, asked to route ("auto") one request.
func ExampleNew() {
	cfg, err := gateway.ParseConfig([]byte(`
providers: [{name: sim, type: sim, time_scale: 0.001}]
models: [{id: tiny, provider: sim, sim: {ttft_ms: 10, output_tokens: 3}}]
log: {dir: ""}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	res, err := http.Post(hs.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"auto","messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	fmt.Println(res.StatusCode, res.Header.Get(gateway.HeaderModel), res.Header.Get(gateway.HeaderPolicy))
	// Output: 200 tiny thompson
}
