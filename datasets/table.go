package datasets

import (
	"encoding/csv"
	"errors"
	"fmt"
	"slices"

	"github.com/routelab/routelab/policy"
)

// Table is a full-information outcome table: for every prompt (Row), the
// score and cost of every model, and the prompt text (for text features).
// Response texts are not kept, only a hash of each answer's
// decision.AnswerKey when the files have them (Answers).
type Table struct {
	// Name is the benchmark ("routerbench", "routellm-mmlu").
	Name string
	// Sources are the files read, in reading order.
	Sources []string
	// Models are the model names, in the order of Row.Scores and Row.Costs.
	Models []string
	Rows   []Row
	// Skipped counts rows left out because a model's score was empty
	// (RouterBench has a few prompts some models never answered); a
	// full-information evaluation needs every model's outcome.
	Skipped int
	// Answers is true when every row has Row.Answers (RouterBench files
	// with every model's response column).
	Answers bool
	// Cascades are the agreement cascades added as models (AddCascades):
	// the last len(Cascades) entries of Models, in order.
	Cascades []Cascade
}

// SingleModels is how many of Models are single models: the first ones,
// before the cascades.
func (t *Table) SingleModels() int { return len(t.Models) - len(t.Cascades) }

// Row is one prompt's outcome for every model of its Table.
type Row struct {
	// ID is the benchmark's sample id (RouterBench) or "subject/index"
	// (RouteLLM MMLU, 0-based data row of the subject's file).
	ID string
	// Task is RouterBench's eval_name or the MMLU subject.
	Task string
	// PromptTokens estimates the prompt's size: len(prompt)/4 bytes.
	PromptTokens int
	// Prompt is the prompt text, for encoders with a text block.
	Prompt string
	// Scores[i] in [0,1] is Models[i]'s score on the prompt.
	Scores []float64
	// Costs[i] >= 0 is what Models[i]'s answer cost in US dollars.
	Costs []float64
	// Answers[i] is a hash of decision.AnswerKey of Models[i]'s answer (0
	// for a blank one); nil when the table has no responses.
	Answers []uint64
}

// BenchTokenBuckets split benchmark prompts (a few tokens to about 2k)
// into equal-width log-size buckets; policy.DefaultTokenBuckets starts at
// 128 and would lump most RouterBench prompts together.
var BenchTokenBuckets = []int{64, 128, 256, 512, 1024, 2048}

// EncoderSpec is the feature encoder of the table's requests: an intercept,
// one-hot task over Tasks() and prompt-size buckets (BenchTokenBuckets).
// Benchmark rows carry no tenant or time, so the spec has no such blocks.
// Evaluate fills Features exactly as the simulator and the gateway do for
// the task and prompt size, so a policy fed one spec sees one vector.
func (t *Table) EncoderSpec() policy.EncoderSpec {
	return policy.EncoderSpec{
		Intercept:    true,
		Tasks:        t.Tasks(),
		TokenBuckets: append([]int(nil), BenchTokenBuckets...),
	}
}

// Tasks returns the distinct tasks of the table, sorted.
func (t *Table) Tasks() []string {
	seen := map[string]bool{}
	var out []string
	for i := range t.Rows {
		if !seen[t.Rows[i].Task] {
			seen[t.Rows[i].Task] = true
			out = append(out, t.Rows[i].Task)
		}
	}
	slices.Sort(out)
	return out
}

// WithPromptPrices sets every row's cost of each priced model to
// PromptTokens/1000 × its price in US dollars per 1,000 tokens. It is for
// tables without costs (RouteLLM MMLU): prompt tokens only, because the
// answers' lengths are not recorded. A price for an unknown model, or a
// negative or non-finite price, is an error and changes nothing.
func (t *Table) WithPromptPrices(perK map[string]float64) error {
	return t.withPrices(perK, func(r *Row, p float64) float64 { return float64(r.PromptTokens) / 1000 * p })
}

// WithRequestPrices sets every row's cost of each priced model to its
// price in US dollars per request, whatever the prompt: with two models,
// a router's mean cost is then affine in its share of calls to the
// dearer one, so cost axes read as RouteLLM's "calls to the strong model".
// Errors as WithPromptPrices.
func (t *Table) WithRequestPrices(perReq map[string]float64) error {
	return t.withPrices(perReq, func(_ *Row, p float64) float64 { return p })
}

// withPrices validates prices and sets each priced model's cost of every
// row to cost(row, price).
func (t *Table) withPrices(prices map[string]float64, cost func(*Row, float64) float64) error {
	idx := make(map[string]int, len(prices))
	for m, p := range prices {
		i := slices.Index(t.Models, m)
		if i < 0 {
			return fmt.Errorf("price for model %q: not a model of table %s (models %v)", m, t.Name, t.Models)
		}
		if !(p >= 0) || p > 1e9 {
			return fmt.Errorf("price %v for model %q: must be a finite number >= 0", p, m)
		}
		idx[m] = i
	}
	for m, i := range idx {
		for r := range t.Rows {
			t.Rows[r].Costs[i] = cost(&t.Rows[r], prices[m])
		}
	}
	return nil
}

// ErrFormat is wrapped by every *ParseError.
var ErrFormat = errors.New("malformed benchmark table")

// ParseError locates a malformed input: file, 1-based line and column
// (column in bytes, as encoding/csv counts; 0 when it is the whole line).
type ParseError struct {
	File         string
	Line, Column int
	Err          error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %v", e.File, e.Line, e.Column, e.Err)
}

func (e *ParseError) Unwrap() []error { return []error{ErrFormat, e.Err} }

// csvError turns an encoding/csv error into a *ParseError for file.
func csvError(file string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{File: file, Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return fmt.Errorf("read %s: %w", file, err)
}

// fieldError is a *ParseError at field i of r's last record.
func fieldError(file string, r *csv.Reader, i int, format string, args ...any) error {
	line, col := r.FieldPos(i)
	return &ParseError{File: file, Line: line, Column: col, Err: fmt.Errorf(format, args...)}
}
