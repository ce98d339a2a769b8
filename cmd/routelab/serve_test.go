package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeGRPC: `routelab serve` with grpc.listen serves the gRPC API
// beside HTTP and stops both on cancellation.
func TestServeGRPC(t *testing.T) {
	dir := t.TempDir()
	cfg := `
mode: production
listen: "127.0.0.1:0"
grpc: {listen: "127.0.0.1:0"}
auth:
  keys: [{name: k, sha256: ` + gateway.HashKey("sk-k") + `}]
  admin_token_sha256: ` + gateway.HashKey("adm") + `
providers: [{name: sim, type: sim, seed: 1, health_check: false}]
models: [{id: m, provider: sim, sim: {ttft_ms: 1, tokens_per_sec: 100000, output_tokens: 5}}]
log: {dir: ""}
shutdown_timeout: 5s
`
	path := filepath.Join(dir, "gw.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--config", path})
	stderr := &syncBuf{}
	cmd.SetErr(stderr)
	cmd.SetOut(&syncBuf{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	addrRE := regexp.MustCompile(`routelab gRPC API listening" addr=(\S+)`)
	var addr string
	require.Eventually(t, func() bool {
		m := addrRE.FindStringSubmatch(stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "the gRPC API's start-up line in %s", stderr)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	rctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer sk-k")
	res, err := routelabv1.NewChatClient(conn).Complete(rctx, &routelabv1.ChatRequest{Model: "auto",
		Messages: []*routelabv1.Message{{Role: "user", Content: "hi"}}})
	require.NoError(t, err)
	assert.Equal(t, "m", res.Model)
	assert.NotEmpty(t, res.RequestId)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.Contains(t, stderr.String(), "gateway stopped")
}
