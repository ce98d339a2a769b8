package policy

import "fmt"

// Builtin describes one policy this package provides, for the program to
// register explicitly (there is no init-time registration).
type Builtin struct {
	Name    string
	Doc     string
	Factory Factory
}

// Builtins lists every policy this package provides, in display order.
// Every factory accepts a "seed" parameter where it draws random numbers.
func Builtins() []Builtin {
	return []Builtin{
		{"random", "uniform over candidates (seed)", func(p Params) (Policy, error) {
			seed, err := p.Uint64("seed", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("seed"); err != nil {
				return nil, err
			}
			return NewRandom(seed), nil
		}},
		{"weighted", "seed weighted score on live profiles: latency 0.4 on 1/latency, accuracy 0.5, cost 0.1 on 1/cost (latency, accuracy, cost, out_tokens)", func(p Params) (Policy, error) {
			w := NewWeighted()
			var err error
			if w.Latency, err = p.Float("latency", w.Latency); err != nil {
				return nil, err
			}
			if w.Accuracy, err = p.Float("accuracy", w.Accuracy); err != nil {
				return nil, err
			}
			if w.Cost, err = p.Float("cost", w.Cost); err != nil {
				return nil, err
			}
			if w.OutTokens, err = p.Int("out_tokens", w.OutTokens); err != nil {
				return nil, err
			}
			if err := p.Check("latency", "accuracy", "cost", "out_tokens", "seed"); err != nil {
				return nil, err
			}
			if err := w.Validate(); err != nil {
				return nil, err
			}
			return w, nil
		}},
		{"epsilon-greedy", "best mean, uniform with probability epsilon (epsilon=0.1, seed)", func(p Params) (Policy, error) {
			eps, err := p.Float("epsilon", 0.1)
			if err != nil {
				return nil, err
			}
			seed, err := p.Uint64("seed", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("epsilon", "seed"); err != nil {
				return nil, err
			}
			return NewEpsilonGreedy(eps, seed)
		}},
		{"ucb1", "upper confidence bound, deterministic (c=1)", func(p Params) (Policy, error) {
			c, err := p.Float("c", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("c", "seed"); err != nil {
				return nil, err
			}
			return NewUCB1(c)
		}},
		{"thompson", "Thompson sampling (model=beta|gaussian, draws=1, sigma=0.5, seed)", func(p Params) (Policy, error) {
			var o ThompsonOpts
			switch m := p.String("model", "beta"); m {
			case "beta":
				o.Model = BetaModel
			case "gaussian":
				o.Model = GaussianModel
			default:
				return nil, fmt.Errorf("parameter \"model\": %q is not beta or gaussian", m)
			}
			var err error
			if o.Draws, err = p.Int("draws", 1); err != nil {
				return nil, err
			}
			if o.Sigma, err = p.Float("sigma", 0.5); err != nil {
				return nil, err
			}
			if o.Sigma <= 0 {
				return nil, fmt.Errorf("parameter \"sigma\": %v must be > 0", o.Sigma)
			}
			if o.Seed, err = p.Uint64("seed", 1); err != nil {
				return nil, err
			}
			if err := p.Check("model", "draws", "sigma", "seed"); err != nil {
				return nil, err
			}
			return NewThompson(o)
		}},
	}
}

// NewBuiltinRegistry returns a registry holding Builtins(). Programs call it
// (or build their own) explicitly.
func NewBuiltinRegistry() *Registry {
	r := NewRegistry()
	for _, b := range Builtins() {
		r.MustRegister(b.Name, b.Doc, b.Factory)
	}
	return r
}
