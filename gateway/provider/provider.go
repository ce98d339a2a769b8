package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
)

// Provider answers OpenAI-format chat completions for one upstream. The
// gateway owns the request and calls one method per attempt, sequentially.
type Provider interface {
	// Name identifies the provider in logs, metrics and route.Arm.Provider.
	Name() string
	// Complete runs a non-streaming call and returns an OpenAI
	// chat.completion JSON body in Result.Body.
	Complete(ctx context.Context, c *Call) (Result, error)
	// Stream runs a streaming call and hands every OpenAI
	// chat.completion.chunk JSON object (without the "data: " framing and
	// without usage-only chunks) to emit, in order. emit's error aborts the
	// call. Usage goes to Result.Usage.
	Stream(ctx context.Context, c *Call, emit func(chunk []byte) error) (Result, error)
}

// HealthChecker is implemented by providers that can be probed without a
// billable call (an HTTP GET of the model list, a simulator's outage flag).
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Call is one attempt: the client's request and the upstream model to ask.
type Call struct {
	Req *Request
	// Model is the upstream's model name (the catalogue entry's upstream id).
	Model string
	// ModelJSON, optional, is Model as a JSON string (QuoteJSON), computed
	// once per model by the caller instead of once per call.
	ModelJSON []byte
	// ID is the gateway's request id, used for synthesised response ids.
	ID string
	// Task is the request's task type (the simulated provider's quality
	// depends on it).
	Task string
}

// Usage is the token count of one call.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Result is what a successful call produced.
type Result struct {
	// Body is the chat.completion JSON (non-streaming calls only).
	Body  []byte
	Usage Usage
	// TTFT is the time to the first content chunk (streaming calls).
	TTFT time.Duration
	// ChunkID, ChunkModel and Created repeat the stream's id, model and
	// creation time, for the gateway's closing usage chunk.
	ChunkID    string
	ChunkModel string
	Created    int64
	// Cost, when CostKnown, is what the answer cost in US dollars, set by a
	// provider that prices its own answer (a cascade model: what its
	// members cost, each at its own price); otherwise the gateway prices
	// Usage at the model's price_in/price_out.
	Cost      float64
	CostKnown bool
	// Quality is a judged answer quality in [0,1], valid when QualityKnown;
	// only the simulated provider knows it at answer time.
	Quality      float64
	QualityKnown bool
}

// Error is a failed call, classified for the fallback logic.
type Error struct {
	// HTTPStatus is the upstream's status code; 0 when there was no response.
	HTTPStatus int
	// Status is the route status the attempt is logged with.
	Status decision.Status
	// Retryable is true when trying the same upstream again may succeed
	// (429, 5xx, connection errors, timeouts).
	Retryable bool
	// Client is true when the request itself was rejected (400, 413, 422):
	// no other upstream would accept it either.
	Client bool
	// RetryAfter is the wait the upstream asked for (its Retry-After
	// header, in seconds or as an HTTP date); 0 = none given.
	RetryAfter time.Duration
	Message    string
	Err        error
}

// ParseRetryAfter reads a Retry-After header value: delay seconds or an
// HTTP date (relative to now). Anything else, or a past date, is 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
		if sec <= 0 {
			return 0
		}
		return time.Duration(min(sec, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, "%d ", e.HTTPStatus)
	}
	b.WriteString(e.Status.String())
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil && e.Message == "" {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// StatusError classifies an upstream HTTP status with its error message.
func StatusError(code int, msg string) *Error {
	e := &Error{HTTPStatus: code, Message: msg, Status: decision.StatusError}
	switch {
	case code == http.StatusTooManyRequests:
		e.Status, e.Retryable = decision.StatusRateLimited, true
	case code == http.StatusRequestTimeout || code == http.StatusGatewayTimeout:
		e.Status, e.Retryable = decision.StatusTimeout, true
	case code >= 500:
		e.Retryable = true
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge || code == http.StatusUnprocessableEntity:
		e.Client = true
	}
	return e
}

// TransportError classifies an error from the HTTP client or from reading
// the answer: deadline and net timeouts are timeouts, everything else an
// error; both are retryable unless ctx itself is done.
func TransportError(ctx context.Context, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	e := &Error{Status: decision.StatusError, Err: err, Retryable: true, Message: err.Error()}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		e.Status = decision.StatusTimeout
	}
	if ctx.Err() != nil {
		// The request's own deadline or cancellation: nothing to retry.
		e.Retryable = false
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.Status = decision.StatusTimeout
		}
	}
	return e
}

// Malformed is the error for an upstream answer that is not what the
// protocol promises.
func Malformed(what string, err error) *Error {
	msg := "malformed upstream response: " + what
	if err != nil {
		msg += ": " + err.Error()
	}
	return &Error{Status: decision.StatusError, Message: msg, Err: err}
}

// upstreamMessage extracts a human message from an error body in OpenAI's
// or Anthropic's error shape, falling back to the raw (truncated) text.
func upstreamMessage(body []byte) string {
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) == nil && len(v.Error) > 0 {
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(v.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		var s string
		if json.Unmarshal(v.Error, &s) == nil && s != "" {
			return s
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
