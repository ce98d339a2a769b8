package grpcapi

import (
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/routelab/routelab/gateway"
	"github.com/routelab/routelab/gateway/grpcapi/routelabv1"
	"github.com/routelab/routelab/gateway/provider"
)

// answer is what both sinks keep: the header metadata and the error.
type answer struct {
	md     metadata.MD
	id     string
	policy string
	model  string
	err    *gateway.APIError
	wait   time.Duration
}

func (a *answer) RequestID(id string) {
	a.id = id
	a.md = metadata.Pairs(MDRequestID, id)
}

func (a *answer) Policy(name string) {
	a.policy = name
	a.md.Set(MDPolicy, name)
}

func (a *answer) setModel(model string) {
	a.model = model
	if model != "" {
		a.md.Set(MDModel, model)
	}
}

func (a *answer) Fail(e *gateway.APIError, model string, wait time.Duration) {
	if a.md == nil {
		a.md = metadata.MD{} // refused before it got an id (in-flight cap)
	}
	a.setModel(model)
	a.err, a.wait = e, wait
	if wait > 0 || e.Status == 429 {
		a.md.Set(MDRetryAfter, strconv.FormatInt(int64(max(time.Second, wait+time.Second-1)/time.Second), 10))
	}
}

// unarySink collects a Complete answer.
type unarySink struct {
	answer
	body []byte
}

var _ gateway.ChatSink = (*unarySink)(nil)

func (u *unarySink) Answer(model string, body []byte) {
	u.setModel(model)
	u.body = body
}

// The chat path streams only when asked; Complete never asks.
func (u *unarySink) Start(model string) error { u.setModel(model); return nil }
func (u *unarySink) Chunk([]byte) error       { return nil }
func (u *unarySink) End(e *gateway.APIError, _ provider.Usage) {
	if e != nil {
		u.err = e
	}
}

// streamSink sends a Stream answer as it comes.
type streamSink struct {
	answer
	st   grpc.ServerStreamingServer[routelabv1.ChatChunk]
	sent bool // the header metadata has gone out
	// sendErr is the first failed Send (the client left) or an
	// undecodable chunk.
	sendErr error
}

var _ gateway.ChatSink = (*streamSink)(nil)

func (s *streamSink) Start(model string) error {
	s.setModel(model)
	s.sent = true
	if err := s.st.SendHeader(s.md); err != nil {
		s.sendErr = err
		return provider.ErrClientGone
	}
	return nil
}

func (s *streamSink) Chunk(b []byte) error {
	c, err := decodeChunk(b)
	if err != nil {
		// Not the client's leaving, but nothing more can be relayed.
		s.sendErr = err
		return provider.ErrClientGone
	}
	if err := s.st.Send(c); err != nil {
		s.sendErr = err
		return provider.ErrClientGone
	}
	return nil
}

func (s *streamSink) End(e *gateway.APIError, u provider.Usage) {
	if e != nil {
		s.err = e
		return
	}
	err := s.st.Send(&routelabv1.ChatChunk{Done: true, RequestId: s.id, Policy: s.policy, Model: s.model, Usage: usageOf(&u)})
	if err != nil && s.sendErr == nil {
		s.sendErr = err
	}
}

// Answer is not used (Stream always streams) but keeps the contract.
func (s *streamSink) Answer(model string, body []byte) {
	if s.Start(model) != nil {
		return
	}
	r, err := decodeCompletion(body)
	if err != nil {
		s.sendErr = err
		return
	}
	c := &routelabv1.ChatChunk{Id: r.Id, Model: r.Model, Created: r.Created}
	for _, ch := range r.Choices {
		c.Choices = append(c.Choices, &routelabv1.ChunkChoice{Index: ch.Index, FinishReason: ch.FinishReason,
			Delta: &routelabv1.Delta{Role: ch.GetMessage().GetRole(), Content: ch.GetMessage().GetContent()}})
	}
	if err := s.st.Send(c); err != nil {
		s.sendErr = err
		return
	}
	var u provider.Usage
	if r.Usage != nil {
		u = provider.Usage{PromptTokens: int(r.Usage.PromptTokens), CompletionTokens: int(r.Usage.CompletionTokens), TotalTokens: int(r.Usage.TotalTokens)}
	}
	s.End(nil, u)
}
