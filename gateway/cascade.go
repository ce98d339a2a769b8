package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
)

// cascade is the provider of a catalogue model with a cascade: block
// (decision.Cascade): it asks every agree model at once and serves the
// first one's answer when all answers share one decision.AnswerKey, else
// asks the escalate model and serves its answer. Each member call goes
// through that member's breaker, concurrency limit and timeout (attempt),
// and is counted in its attempt metrics; the answer is priced at what
// was asked, every member at its own price.
//
// A cascade cannot stream before it has decided: a streaming request gets
// the served answer as one chunk once the cascade has it.
type cascade struct {
	s                         *Server
	id                        string
	agree                     []*arm
	esc                       *arm
	agreed, escalated, failed prometheus.Counter
}

var _ provider.Provider = (*cascade)(nil)

func (c *cascade) Name() string { return "cascade" }

// memberCall is one member's call and what it produced.
type memberCall struct {
	res  provider.Result
	err  *provider.Error
	call provider.Call
}

func (c *cascade) Complete(ctx context.Context, call *provider.Call) (provider.Result, error) {
	req, err := nonStreaming(call.Req)
	if err != nil {
		return provider.Result{}, err
	}
	calls := make([]memberCall, len(c.agree))
	var wg sync.WaitGroup
	for i, a := range c.agree {
		mc := &calls[i]
		mc.call = *call
		mc.call.Req = req
		wg.Go(func() { mc.res, mc.err = c.ask(ctx, a, &mc.call) })
	}
	wg.Wait()
	var total provider.Result
	agreed, key := true, ""
	for i := range calls {
		mc := &calls[i]
		if mc.err != nil {
			agreed = false
			continue
		}
		addUsage(&total, c.agree[i], &mc.res)
		k := decision.AnswerKey(answerText(mc.res.Body))
		if i == 0 {
			key = k
		}
		if k == "" || k != key {
			agreed = false
		}
	}
	if agreed {
		c.agreed.Inc()
		return served(total, &calls[0].res), nil
	}
	if ctx.Err() != nil {
		c.failed.Inc()
		return provider.Result{}, provider.TransportError(ctx, ctx.Err())
	}
	ec := *call
	ec.Req = req
	res, perr := c.ask(ctx, c.esc, &ec)
	if perr != nil {
		c.failed.Inc()
		return provider.Result{}, perr
	}
	c.escalated.Inc()
	addUsage(&total, c.esc, &res)
	return served(total, &res), nil
}

// Stream answers a streaming request with the cascade's answer as one
// chunk: role, content and finish reason of the served answer.
func (c *cascade) Stream(ctx context.Context, call *provider.Call, emit func([]byte) error) (provider.Result, error) {
	t0 := time.Now()
	res, err := c.Complete(ctx, call)
	if err != nil {
		return res, err
	}
	var body struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Choices []struct {
			Message      json.RawMessage `json:"message"`
			FinishReason json.RawMessage `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil || len(body.Choices) == 0 {
		return provider.Result{}, provider.Malformed("cascade answer has no choices", err)
	}
	ch := body.Choices[0]
	if len(ch.FinishReason) == 0 {
		ch.FinishReason = json.RawMessage("null")
	}
	chunk, err := json.Marshal(map[string]any{
		"id": body.ID, "object": "chat.completion.chunk", "created": body.Created, "model": c.id,
		"choices": []map[string]any{{"index": 0, "delta": ch.Message, "finish_reason": ch.FinishReason}},
	})
	if err != nil {
		return provider.Result{}, provider.Malformed("cascade answer", err)
	}
	res.TTFT = time.Since(t0)
	res.ChunkID, res.ChunkModel, res.Created = body.ID, c.id, body.Created
	if err := emit(chunk); err != nil {
		return res, err
	}
	res.Body = nil
	return res, nil
}

// ask makes one member call (non-streaming) and counts it as run does.
func (c *cascade) ask(ctx context.Context, a *arm, call *provider.Call) (provider.Result, *provider.Error) {
	call.Model, call.ModelJSON = a.upstream, a.upstreamJSON
	res, perr, _ := c.s.attempt(ctx, a, call, func(ctx context.Context, a *arm, call *provider.Call) (provider.Result, error) {
		return a.up.p.Complete(ctx, call)
	})
	if perr != nil {
		c.s.m.attempts.WithLabelValues(a.id, perr.Status.String()).Inc()
		return res, perr
	}
	a.m.attemptOK.Inc()
	return res, nil
}

// addUsage adds a member's tokens and cost (at the member's price) to total.
func addUsage(total *provider.Result, a *arm, r *provider.Result) {
	total.Usage.PromptTokens += r.Usage.PromptTokens
	total.Usage.CompletionTokens += r.Usage.CompletionTokens
	total.Usage.TotalTokens += r.Usage.TotalTokens
	total.Cost += a.cost(r)
	total.CostKnown = true
}

// served is the cascade's result: the served member's answer (and its
// judged quality, when known) with the usage and cost of every call.
func served(total provider.Result, r *provider.Result) provider.Result {
	total.Body = r.Body
	total.Quality, total.QualityKnown = r.Quality, r.QualityKnown
	return total
}

// cost is what answer r of a cost: the provider's own figure when it
// priced the answer (a cascade), else r's usage at a's prices.
func (a *arm) cost(r *provider.Result) float64 {
	if r.CostKnown {
		return r.Cost
	}
	return (a.spec.PriceIn*float64(r.Usage.PromptTokens) + a.spec.PriceOut*float64(r.Usage.CompletionTokens)) / 1000
}

// answerText is the first choice's message content of a chat.completion
// body ("" when there is none).
func answerText(body []byte) string {
	var v struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Choices) == 0 {
		return ""
	}
	return v.Choices[0].Message.Content
}

// nonStreaming is req without its stream and stream_options fields (the
// request itself when it has neither), for the members' calls.
func nonStreaming(req *provider.Request) (*provider.Request, error) {
	if req.Field("stream") == nil && req.Field("stream_options") == nil {
		return req, nil
	}
	r, err := provider.ParseRequest(req.AppendBody(nil, map[string][]byte{"stream": nil, "stream_options": nil}))
	if err != nil {
		return nil, fmt.Errorf("cascade: request without stream: %w", err)
	}
	return r, nil
}

// newCascade builds the provider of cascade model id over the catalogue's
// arms (all built) and its timeout: the slowest agree member's plus the
// escalate member's.
func (s *Server) newCascade(id string, spec *decision.Cascade) (*cascade, time.Duration) {
	c := &cascade{s: s, id: id, esc: s.arms[spec.Escalate],
		agreed:    s.m.cascades.WithLabelValues(id, "agreed"),
		escalated: s.m.cascades.WithLabelValues(id, "escalated"),
		failed:    s.m.cascades.WithLabelValues(id, "failed"),
	}
	var slowest time.Duration
	for _, m := range spec.Agree {
		a := s.arms[m]
		c.agree = append(c.agree, a)
		slowest = max(slowest, a.up.timeout)
	}
	return c, slowest + c.esc.up.timeout
}
