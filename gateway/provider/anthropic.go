package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// AnthropicOpts configures an Anthropic Messages API provider.
type AnthropicOpts struct {
	Name string
	// BaseURL is the API root without the version; "" means
	// https://api.anthropic.com.
	BaseURL string
	APIKey  string
	// Version is the anthropic-version header; "" means 2023-06-01.
	Version string
	// DefaultMaxTokens is sent when the client gives no max_tokens (the
	// Messages API requires one); 0 means 1024.
	DefaultMaxTokens int
	Client           *http.Client
	// Now stamps synthesised responses; nil means time.Now.
	Now func() time.Time
}

// Anthropic translates OpenAI chat completions to the Anthropic Messages
// API and back, for plain and streaming calls. Only text content is
// translated; image and tool parts are dropped.
type Anthropic struct {
	o   AnthropicOpts
	url string
}

var (
	_ Provider      = (*Anthropic)(nil)
	_ HealthChecker = (*Anthropic)(nil)
)

// NewAnthropic validates o and returns the provider.
func NewAnthropic(o AnthropicOpts) (*Anthropic, error) {
	if o.BaseURL == "" {
		o.BaseURL = "https://api.anthropic.com"
	}
	if !strings.HasPrefix(o.BaseURL, "http://") && !strings.HasPrefix(o.BaseURL, "https://") {
		return nil, fmt.Errorf("provider %q: base_url %q must start with http:// or https://", o.Name, o.BaseURL)
	}
	if o.Version == "" {
		o.Version = "2023-06-01"
	}
	if o.DefaultMaxTokens <= 0 {
		o.DefaultMaxTokens = 1024
	}
	if o.Client == nil {
		o.Client = NewHTTPClient(HTTPOpts{})
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Anthropic{o: o, url: strings.TrimRight(o.BaseURL, "/") + "/v1/messages"}, nil
}

func (p *Anthropic) Name() string { return p.o.Name }

type anthMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type anthRequest struct {
	Model         string        `json:"model"`
	System        string        `json:"system,omitempty"`
	Messages      []anthMessage `json:"messages"`
	MaxTokens     int           `json:"max_tokens"`
	Temperature   *float64      `json:"temperature,omitempty"`
	TopP          *float64      `json:"top_p,omitempty"`
	StopSequences []string      `json:"stop_sequences,omitempty"`
	Stream        bool          `json:"stream,omitempty"`
}

// translate builds the Messages API body of c.
func (p *Anthropic) translate(c *Call, stream bool) ([]byte, error) {
	r := c.Req
	ar := anthRequest{Model: c.Model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, StopSequences: r.Stop, Stream: stream}
	if ar.MaxTokens == 0 {
		ar.MaxTokens = p.o.DefaultMaxTokens
	}
	if ar.Temperature != nil && *ar.Temperature > 1 {
		// OpenAI allows up to 2, Anthropic up to 1.
		t := 1.0
		ar.Temperature = &t
	}
	var sys []string
	for i := range r.Messages {
		m := &r.Messages[i]
		text := m.Text()
		switch m.Role {
		case "system", "developer":
			sys = append(sys, text)
		case "assistant":
			ar.Messages = append(ar.Messages, anthMessage{Role: "assistant", Content: text})
		default: // user, tool, function: the Messages API takes them as user turns
			ar.Messages = append(ar.Messages, anthMessage{Role: "user", Content: text})
		}
	}
	if len(ar.Messages) == 0 {
		return nil, &Error{Client: true, HTTPStatus: 400, Status: StatusError(400, "").Status, Message: "the Anthropic Messages API needs at least one non-system message"}
	}
	ar.System = strings.Join(sys, "\n\n")
	return json.Marshal(ar)
}

func (p *Anthropic) post(ctx context.Context, c *Call, stream bool) (*http.Response, error) {
	body, err := p.translate(c, stream)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("provider %s: build request: %w", p.o.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", p.o.Version)
	if p.o.APIKey != "" {
		req.Header.Set("x-api-key", p.o.APIKey)
	}
	res, err := p.o.Client.Do(req)
	if err != nil {
		return nil, TransportError(ctx, err)
	}
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		code := res.StatusCode
		if code == 529 { // Anthropic's "overloaded"
			code = http.StatusServiceUnavailable
		}
		e := StatusError(code, upstreamMessage(b))
		e.HTTPStatus = res.StatusCode
		e.RetryAfter = ParseRetryAfter(res.Header.Get("Retry-After"), time.Now())
		return nil, e
	}
	return res, nil
}

type anthUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

type anthResponse struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason string    `json:"stop_reason"`
	Usage      anthUsage `json:"usage"`
}

// FinishReason maps an Anthropic stop_reason to OpenAI's finish_reason.
func FinishReason(stop string) string {
	switch stop {
	case "max_tokens":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	default:
		return "stop"
	}
}

