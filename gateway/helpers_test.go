package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// fakeOpenAI is an OpenAI-format upstream on a real loopback listener
// whose behaviour a test switches at run time.
type fakeOpenAI struct {
	srv   *httptest.Server
	mode  atomic.Value // string: ok, 429, 500, malformed, cut, slow
	delay time.Duration
	calls atomic.Int64
	// lastBody is the last request body received.
	mu       sync.Mutex
	lastBody map[string]any
	lastAuth string
}

func newFakeOpenAI(t *testing.T) *fakeOpenAI {
	f := &fakeOpenAI{delay: 2 * time.Second}
	f.mode.Store("ok")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", f.chat)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) url() string     { return f.srv.URL + "/v1" }
func (f *fakeOpenAI) set(mode string) { f.mode.Store(mode) }

func (f *fakeOpenAI) chat(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, 400)
		return
	}
	f.mu.Lock()
	f.lastBody, f.lastAuth = body, r.Header.Get("Authorization")
	f.mu.Unlock()
	model, _ := body["model"].(string)
	stream, _ := body["stream"].(bool)
	switch f.mode.Load().(string) {
	case "429":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}`)
		return
	case "500":
		w.WriteHeader(500)
		_, _ = io.WriteString(w, `{"error":{"message":"boom"}}`)
		return
	case "400":
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":{"message":"context too long"}}`)
		return
	case "malformed":
		w.Header().Set("Content-Type", "application/json")
		if stream {
			_, _ = io.WriteString(w, "data: {\"choices\": [\n\n")
			return
		}
		_, _ = io.WriteString(w, `{"id": "x", "choices": [ {"message": `)
		return
	case "slow":
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	if !stream {
		if f.mode.Load().(string) == "cut" {
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"id":"chatcmpl-1",`)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hello from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}`, model, model)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta, finish string) {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}],\"usage\":null}\n\n", model, delta, fin)
		w.(http.Flusher).Flush()
	}
	chunk(`{"role":"assistant","content":""}`, "")
	chunk(`{"content":"hello"}`, "")
	if f.mode.Load().(string) == "cut" {
		panic(http.ErrAbortHandler)
	}
	chunk(`{"content":" from "}`, "")
	chunk(`{"content":"`+model+`"}`, "")
	chunk(`{}`, "stop")
	if so, _ := body["stream_options"].(map[string]any); so["include_usage"] == true {
		fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":%q,\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4,\"total_tokens\":11}}\n\n", model)
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

// fakeAnthropic is an Anthropic Messages API upstream on loopback.
type fakeAnthropic struct {
	srv     *httptest.Server
	mu      sync.Mutex
	lastReq map[string]any
	lastKey string
}

func newFakeAnthropic(t *testing.T) *fakeAnthropic {
	f := &fakeAnthropic{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Header.Get("anthropic-version") == "" {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"type":"error","error":{"type":"invalid_request_error","message":"bad request"}}`)
			return
		}
		f.mu.Lock()
		f.lastReq, f.lastKey = body, r.Header.Get("x-api-key")
		f.mu.Unlock()
		model, _ := body["model"].(string)
		if stream, _ := body["stream"].(bool); !stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"bonjour from %s"}],"stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":4}}`, model, model)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(name, data string) {
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
			w.(http.Flusher).Flush()
		}
		ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"`+model+`","usage":{"input_tokens":9,"output_tokens":1}}}`)
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		ev("ping", `{"type":"ping"}`)
		for _, p := range []string{"bonjour", " from ", model} {
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`+p+`"}}`)
		}
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}`)
		ev("message_stop", `{"type":"message_stop"}`)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr + "/v1"
}

// recSink keeps a copy of every record the core logs.
type recSink struct {
	mu   sync.Mutex
	recs map[string]decision.Record
}

func newRecSink() *recSink { return &recSink{recs: map[string]decision.Record{}} }

func (s *recSink) Log(rec *decision.Record) {
	c := *rec
	c.Outcome.Attempts = append([]decision.Attempt(nil), rec.Outcome.Attempts...)
	c.Decision.Candidates = append([]decision.Arm(nil), rec.Decision.Candidates...)
	c.Decision.Probs = append([]float64(nil), rec.Decision.Probs...)
	c.Request.Features.Tags = append([]string(nil), rec.Request.Features.Tags...) // the masking sink reuses its tag buffer
	s.mu.Lock()
	s.recs[rec.Request.ID] = c
	s.mu.Unlock()
}

// get waits (up to 5s) for the record of id: the gateway logs a request
// after its answer has gone out, so a client can get ahead of the log.
func (s *recSink) get(id string) (decision.Record, bool) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		r, ok := s.recs[id]
		s.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return r, ok
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// all waits (up to 5s) for n records and returns a copy of them.
func (s *recSink) all(t *testing.T, n int) []decision.Record {
	t.Helper()
	require.Eventually(t, func() bool { return s.len() >= n }, 5*time.Second, 2*time.Millisecond, "want %d records", n)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]decision.Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out
}

// count is the number of records of status st.
func (s *recSink) count(st decision.Status) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.recs {
		if r.Outcome.Status == st {
			n++
		}
	}
	return n
}

func (s *recSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// fbLog records delayed feedback.
type fbLog struct {
	mu  sync.Mutex
	ids []string
}

func (f *fbLog) LogFeedback(id string, _ time.Time, _, _ *float64, _ string) error {
	f.mu.Lock()
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return nil
}

type testGW struct {
	srv  *Server
	url  string
	sink *recSink
	fb   *fbLog
}

// startGateway builds a gateway from YAML and serves it on loopback.
func startGateway(t *testing.T, yaml string) *testGW {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	require.NoError(t, err)
	sink, fb := newRecSink(), &fbLog{}
	srv, err := New(Opts{Config: cfg, Registry: policy.NewBuiltinRegistry(), Sink: sink, Feedback: fb,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv.Start(ctx)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testGW{srv: srv, url: hs.URL, sink: sink, fb: fb}
}

// post sends a JSON body and returns status, headers and body.
func post(t *testing.T, url, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, res.Header, b
}

// sseEvents splits an SSE body into its data payloads.
func sseEvents(body []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

type apiErrorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeAPIError(t *testing.T, b []byte) apiErrorBody {
	t.Helper()
	var e apiErrorBody
	require.NoError(t, json.Unmarshal(b, &e), "error body %s", b)
	require.NotEmpty(t, e.Error.Message, "error body %s", b)
	require.NotEmpty(t, e.Error.Type, "error body %s", b)
	return e
}

const msgBody = `{"model":%q,"messages":[{"role":"user","content":"hi"}]%s}`
