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

// streamSink hands a Stream answer to the handler goroutine (pump),
// which sends it. The chat path waits at most write_timeout for room in
// the queue: a client that stops reading ends the attempt as a client
// leaving does.
type streamSink struct {
	answer
	ops    chan streamOp
	wt     time.Duration
	timer  *time.Timer
	failed chan struct{} // closed by pump when a send fails
	// Set by the chat path, read by the handler after ops is closed.
	sent bool // the header metadata was queued
	// sendErr is the first failed send (set by pump) or an undecodable
	// chunk (set by the chat path before ops closes).
	sendErr error
}

// streamOp is one send: the header metadata, or a message.
type streamOp struct {
	md  metadata.MD
	msg *routelabv1.ChatChunk
}

var _ gateway.ChatSink = (*streamSink)(nil)

// streamQueue is how many messages may wait for a slow client.
const streamQueue = 32

func newStreamSink(wt time.Duration) *streamSink {
	return &streamSink{ops: make(chan streamOp, streamQueue), wt: wt, failed: make(chan struct{})}
}

// pump sends what the chat path queues until it closes the queue; after
// a failed send it only drains.
func (s *streamSink) pump(st grpc.ServerStreamingServer[routelabv1.ChatChunk]) {
	var err error
	for op := range s.ops {
		if err != nil {
			continue
		}
		if op.md != nil {
			err = st.SendHeader(op.md)
		} else {
			err = st.Send(op.msg)
		}
		if err != nil {
			close(s.failed)
		}
	}
	if err != nil && s.sendErr == nil {
		s.sendErr = err
	}
}

// push queues op, waiting up to write_timeout (0 = no bound) for room.
func (s *streamSink) push(op streamOp) error {
	select {
	case s.ops <- op:
		return nil
	case <-s.failed:
		return provider.ErrClientGone
	default:
	}
	var expired <-chan time.Time
	if s.wt > 0 {
		if s.timer == nil {
			s.timer = time.NewTimer(s.wt)
		} else {
			s.timer.Reset(s.wt)
		}
		defer s.timer.Stop()
		expired = s.timer.C
	}
	select {
	case s.ops <- op:
		return nil
	case <-s.failed:
		return provider.ErrClientGone
	case <-expired:
		return provider.ErrClientGone
	}
}

func (s *streamSink) Start(model string) error {
	s.setModel(model)
	s.sent = true
	return s.push(streamOp{md: s.md})
}

func (s *streamSink) Chunk(b []byte) error {
	c, err := decodeChunk(b)
	if err != nil {
		// Not the client's leaving, but nothing more can be relayed.
		s.sendErr = err
		return provider.ErrClientGone
	}
	return s.push(streamOp{msg: c})
}

func (s *streamSink) End(e *gateway.APIError, u provider.Usage) {
	if e != nil {
		s.err = e
		return
	}
	_ = s.push(streamOp{msg: &routelabv1.ChatChunk{Done: true, RequestId: s.id, Policy: s.policy, Model: s.model, Usage: usageOf(&u)}})
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
	if s.push(streamOp{msg: c}) != nil {
		return
	}
	var u provider.Usage
	if r.Usage != nil {
		u = provider.Usage{PromptTokens: int(r.Usage.PromptTokens), CompletionTokens: int(r.Usage.CompletionTokens), TotalTokens: int(r.Usage.TotalTokens)}
	}
	s.End(nil, u)
}
