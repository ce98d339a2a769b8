package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// SimModel is the behaviour of one simulated model.
type SimModel struct {
	// TTFTMS is the median time to the first token in ms; TTFTSigma the
	// log-normal spread (0 means 0.3).
	TTFTMS    float64
	TTFTSigma float64
	// TokensPerSec is the streaming speed; 0 means 50.
	TokensPerSec float64
	// OutputTokens is the mean answer length when the client sets no
	// max_tokens; 0 means 60.
	OutputTokens int
	// ErrorRate is the probability of a 500 answer.
	ErrorRate float64
	// RateLimitRPS, when > 0, answers 429 above this rate (burst = rate).
	RateLimitRPS float64
	// Quality is the expected answer quality per task type; the key ""
	// is the default for unlisted tasks.
	Quality map[string]float64
}

// SimOpts configures NewSim.
type SimOpts struct {
	Name   string
	Models map[string]SimModel
	Seed   uint64
	// TimeScale multiplies every simulated delay; 0 means 1 (real time).
	TimeScale float64
	Now       func() time.Time
}

// Sim is a self-contained simulated provider for development and tests:
// answers in OpenAI format after real (scaled) sleeps, streams tokens in
// real time, fails, rate-limits, and reports a judged quality per task.
type Sim struct {
	o      SimOpts
	models map[string]*simModel
	down   atomic.Bool

	mu  sync.Mutex
	rng *rand.Rand
}

type simModel struct {
	SimModel
	lim *rate.Limiter
}

var (
	_ Provider      = (*Sim)(nil)
	_ HealthChecker = (*Sim)(nil)
)

// NewSim validates o and builds the provider.
func NewSim(o SimOpts) (*Sim, error) {
	if len(o.Models) == 0 {
		return nil, fmt.Errorf("sim provider %q: no models", o.Name)
	}
	if o.TimeScale < 0 || math.IsNaN(o.TimeScale) {
		return nil, fmt.Errorf("sim provider %q: time_scale %v must be >= 0", o.Name, o.TimeScale)
	}
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Sim{o: o, models: map[string]*simModel{}, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed))}
	for name, m := range o.Models {
		if m.ErrorRate < 0 || m.ErrorRate > 1 {
			return nil, fmt.Errorf("sim provider %q model %q: error_rate %v outside [0,1]", o.Name, name, m.ErrorRate)
		}
		if m.TTFTMS < 0 || m.TokensPerSec < 0 || m.RateLimitRPS < 0 || m.OutputTokens < 0 {
			return nil, fmt.Errorf("sim provider %q model %q: negative timing, rate or length", o.Name, name)
		}
		for task, q := range m.Quality {
			if q < 0 || q > 1 {
				return nil, fmt.Errorf("sim provider %q model %q: quality[%q] %v outside [0,1]", o.Name, name, task, q)
			}
		}
		if m.TTFTSigma == 0 {
			m.TTFTSigma = 0.3
		}
		if m.TokensPerSec == 0 {
			m.TokensPerSec = 50
		}
		if m.OutputTokens == 0 {
			m.OutputTokens = 60
		}
		sm := &simModel{SimModel: m}
		if m.RateLimitRPS > 0 {
			sm.lim = rate.NewLimiter(rate.Limit(m.RateLimitRPS), int(math.Max(1, m.RateLimitRPS)))
		}
		s.models[name] = sm
	}
	return s, nil
}

func (s *Sim) Name() string { return s.o.Name }

// SetDown makes every call fail with a connection-style error (an outage)
// until SetDown(false).
func (s *Sim) SetDown(down bool) { s.down.Store(down) }

// Health implements HealthChecker.
func (s *Sim) Health(context.Context) error {
	if s.down.Load() {
		return fmt.Errorf("sim provider %s: down", s.o.Name)
	}
	return nil
}

type simPlan struct {
	ttft    time.Duration
	perTok  time.Duration
	tokens  int
	fail    bool
	quality float64
	words   []string
}

var simWords = []string{"the", "router", "learns", "which", "model", "answers", "best", "for", "each", "task",
	"and", "balances", "cost", "with", "latency", "while", "quality", "stays", "high", "under", "load",
	"so", "every", "request", "finds", "a", "good", "arm", "quickly", "."}

