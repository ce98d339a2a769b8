package neural_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy/neural"
)

// benchSetup returns a 32→64→32 NeuralLinear that has learnt from 2000
// rewards over K = 8 arms, and 256 one-hot-like 32-dim contexts (5 of 32
// entries set, as an encoder's blocks produce). Training rounds are
// pushed beyond the benchmark so Update is measured on its own.
func benchSetup(b *testing.B, o neural.Opts) (*neural.NeuralLinear, []decision.Arm, []decision.Features) {
	o.Dim, o.Retrain, o.Seed = 32, 1<<30, 1
	p, err := neural.NewNeuralLinear(o)
	if err != nil {
		b.Fatal(err)
	}
	cands := make([]decision.Arm, 8)
	for i := range cands {
		cands[i].ID = fmt.Sprint("arm", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fs := make([]decision.Features, 256)
	for i := range fs {
		x := make([]float64, 32)
		x[0], x[1+rng.IntN(4)], x[5+rng.IntN(6)], x[11+rng.IntN(4)], x[15+rng.IntN(17)] = 1, 1, 1, 1, 1
		fs[i].Vector = x
	}
	for i := 0; i < 2000; i++ {
		if err := p.Update(&fs[i%len(fs)], cands, i%8, rng.Float64()); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := p.Train(context.Background()); err != nil {
		b.Fatal(err)
	}
	return p, cands, fs
}

func BenchmarkSelect(b *testing.B) {
	for _, tc := range []struct {
		name string
		o    neural.Opts
	}{
		{"thompson", neural.Opts{}},
		{"ucb", neural.Opts{Explore: neural.UCB}},
		{"thompson-noise", neural.Opts{LearnNoise: true}},
		{"thompson-draws8", neural.Opts{Draws: 8}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, cands, fs := benchSetup(b, tc.o)
			probs := make([]float64, len(cands))
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Select(ctx, &fs[i%len(fs)], cands, probs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSelectParallel(b *testing.B) {
	p, cands, fs := benchSetup(b, neural.Opts{})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		probs := make([]float64, len(cands))
		i := 0
		for pb.Next() {
			if _, err := p.Select(context.Background(), &fs[i%len(fs)], cands, probs); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	p, cands, fs := benchSetup(b, neural.Opts{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.Update(&fs[i%len(fs)], cands, i%8, 0.5); err != nil {
			b.Fatal(err)
		}
	}
}
