package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

// checkedArtifact wraps the policy of an artifact evaluated on logs
// (`routelab replay --policy-file`): the logs record neither the encoder
// nor the reward they were written with, but every row's feature vector
// must have the artifact encoder's length and every candidate must be an
// arm the artifact knows; the first row that breaks either is an error
// naming both sides, never a silently wrong estimate.
type checkedArtifact struct {
	policy.Policy
	path  string
	a     *artifact.Artifact
	dim   int
	known map[string]bool
}

func newCheckedArtifact(p policy.Policy, a *artifact.Artifact, path string) (*checkedArtifact, error) {
	enc, err := policy.NewEncoder(a.Encoder)
	if err != nil {
		return nil, fmt.Errorf("--policy-file %s: %w", path, err)
	}
	known := make(map[string]bool, len(a.Catalogue))
	for _, id := range a.Catalogue {
		known[id] = true
	}
	return &checkedArtifact{Policy: p, path: path, a: a, dim: enc.Dim(), known: known}, nil
}

func (c *checkedArtifact) Select(ctx context.Context, f *decision.Features, cands []decision.Arm, probs []float64) (int, error) {
	if n := len(f.Vector); n != 0 && n != c.dim {
		return 0, fmt.Errorf("%w: --policy-file %s: the log's feature vectors have %d slots, the artifact's encoder %s has %d: the logs were written with another encoder than the artifact was trained with",
			artifact.ErrMismatch, c.path, n, c.a.Encoder.Canonical(), c.dim)
	}
	for _, a := range cands {
		if !c.known[a.ID] {
			return 0, fmt.Errorf("%w: --policy-file %s: the log's arm %q is not in the artifact's catalogue [%s]",
				artifact.ErrMismatch, c.path, a.ID, strings.Join(c.a.Catalogue, " "))
		}
	}
	return c.Policy.Select(ctx, f, cands, probs)
}
