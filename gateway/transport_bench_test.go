package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// memStream streams 8 chunks from memory, so the transport benchmarks
// measure the gateway and the transport alone.
type memStream struct{ memProvider }

var memChunk = []byte(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{"content":"Paris "},"finish_reason":null}]}`)

func (memStream) Stream(_ context.Context, _ *provider.Call, emit func([]byte) error) (provider.Result, error) {
	for range 8 {
		if err := emit(memChunk); err != nil {
			return provider.Result{}, err
		}
	}
	return provider.Result{Usage: provider.Usage{PromptTokens: 62, CompletionTokens: 8}}, nil
}

func benchGateway(b *testing.B) *httptest.Server {
	cfg, err := ParseConfig([]byte(`
providers: [{name: mem, type: sim, health_check: false}]
models:
  - {id: m1, provider: mem, sim: {}}
  - {id: m2, provider: mem, sim: {}}
log: {dir: ""}
`))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: nopSink{},
		Providers: map[string]provider.Provider{"mem": memStream{}}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return hs
}

var benchStreamRequest = bytes.Replace(benchRequest, []byte(`"max_tokens":128`), []byte(`"max_tokens":128,"stream":true`), 1)

// BenchmarkStreamREST is one streamed request (8 chunks) over loopback
// HTTP/1.1 with SSE, keep-alive, read to [DONE].
func BenchmarkStreamREST(b *testing.B) {
	hs := benchGateway(b)
	client := hs.Client()
	b.ReportAllocs()
	for b.Loop() {
		res, err := client.Post(hs.URL+"/v1/chat/completions", "application/json", bytes.NewReader(benchStreamRequest))
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(res.Body)
		done := false
		for sc.Scan() {
			if sc.Text() == "data: [DONE]" {
				done = true
			}
		}
		_ = res.Body.Close()
		if !done || res.StatusCode != http.StatusOK {
			b.Fatalf("status %d, done %v", res.StatusCode, done)
		}
	}
}

// BenchmarkStreamWebSocket is the same request over one WebSocket
// connection, read to the done message.
func BenchmarkStreamWebSocket(b *testing.B) {
	hs := benchGateway(b)
	ctx := context.Background()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseNow()
	done := []byte(`"object":"routelab.done"`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Write(ctx, websocket.MessageText, benchRequest); err != nil {
			b.Fatal(err)
		}
		for {
			_, m, err := c.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(m, done) {
				break
			}
			if bytes.HasPrefix(m, []byte(`{"error"`)) {
				b.Fatalf("%s", m)
			}
		}
	}
}