// Complete implements Provider.
func (p *Anthropic) Complete(ctx context.Context, c *Call) (Result, error) {
	res, err := p.post(ctx, c, false)
	if err != nil {
		return Result{}, err
	}
	defer res.Body.Close()
	body, err := readAll(res.Body, res.ContentLength, 32<<20)
	if err != nil {
		return Result{}, TransportError(ctx, fmt.Errorf("read response: %w", err))
	}
	var ar anthResponse
	if err := json.Unmarshal(body, &ar); err != nil {
		return Result{}, Malformed("message is not valid JSON", err)
	}
	if ar.Type != "message" {
		return Result{}, Malformed(fmt.Sprintf("type %q is not \"message\"", ar.Type), nil)
	}
	var text strings.Builder
	for _, b := range ar.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	u := Usage{PromptTokens: ar.Usage.InputTokens, CompletionTokens: ar.Usage.OutputTokens}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	out, err := json.Marshal(Completion{
		ID: "chatcmpl-" + c.ID, Object: "chat.completion", Created: p.o.Now().Unix(), Model: c.Model,
		Choices: []Choice{{Message: &ChatMessage{Role: "assistant", Content: text.String()}, FinishReason: FinishReason(ar.StopReason)}},
		Usage:   &u,
	})
	if err != nil {
		return Result{}, fmt.Errorf("encode completion: %w", err)
	}
	return Result{Body: out, Usage: u}, nil
}

// Stream implements Provider.
func (p *Anthropic) Stream(ctx context.Context, c *Call, emit func([]byte) error) (Result, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := p.post(ctx, c, true)
	if err != nil {
		return Result{}, err
	}
	defer res.Body.Close()
	var r Result
	ch := Completion{ID: "chatcmpl-" + c.ID, Object: "chat.completion.chunk", Created: p.o.Now().Unix(), Model: c.Model}
	send := func(d Delta, finish string) error {
		ch.Choices = []Choice{{Delta: &d}}
		if finish != "" {
			ch.Choices[0].FinishReason = finish
		}
		b, err := json.Marshal(&ch)
		if err != nil {
			return fmt.Errorf("encode chunk: %w", err)
		}
		r.ChunkID, r.ChunkModel, r.Created = ch.ID, ch.Model, ch.Created
		return emit(b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 16<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, dataPrefix) {
			continue
		}
		data := bytes.TrimSpace(line[len(dataPrefix):])
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				Usage anthUsage `json:"usage"`
			} `json:"message"`
			Delta struct {
				Type       string `json:"type"`
				Text       string `json:"text"`
				StopReason string `json:"stop_reason"`
			} `json:"delta"`
			Usage anthUsage `json:"usage"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return r, Malformed("stream event is not valid JSON", err)
		}
		switch ev.Type {
		case "message_start":
			r.Usage.PromptTokens = ev.Message.Usage.InputTokens
			if err := send(Delta{Role: "assistant"}, ""); err != nil {
				return r, err
			}
		case "content_block_delta":
			if ev.Delta.Type != "text_delta" {
				continue
			}
			if r.TTFT == 0 {
				r.TTFT = time.Since(start)
			}
			if err := send(Delta{Content: ev.Delta.Text}, ""); err != nil {
				return r, err
			}
		case "message_delta":
			r.Usage.CompletionTokens = ev.Usage.OutputTokens
			if ev.Delta.StopReason != "" {
				if err := send(Delta{}, FinishReason(ev.Delta.StopReason)); err != nil {
					return r, err
				}
			}
		case "message_stop":
			r.Usage.TotalTokens = r.Usage.PromptTokens + r.Usage.CompletionTokens
			drainBody(res.Body, cancel)
			return r, nil
		case "error":
			code := 500
			switch ev.Error.Type {
			case "rate_limit_error":
				code = 429
			case "overloaded_error":
				code = 503
			}
			return r, StatusError(code, "upstream stream error: "+ev.Error.Message)
		}
	}
	if err := sc.Err(); err != nil {
		return r, TransportError(ctx, fmt.Errorf("stream cut: %w", err))
	}
	return r, &Error{Status: StatusError(502, "").Status, Message: "stream ended before message_stop", Err: io.ErrUnexpectedEOF}
}

// Health implements HealthChecker: GET {base}/v1/models must answer below 500.
func (p *Anthropic) Health(ctx context.Context) error {
	return httpProbe(ctx, p.o.Client, strings.TrimRight(p.o.BaseURL, "/")+"/v1/models", func(h http.Header) {
		h.Set("anthropic-version", p.o.Version)
		if p.o.APIKey != "" {
			h.Set("x-api-key", p.o.APIKey)
		}
	})
}

// Completion is OpenAI's chat.completion (and, with Delta choices,
// chat.completion.chunk) object, for providers that synthesise answers.
type Completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Choice is one choice of a Completion: Message when complete, Delta in a chunk.
type Choice struct {
	Index        int          `json:"index"`
	Message      *ChatMessage `json:"message,omitempty"`
	Delta        *Delta       `json:"delta,omitempty"`
	FinishReason any          `json:"finish_reason"`
}

// ChatMessage is an answer message.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Delta is a streamed piece of an answer.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}
