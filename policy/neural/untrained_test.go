package neural_test

import (
	"math/rand/v2"
	"testing"

	"github.com/routelab/routelab/policy/neural"
	"github.com/stretchr/testify/require"
)

// smallLR is small with another learning rate.
func smallLR(t *testing.T, lr string) *neural.NeuralLinear {
	t.Helper()
	p, err := registry().NewFromString("neural-linear=hidden:16x8;retrain:50;retrain_max:100;steps:40;batch:32;lr:" + lr + ";seed:7;explore:thompson")
	require.NoError(t, err)
	return p.(*neural.NeuralLinear)
}

// TestTrainingIsWhatLearnsParity is the ablation of TestOnlineLearnsParity:
// the same policy with training effectively off (lr 1e-9: the ReLU layers
// keep their random initialisation) must NOT reach the trained network's
// loss on the parity problem, which no linear head on these random
// features fits. It keeps the parity test honest: that test passes because
// gorgonia training works, not because random features suffice. (In the
// simulator they often do suffice: see experiments/reports/neural-ablation.)
func TestTrainingIsWhatLearnsParity(t *testing.T) {
	trained, untrained := smallLR(t, "0.01"), smallLR(t, "1e-9")
	drive(t, trained, rand.New(rand.NewPCG(1, 1)), 1500)
	drive(t, untrained, rand.New(rand.NewPCG(1, 1)), 1500)
	lt, lu := trained.Stats().Last.LossAfter, untrained.Stats().Last.LossAfter
	t.Logf("last round's loss: trained %.4f, untrained %.4f", lt, lu)
	if lt >= 0.03 {
		t.Errorf("trained loss %.4f, want < 0.03 (noise variance 0.01)", lt)
	}
	if lu < 3*lt {
		t.Errorf("untrained loss %.4f is within 3× of the trained %.4f: training is not what fits parity", lu, lt)
	}
}
