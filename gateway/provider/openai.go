package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTPOpts tunes the pooled HTTP client shared by the HTTP providers.
type HTTPOpts struct {
	// MaxIdleConnsPerHost bounds the idle keep-alive pool; 0 means 512.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connection set-up; 0 means 5s.
	DialTimeout time.Duration
	// IdleConnTimeout closes unused connections; 0 means 90s.
	IdleConnTimeout time.Duration
}

// NewHTTPClient returns a client whose transport keeps a large keep-alive
// pool per host (the default of 2 idle connections makes a busy gateway
// open a new connection for most requests). Timeouts are per call, by
// context, so the client itself has none.
func NewHTTPClient(o HTTPOpts) *http.Client {
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 512
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = 90 * time.Second
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0, // unbounded overall; bounded per host
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       o.IdleConnTimeout,
		TLSHandshakeTimeout:   o.DialTimeout,
		ExpectContinueTimeout: time.Second,
		// The gateway reads every byte anyway; compression only costs CPU on loopback and LAN.
		DisableCompression: true,
	}
	return &http.Client{Transport: t}
}

// OpenAIOpts configures an OpenAI-compatible provider.
type OpenAIOpts struct {
	Name string
	// BaseURL is the API root including the version, e.g.
	// https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama).
	BaseURL string
	APIKey  string
	// Headers are extra headers sent with every call.
	Headers map[string]string
	Client  *http.Client
	// MaxResponseBytes bounds a non-streaming answer; 0 means 32 MiB.
	MaxResponseBytes int64
}

// OpenAI talks to any OpenAI-compatible chat-completions API (OpenAI,
// vLLM, Ollama, Together, …). The client's request is forwarded with only
// the model replaced (and usage requested when streaming).
type OpenAI struct {
	o      OpenAIOpts
	url    string
	auth   string
	maxRes int64
}

var (
	_ Provider      = (*OpenAI)(nil)
	_ HealthChecker = (*OpenAI)(nil)
)

// NewOpenAI validates o and returns the provider.
func NewOpenAI(o OpenAIOpts) (*OpenAI, error) {
	if o.BaseURL == "" {
		return nil, fmt.Errorf("provider %q: base_url is required", o.Name)
	}
	if !strings.HasPrefix(o.BaseURL, "http://") && !strings.HasPrefix(o.BaseURL, "https://") {
		return nil, fmt.Errorf("provider %q: base_url %q must start with http:// or https://", o.Name, o.BaseURL)
	}
	if o.Client == nil {
		o.Client = NewHTTPClient(HTTPOpts{})
	}
	p := &OpenAI{o: o, url: strings.TrimRight(o.BaseURL, "/") + "/chat/completions", maxRes: o.MaxResponseBytes}
	if p.maxRes <= 0 {
		p.maxRes = 32 << 20
	}
	if o.APIKey != "" {
		p.auth = "Bearer " + o.APIKey
	}
	return p, nil
}

func (p *OpenAI) Name() string { return p.o.Name }

var streamUsageOn = []byte(`{"include_usage":true}`)

func (p *OpenAI) post(ctx context.Context, c *Call, stream bool) (*http.Response, error) {
	model := c.ModelJSON
	if model == nil {
		model = QuoteJSON(c.Model)
	}
	ov := map[string][]byte{"model": model}
	if stream {
		ov["stream_options"] = streamUsageOn
	}
	// The transport may read the body after Do returns (an early answer),
	// so the body is not pooled.
	body := c.Req.AppendBody(make([]byte, 0, c.Req.Size+64), ov)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("provider %s: build request: %w", p.o.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	for k, v := range p.o.Headers {
		req.Header.Set(k, v)
	}
	res, err := p.o.Client.Do(req)
	if err != nil {
		return nil, TransportError(ctx, err)
	}
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		e := StatusError(res.StatusCode, upstreamMessage(b))
		e.RetryAfter = ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
		return nil, e
	}
	return res, nil
}

// completionView is what the gateway checks of an answer: that it has
// choices (decoded as empty structs: validated, not copied) and its usage.
type completionView struct {
	Choices []struct{} `json:"choices"`
	Usage   *Usage     `json:"usage"`
}

