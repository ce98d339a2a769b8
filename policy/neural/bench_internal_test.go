package neural

import (
	"context"
	"math/rand/v2"
	"testing"
)

// BenchmarkTrainRound is one training round (gorgonia graph, tape machine,
// 100 Adam steps of 64 rows) of a 32→64→32 network with 8 heads.
func BenchmarkTrainRound(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dim, arms = 32, 8
	d := &dataset{dim: dim}
	x := make([]float64, dim)
	for i := 0; i < 4096; i++ {
		clear(x)
		x[0], x[1+rng.IntN(4)], x[5+rng.IntN(6)], x[11+rng.IntN(4)], x[15+rng.IntN(17)] = 1, 1, 1, 1, 1
		d.add(x, rng.IntN(arms), rng.Float64(), 1)
	}
	m := newMLP(dim, []int{64, 32}, rng).withArms(arms)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := train(context.Background(), m, d, trainOpts{Steps: 100, Batch: 64, LR: 0.005}, rng); err != nil {
			b.Fatal(err)
		}
	}
}
