package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// streamRequestBody is requestBody asking for a stream.
var streamRequestBody = bytes.Replace(requestBody, []byte(`"model":"auto",`), []byte(`"model":"auto","stream":true,`), 1)

var (
	mockChunk = []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{"content":"Paris "},"finish_reason":null}]}` + "\n\n")
	mockLast  = []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" +
		`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"mock","choices":[],"usage":{"prompt_tokens":62,"completion_tokens":20,"total_tokens":82}}` + "\n\n" +
		"data: [DONE]\n\n")
)

// streamMock answers an OpenAI streaming request: n content chunks, each
// flushed, gap apart, then the finish and usage chunks and [DONE].
func streamMock(w http.ResponseWriter, n int, gap time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i := range n {
		if i > 0 && gap > 0 {
			time.Sleep(gap)
		}
		if _, err := w.Write(mockChunk); err != nil {
			return
		}
		_ = rc.Flush()
	}
	_, _ = w.Write(mockLast)
}

// StreamResult is the streaming variant for one target in one repetition.
// TTFB is from sending the request to the first SSE data line; gaps are
// between consecutive content chunks as the client reads them.
type StreamResult struct {
	Rep     int           `json:"rep"`
	Target  string        `json:"target"`
	Rate    int           `json:"rate"`
	Streams int           `json:"streams"`
	Errors  int           `json:"errors"`
	TTFBP50 time.Duration `json:"ttfb_p50_ns"`
	TTFBP99 time.Duration `json:"ttfb_p99_ns"`
	GapMean time.Duration `json:"gap_mean_ns"`
	GapP99  time.Duration `json:"gap_p99_ns"`
	// Added* are over the direct call in the same repetition.
	AddedTTFBP50 time.Duration `json:"added_ttfb_p50_ns"`
	AddedTTFBP99 time.Duration `json:"added_ttfb_p99_ns"`
	AddedGapMean time.Duration `json:"added_gap_mean_ns"`
	FirstError   string        `json:"first_error,omitempty"`
}

// measureStream starts rate streams per second against t for d (open
// loop: a stream starts on schedule whether or not earlier ones ended)
// and reads each to its end.
func measureStream(t target, rate int, d time.Duration, chunks int) StreamResult {
	tp := &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tp.CloseIdleConnections()
	cl := &http.Client{Transport: tp, Timeout: 30 * time.Second}
	var (
		mu     sync.Mutex
		ttfbs  []time.Duration
		gaps   []time.Duration
		errs   int
		first  string
		wg     sync.WaitGroup
		starts int
	)
	fail := func(err error) {
		mu.Lock()
		errs++
		if first == "" {
			first = err.Error()
		}
		mu.Unlock()
	}
	one := func() {
		defer wg.Done()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, t.url+"/v1/chat/completions", bytes.NewReader(streamRequestBody))
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		res, err := cl.Do(req)
		if err != nil {
			fail(err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			fail(fmt.Errorf("status %d", res.StatusCode))
			return
		}
		br := bufio.NewReader(res.Body)
		var ttfb time.Duration
		var last time.Time
		var my []time.Duration
		n := 0
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				fail(fmt.Errorf("stream cut after %d chunks: %w", n, err))
				return
			}
			if !bytes.HasPrefix(line, []byte("data: ")) {
				continue
			}
			now := time.Now()
			if bytes.HasPrefix(line, []byte("data: [DONE]")) {
				// Read to the end of the response, as the official
				// OpenAI SDKs do after [DONE], so that the connection
				// is reused: closing it early would make every stream
				// open a new connection to the target.
				_, _ = io.Copy(io.Discard, br)
				break
			}
			if n == 0 {
				ttfb = now.Sub(t0)
			} else if n < chunks {
				my = append(my, now.Sub(last))
			}
			last = now
			n++
		}
		if n < chunks {
			fail(fmt.Errorf("%d chunks, want at least %d", n, chunks))
			return
		}
		mu.Lock()
		ttfbs = append(ttfbs, ttfb)
		gaps = append(gaps, my...)
		mu.Unlock()
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		wg.Add(1)
		starts++
		go one()
	}
	wg.Wait()
	r := StreamResult{Target: t.name, Rate: rate, Streams: starts, Errors: errs, FirstError: first}
	r.TTFBP50, r.TTFBP99 = quantile(ttfbs, 0.5), quantile(ttfbs, 0.99)
	r.GapP99 = quantile(gaps, 0.99)
	if len(gaps) > 0 {
		var sum time.Duration
		for _, g := range gaps {
			sum += g
		}
		r.GapMean = sum / time.Duration(len(gaps))
	}
	return r
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}
