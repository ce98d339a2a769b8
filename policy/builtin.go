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
// Every factory accepts a "seed" parameter (ignored by deterministic
// policies), and every spec built through a Registry also accepts "floor"
// (see FloorParam).
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
			return NewRandom(RandomOpts{Seed: seed}), nil
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
			return NewEpsilonGreedy(EpsilonGreedyOpts{Epsilon: eps, Seed: seed})
		}},
		{"ucb1", "upper confidence bound, deterministic (c=1)", func(p Params) (Policy, error) {
			c, err := p.Float("c", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("c", "seed"); err != nil {
				return nil, err
			}
			return NewUCB1(UCB1Opts{C: c})
		}},
		{"thompson", "Thompson sampling (model=beta|gaussian, draws=1, sigma=0.5, seed)", func(p Params) (Policy, error) {
			o, err := thompsonOpts(p)
			if err != nil {
				return nil, err
			}
			if err := p.Check("model", "draws", "sigma", "seed"); err != nil {
				return nil, err
			}
			return NewThompson(o)
		}},
		{"sw-ucb", "sliding-window UCB over the last window rewards (c=0.5, window=5000)", func(p Params) (Policy, error) {
			c, err := p.Float("c", 0.5)
			if err != nil {
				return nil, err
			}
			w, err := p.Int("window", 5000)
			if err != nil {
				return nil, err
			}
			if err := p.Check("c", "window", "seed"); err != nil {
				return nil, err
			}
			if w == 0 {
				// The options' zero means the default; a spec's 0 is a mistake.
				return nil, fmt.Errorf("window %d outside [1, %d]", w, 1<<24)
			}
			return NewSlidingUCB(SlidingUCBOpts{C: c, Window: w})
		}},
		{"d-ucb", "discounted UCB, statistics decay by gamma per reward (c=0.5, gamma=0.9998)", func(p Params) (Policy, error) {
			c, err := p.Float("c", 0.5)
			if err != nil {
				return nil, err
			}
			g, err := p.Float("gamma", 0.9998)
			if err != nil {
				return nil, err
			}
			if err := p.Check("c", "gamma", "seed"); err != nil {
				return nil, err
			}
			if g == 0 {
				return nil, fmt.Errorf("gamma %v outside (0,1]", g)
			}
			return NewDiscountedUCB(DiscountedUCBOpts{C: c, Gamma: g})
		}},
		{"d-thompson", "discounted Thompson sampling, statistics decay by gamma per reward (gamma=0.999, model=beta|gaussian, draws=1, sigma=0.5, seed)", func(p Params) (Policy, error) {
			o, err := thompsonOpts(p)
			if err != nil {
				return nil, err
			}
			if o.Gamma, err = p.Float("gamma", 0.999); err != nil {
				return nil, err
			}
			if o.Gamma <= 0 {
				return nil, fmt.Errorf("gamma %v outside (0,1]", o.Gamma)
			}
			if err := p.Check("model", "draws", "sigma", "gamma", "seed"); err != nil {
				return nil, err
			}
			return NewDiscountedThompson(o)
		}},
		{"softmax", "Boltzmann exploration, P ∝ exp(mean/temperature), exact propensities (temperature=0.1, init=1 for unseen arms, seed)", func(p Params) (Policy, error) {
			t, err := p.Float("temperature", 0.1)
			if err != nil {
				return nil, err
			}
			init, err := p.Float("init", 1)
			if err != nil {
				return nil, err
			}
			seed, err := p.Uint64("seed", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("temperature", "init", "seed"); err != nil {
				return nil, err
			}
			if t == 0 {
				return nil, fmt.Errorf("temperature %v must be a finite number > 0", t)
			}
			return NewSoftmax(SoftmaxOpts{Temperature: t, Init: init, Seed: seed})
		}},
		{"linucb", "disjoint LinUCB on decision.Features.Vector (alpha=1, " + linearDoc + ")", func(p Params) (Policy, error) {
			o, err := linearOpts(p)
			if err != nil {
				return nil, err
			}
			alpha, err := p.Float("alpha", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("alpha", "dim", "lambda", "refactor", "gamma", "seed"); err != nil {
				return nil, err
			}
			return NewLinUCB(LinUCBOpts{Alpha: alpha, LinearOpts: o})
		}},
		{"lin-thompson", "linear Thompson sampling on decision.Features.Vector (v=0.25 posterior scale, draws=1, " + linearDoc + ", seed)", func(p Params) (Policy, error) {
			o, err := linearOpts(p)
			if err != nil {
				return nil, err
			}
			v, err := p.Float("v", 0.25)
			if err != nil {
				return nil, err
			}
			draws, err := p.Int("draws", 1)
			if err != nil {
				return nil, err
			}
			seed, err := p.Uint64("seed", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("v", "draws", "dim", "lambda", "refactor", "gamma", "seed"); err != nil {
				return nil, err
			}
			if v == 0 {
				return nil, fmt.Errorf("v %v must be a finite number > 0", v)
			}
			return NewLinThompson(LinThompsonOpts{V: v, Draws: draws, Seed: seed, LinearOpts: o})
		}},
		{"linear-router", "frozen cost-aware router trained offline (routelab benchdata --save-policy): argmax predicted quality − lambda·predicted cost (dim=0: from the artifact, lambda=0; a spend budget enforced per tenant by an online dual price on observed spend: budget=USD per request, budget_window (e.g. 1h) with budget_limit=USD per window, budget_eta=0.001, budget_tenants=TENANT=PER_REQUEST/LIMIT separated by spaces; none by default)", func(p Params) (Policy, error) {
			dim, err := p.Int("dim", 0)
			if err != nil {
				return nil, err
			}
			lambda, err := p.Float("lambda", 0)
			if err != nil {
				return nil, err
			}
			budget, err := BudgetFromParams(p)
			if err != nil {
				return nil, err
			}
			if err := p.Check(append([]string{"dim", "lambda", "seed"}, BudgetParams...)...); err != nil {
				return nil, err
			}
			return NewLinearRouter(LinearRouterOpts{Dim: dim, Lambda: lambda, Budget: budget})
		}},
		{"egreedy-ridge", "epsilon-greedy over per-arm ridge regressions on decision.Features.Vector (epsilon=0.05, " + linearDoc + ", seed)", func(p Params) (Policy, error) {
			o, err := linearOpts(p)
			if err != nil {
				return nil, err
			}
			eps, err := p.Float("epsilon", 0.05)
			if err != nil {
				return nil, err
			}
			seed, err := p.Uint64("seed", 1)
			if err != nil {
				return nil, err
			}
			if err := p.Check("epsilon", "dim", "lambda", "refactor", "gamma", "seed"); err != nil {
				return nil, err
			}
			return NewEGreedyRidge(EGreedyRidgeOpts{Epsilon: eps, Seed: seed, LinearOpts: o})
		}},
	}
}

// linearDoc documents the ridge parameters every contextual policy takes.
const linearDoc = "dim=0 (first vector's length), lambda=1 ridge, gamma=1 (<1 forgets past data, for drift), refactor=1000 updates between re-factorisations"

func linearOpts(p Params) (LinearOpts, error) {
	var o LinearOpts
	var err error
	if o.Dim, err = p.Int("dim", 0); err != nil {
		return o, err
	}
	if o.Lambda, err = p.Float("lambda", 1); err != nil {
		return o, err
	}
	if o.Refactor, err = p.Int("refactor", 0); err != nil {
		return o, err
	}
	if o.Gamma, err = p.Float("gamma", 1); err != nil {
		return o, err
	}
	if o.Gamma <= 0 {
		return o, fmt.Errorf("gamma %v outside (0,1]", o.Gamma)
	}
	return o, nil
}

func thompsonOpts(p Params) (ThompsonOpts, error) {
	var o ThompsonOpts
	switch m := p.String("model", "beta"); m {
	case "beta":
		o.Model = BetaModel
	case "gaussian":
		o.Model = GaussianModel
	default:
		return o, fmt.Errorf("parameter \"model\": %q is not beta or gaussian", m)
	}
	var err error
	if o.Draws, err = p.Int("draws", 1); err != nil {
		return o, err
	}
	if o.Sigma, err = p.Float("sigma", 0.5); err != nil {
		return o, err
	}
	if o.Sigma <= 0 {
		return o, fmt.Errorf("parameter \"sigma\": %v must be > 0", o.Sigma)
	}
	if o.Seed, err = p.Uint64("seed", 1); err != nil {
		return o, err
	}
	return o, nil
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
