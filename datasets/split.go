package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/routelab/routelab/policy"
)

// Split divides t into a training and a test table, stratified by task:
// within every task, a seeded random frac of the rows (rounded, at least
// one row on each side when the task has two or more) goes to train, the
// rest to test. Row order within each part follows t. The same seed and
// table give the same split.
func (t *Table) Split(frac float64, seed uint64) (train, test *Table, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("split %v: the training share must be in (0, 1)", frac)
	}
	if len(t.Rows) < 2 {
		return nil, nil, fmt.Errorf("split table %s: %d rows, need at least 2", t.Name, len(t.Rows))
	}
	rng := rand.New(rand.NewPCG(seed, 0x73706c6974))
	inTrain := make([]bool, len(t.Rows))
	for _, task := range t.Tasks() {
		var idx []int
		for i := range t.Rows {
			if t.Rows[i].Task == task {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		n := int(math.Round(frac * float64(len(idx))))
		if len(idx) >= 2 {
			n = min(max(n, 1), len(idx)-1)
		}
		for _, i := range idx[:n] {
			inTrain[i] = true
		}
	}
	var tr, te []int
	for i, in := range inTrain {
		if in {
			tr = append(tr, i)
		} else {
			te = append(te, i)
		}
	}
	return t.subset(tr, "train"), t.subset(te, "test"), nil
}

// subset is a table of t's rows idx (shared, not copied), named
// "<t.Name>/<part>".
func (t *Table) subset(idx []int, part string) *Table {
	s := &Table{Name: t.Name + "/" + part, Sources: t.Sources, Models: t.Models, Answers: t.Answers, Cascades: t.Cascades}
	s.Rows = make([]Row, len(idx))
	for j, i := range idx {
		s.Rows[j] = t.Rows[i]
	}
	return s
}

// TextEncoderSpec is t's EncoderSpec (intercept, task, prompt size) plus a
// text block ts whose IDF is fitted on t's prompts: call it on the
// training table only, so no evaluation prompt shapes the features. A ts
// without buckets and markers means no text block.
func (t *Table) TextEncoderSpec(ts policy.TextSpec) (policy.EncoderSpec, error) {
	spec := t.EncoderSpec()
	if ts.Buckets == 0 && !ts.Markers {
		return spec, nil // no text block
	}
	if ts.Buckets > 0 {
		var err error
		ts, err = policy.FitTextIDF(ts, func(yield func(string) bool) {
			for i := range t.Rows {
				if !yield(t.Rows[i].Prompt) {
					return
				}
			}
		})
		if err != nil {
			return spec, fmt.Errorf("table %s: %w", t.Name, err)
		}
	}
	spec.Text = &ts
	if _, err := policy.NewEncoder(spec); err != nil {
		return spec, fmt.Errorf("table %s: %w", t.Name, err)
	}
	return spec, nil
}

// SameModels reports, as an error naming both tables' sources, whether
// test has other models than train (names and order).
func SameModels(train, test *Table) error {
	if !slices.Equal(train.Models, test.Models) {
		return fmt.Errorf("test data %v: models %v differ from the training data's %v", test.Sources, test.Models, train.Models)
	}
	return nil
}
