package grpcapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi"
	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/policy"
)

// memStream streams 8 chunks from memory (as the gateway package's
// transport benchmarks), so the benchmark measures gateway and gRPC.
type memStream struct{}

var memChunk = []byte(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{"content":"Paris "},"finish_reason":null}]}`)

func (memStream) Name() string { return "mem" }
func (memStream) Complete(context.Context, *provider.Call) (provider.Result, error) {
	return provider.Result{}, provider.StatusError(501, "")
}
func (memStream) Stream(_ context.Context, _ *provider.Call, emit func([]byte) error) (provider.Result, error) {
	for range 8 {
		if err := emit(memChunk); err != nil {
			return provider.Result{}, err
		}
	}
	return provider.Result{Usage: provider.Usage{PromptTokens: 62, CompletionTokens: 8}}, nil
}

type nopSink struct{}

func (nopSink) Log(*decision.Record) {}

// BenchmarkStreamGRPC is one streamed request (8 chunks) over a loopback
// gRPC connection, received to the done message; compare the gateway
// package's BenchmarkStreamREST and BenchmarkStreamWebSocket.
func BenchmarkStreamGRPC(b *testing.B) {
	cfg, err := gateway.ParseConfig([]byte(`
providers: [{name: mem, type: sim, health_check: false}]
models:
  - {id: m1, provider: mem, sim: {}}
  - {id: m2, provider: mem, sim: {}}
log: {dir: ""}
`))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.New(gateway.Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: nopSink{},
		Providers: map[string]provider.Provider{"mem": memStream{}}, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svc, err := grpcapi.New(grpcapi.Opts{Gateway: srv, Listener: ln, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = svc.Serve() }()
	defer svc.Stop()
	conn, err := grpc.NewClient(svc.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := routelabv1.NewChatClient(conn)
	n := int32(128)
	temp := 0.2
	req := &routelabv1.ChatRequest{Model: "auto", MaxTokens: &n, Temperature: &temp, Messages: []*routelabv1.Message{
		{Role: "system", Content: "You are a helpful assistant. Answer briefly and accurately."},
		{Role: "user", Content: "What is the capital of France, and since when has it been the capital? Please answer in one sentence."}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, err := client.Stream(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		done := false
		for {
			c, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			done = done || c.Done
		}
		if !done {
			b.Fatal("no done message")
		}
	}
}