// Complete implements Provider.
func (p *OpenAI) Complete(ctx context.Context, c *Call) (Result, error) {
	res, err := p.post(ctx, c, false)
	if err != nil {
		return Result{}, err
	}
	defer res.Body.Close()
	body, err := readAll(res.Body, res.ContentLength, p.maxRes)
	if err != nil {
		return Result{}, TransportError(ctx, fmt.Errorf("read response: %w", err))
	}
	var v completionView
	if err := json.Unmarshal(body, &v); err != nil {
		return Result{}, Malformed("chat.completion is not valid JSON", err)
	}
	if len(v.Choices) == 0 {
		return Result{}, Malformed("chat.completion has no choices", nil)
	}
	r := Result{Body: body}
	if v.Usage != nil {
		r.Usage = *v.Usage
	}
	return r, nil
}

func readAll(r io.Reader, n, limit int64) ([]byte, error) {
	if n > limit {
		return nil, fmt.Errorf("response of %d bytes exceeds the %d byte limit", n, limit)
	}
	if n > 0 {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response exceeds the %d byte limit", limit)
	}
	return b, err
}

var (
	dataPrefix = []byte("data:")
	doneMarker = []byte("[DONE]")
)

// Stream implements Provider.
func (p *OpenAI) Stream(ctx context.Context, c *Call, emit func([]byte) error) (Result, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := p.post(ctx, c, true)
	if err != nil {
		return Result{}, err
	}
	defer res.Body.Close()
	var r Result
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 16<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, dataPrefix) {
			continue // comments, event names, blank separators
		}
		data := bytes.TrimSpace(line[len(dataPrefix):])
		if bytes.Equal(data, doneMarker) {
			drainBody(res.Body, cancel)
			return r, nil
		}
		v, err := parseChunk(data, r.TTFT == 0)
		if err != nil {
			return r, Malformed("stream chunk is not valid JSON", err)
		}
		if v.Error {
			return r, &Error{Status: StatusError(500, "").Status, Message: "upstream stream error: " + upstreamMessage(data)}
		}
		if v.Usage != nil {
			r.Usage = *v.Usage
		}
		if !v.Choices {
			continue // the usage-only chunk; the gateway emits its own
		}
		if r.TTFT == 0 {
			r.TTFT = time.Since(start)
			r.ChunkID, r.ChunkModel, r.Created = v.ID, v.Model, v.Created
		}
		if err := emit(data); err != nil {
			return r, err
		}
	}
	if err := sc.Err(); err != nil {
		return r, TransportError(ctx, fmt.Errorf("stream cut: %w", err))
	}
	return r, &Error{Status: StatusError(502, "").Status, Message: "stream ended before [DONE]", Err: io.ErrUnexpectedEOF}
}

// drainWait and drainMax bound what drainBody reads after [DONE].
const (
	drainWait = 10 * time.Millisecond
	drainMax  = 64 << 10
)

// drainBody reads what follows [DONE] (Anthropic: message_stop): the end
// of the chunked body, a few bytes, normally already on their way, so
// that the upstream connection goes back to the pool: a body closed before its end closes
// the connection, and the next stream would pay a new TCP (and TLS)
// handshake in its time to first byte. It gives up after drainWait or
// drainMax bytes by cancelling the request (the connection is then closed,
// as before).
func drainBody(body io.Reader, cancel context.CancelFunc) {
	t := time.AfterFunc(drainWait, cancel)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainMax))
	t.Stop()
}

// Health implements HealthChecker: GET {base}/models must answer below 500.
func (p *OpenAI) Health(ctx context.Context) error {
	return httpProbe(ctx, p.o.Client, strings.TrimRight(p.o.BaseURL, "/")+"/models", func(h http.Header) {
		if p.auth != "" {
			h.Set("Authorization", p.auth)
		}
	})
}

func httpProbe(ctx context.Context, cl *http.Client, url string, hdr func(http.Header)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health probe %s: %w", url, err)
	}
	hdr(req.Header)
	res, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("health probe %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if res.StatusCode >= 500 {
		return fmt.Errorf("health probe %s: status %d", url, res.StatusCode)
	}
	return nil
}

var errEmit = errors.New("client went away")

// ErrClientGone is returned by emit functions when the downstream client
// disconnected; providers pass it through unchanged.
var ErrClientGone = errEmit