func (s *Sim) plan(m *simModel, c *Call) simPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := simPlan{fail: s.rng.Float64() < m.ErrorRate}
	p.ttft = time.Duration(m.TTFTMS * math.Exp(m.TTFTSigma*s.rng.NormFloat64()) * s.o.TimeScale * float64(time.Millisecond))
	p.perTok = time.Duration(s.o.TimeScale * float64(time.Second) / m.TokensPerSec)
	n := c.Req.MaxTokens
	if n == 0 || n > 4*m.OutputTokens {
		n = int(float64(m.OutputTokens) * (0.5 + s.rng.Float64()))
	}
	p.tokens = max(1, n)
	q, ok := m.Quality[c.Task]
	if !ok {
		q = m.Quality[""]
	}
	p.quality = math.Min(1, math.Max(0, q+0.1*s.rng.NormFloat64()))
	p.words = make([]string, p.tokens)
	for i := range p.words {
		p.words[i] = simWords[s.rng.IntN(len(simWords))]
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Sim) start(ctx context.Context, c *Call) (*simModel, simPlan, error) {
	m := s.models[c.Model]
	if m == nil {
		return nil, simPlan{}, StatusError(404, fmt.Sprintf("sim provider %s has no model %q", s.o.Name, c.Model))
	}
	if s.down.Load() {
		return nil, simPlan{}, &Error{Status: StatusError(503, "").Status, Retryable: true, Message: "connection refused (simulated outage)"}
	}
	if m.lim != nil && !m.lim.Allow() {
		return nil, simPlan{}, StatusError(429, "simulated rate limit")
	}
	p := s.plan(m, c)
	if err := sleep(ctx, p.ttft); err != nil {
		return nil, p, TransportError(ctx, err)
	}
	if p.fail {
		return nil, p, StatusError(500, "simulated upstream error")
	}
	return m, p, nil
}

func (p *simPlan) usage(c *Call) Usage {
	in := 0
	for i := range c.Req.Messages {
		in += 4 + len(c.Req.Messages[i].Content)/4
	}
	return Usage{PromptTokens: in, CompletionTokens: p.tokens, TotalTokens: in + p.tokens}
}

// Complete implements Provider.
func (s *Sim) Complete(ctx context.Context, c *Call) (Result, error) {
	_, p, err := s.start(ctx, c)
	if err != nil {
		return Result{}, err
	}
	if err := sleep(ctx, time.Duration(p.tokens-1)*p.perTok); err != nil {
		return Result{}, TransportError(ctx, err)
	}
	text := make([]byte, 0, 8*p.tokens)
	for i, w := range p.words {
		if i > 0 {
			text = append(text, ' ')
		}
		text = append(text, w...)
	}
	u := p.usage(c)
	body, err := json.Marshal(Completion{
		ID: "chatcmpl-" + c.ID, Object: "chat.completion", Created: s.o.Now().Unix(), Model: c.Model,
		Choices: []Choice{{Message: &ChatMessage{Role: "assistant", Content: string(text)}, FinishReason: "stop"}},
		Usage:   &u,
	})
	if err != nil {
		return Result{}, fmt.Errorf("encode completion: %w", err)
	}
	return Result{Body: body, Usage: u, TTFT: p.ttft, Quality: p.quality, QualityKnown: true}, nil
}

// Stream implements Provider.
func (s *Sim) Stream(ctx context.Context, c *Call, emit func([]byte) error) (Result, error) {
	t0 := time.Now()
	_, p, err := s.start(ctx, c)
	if err != nil {
		return Result{}, err
	}
	r := Result{TTFT: time.Since(t0), Quality: p.quality, QualityKnown: true}
	ch := Completion{ID: "chatcmpl-" + c.ID, Object: "chat.completion.chunk", Created: s.o.Now().Unix(), Model: c.Model}
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
	if err := send(Delta{Role: "assistant"}, ""); err != nil {
		return r, err
	}
	for i, w := range p.words {
		if i > 0 {
			if err := sleep(ctx, p.perTok); err != nil {
				return r, TransportError(ctx, err)
			}
			w = " " + w
		}
		if err := send(Delta{Content: w}, ""); err != nil {
			return r, err
		}
	}
	if err := send(Delta{}, "stop"); err != nil {
		return r, err
	}
	r.Usage = p.usage(c)
	return r, nil
}
