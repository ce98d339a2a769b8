package provider

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A stream that ends with [DONE] leaves its upstream connection in the
// pool: the next stream reuses it instead of dialling (a new connection per
// stream put a TCP handshake into every stream's time to first byte).
func TestOpenAIStreamReusesConnection(t *testing.T) {
	var late atomic.Value
	late.Store(2 * time.Millisecond)
	up, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			f.Flush()
		}
		fmt.Fprint(w, "data: {\"id\":\"c\",\"model\":\"m\",\"created\":1,\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3,\"total_tokens\":4}}\n\n")
		f.Flush()
		fmt.Fprint(w, "data: [DONE]\n\n")
		f.Flush()
		time.Sleep(late.Load().(time.Duration)) // the end of the chunked body comes in a later segment
	})
	p, err := NewOpenAI(OpenAIOpts{Name: "up", BaseURL: up.URL})
	require.NoError(t, err)
	req := streamRequest(t)
	for range 5 {
		var chunks int
		res, err := p.Stream(context.Background(), &Call{Req: req, Model: "m", ID: "x"}, func([]byte) error { chunks++; return nil })
		require.NoError(t, err)
		assert.Equal(t, 3, chunks)
		assert.Equal(t, 3, res.Usage.CompletionTokens)
	}
	assert.Equal(t, int64(1), conns.Load(), "upstream connections for 5 sequential streams")

	// An upstream that holds the connection open after [DONE] does not
	// hold the stream: it ends within drainWait, and that connection is
	// given up.
	late.Store(600 * time.Millisecond)
	t0 := time.Now()
	_, err = p.Stream(context.Background(), &Call{Req: req, Model: "m", ID: "x"}, func([]byte) error { return nil })
	require.NoError(t, err)
	assert.Less(t, time.Since(t0), 500*time.Millisecond)
}

// The same for Anthropic's stream, which ends with message_stop.
func TestAnthropicStreamReusesConnection(t *testing.T) {
	up, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, ev := range []string{
			`{"type":"message_start","message":{"usage":{"input_tokens":3}}}`,
			`{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}`,
			`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}`,
			`{"type":"message_stop"}`,
		} {
			fmt.Fprintf(w, "event: x\ndata: %s\n\n", ev)
			f.Flush()
		}
		time.Sleep(2 * time.Millisecond) // the end of the chunked body comes in a later segment
	})
	p, err := NewAnthropic(AnthropicOpts{Name: "a", BaseURL: up.URL})
	require.NoError(t, err)
	req := streamRequest(t)
	for range 5 {
		res, err := p.Stream(context.Background(), &Call{Req: req, Model: "claude", ID: "x"}, func([]byte) error { return nil })
		require.NoError(t, err)
		assert.Equal(t, 4, res.Usage.TotalTokens)
	}
	assert.Equal(t, int64(1), conns.Load(), "upstream connections for 5 sequential streams")
}

// countingServer serves h and counts the connections it accepts.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(h)
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	return up, &conns
}

func streamRequest(t *testing.T) *Request {
	t.Helper()
	req, err := ParseRequest([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	return req
}
