package neural

import (
	"fmt"
	"strconv"

	"github.com/routelab/routelab/policy"
)

// Builtins lists the policies of this package for a program to register
// beside policy.Builtins() (policy cannot import this package):
//
//	reg := policy.NewBuiltinRegistry()
//	for _, b := range neural.Builtins() {
//		reg.MustRegister(b.Name, b.Doc, b.Factory)
//	}
func Builtins() []policy.Builtin {
	return []policy.Builtin{{
		Name:    Name,
		Doc:     "NeuralLinear: ReLU net trained with gorgonia on replayed rewards + per-arm Bayesian linear regression on its last layer (explore=thompson|ucb, scale=0.25|0.5, draws=1 and noise=fixed|learn (thompson), hidden=64x32, lambda=1, retrain=500 doubling to retrain_max=8000, steps=200, batch=64, lr=0.003, l2=0, buffer=20000, async=false to train in the background, dim=0, seed)",
		Factory: Factory,
	}}
}

// Factory builds a NeuralLinear from registry parameters.
func Factory(ps policy.Params) (policy.Policy, error) {
	o, err := optsFromParams(ps)
	if err != nil {
		return nil, err
	}
	return NewNeuralLinear(o)
}

func optsFromParams(ps policy.Params) (Opts, error) {
	var o Opts
	var err error
	if err = ps.Check("dim", "hidden", "explore", "scale", "draws", "noise", "lambda", "retrain", "retrain_max", "steps", "batch", "lr", "l2", "buffer", "async", "seed"); err != nil {
		return o, err
	}
	if h, ok := ps["hidden"]; ok {
		if o.Hidden, err = parseHidden(h); err != nil {
			return o, err
		}
	}
	if o.Explore, err = ParseExplore(ps.String("explore", "thompson")); err != nil {
		return o, err
	}
	ints := []struct {
		key string
		dst *int
	}{{"dim", &o.Dim}, {"draws", &o.Draws}, {"retrain", &o.Retrain}, {"retrain_max", &o.RetrainMax}, {"steps", &o.Steps}, {"batch", &o.Batch}, {"buffer", &o.Buffer}}
	for _, f := range ints {
		if *f.dst, err = ps.Int(f.key, 0); err != nil {
			return o, err
		}
	}
	floats := []struct {
		key string
		dst *float64
	}{{"scale", &o.Scale}, {"lambda", &o.Lambda}, {"lr", &o.LR}, {"l2", &o.L2}}
	for _, f := range floats {
		if *f.dst, err = ps.Float(f.key, 0); err != nil {
			return o, err
		}
	}
	switch n := ps.String("noise", "fixed"); n {
	case "fixed":
	case "learn":
		o.LearnNoise = true
	default:
		return o, fmt.Errorf("noise %q: want fixed or learn", n)
	}
	if o.Async, err = strconv.ParseBool(ps.String("async", "false")); err != nil {
		return o, fmt.Errorf("async: %w", err)
	}
	if o.Seed, err = ps.Uint64("seed", 1); err != nil {
		return o, err
	}
	return o, nil
}
