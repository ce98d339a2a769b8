package datasets

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/routelab/routelab/decision"
)

const (
	costSuffix = "|total_cost"
	respSuffix = "|model_response"
)

// LoadRouterBench reads RouterBench CSV files (the RouterDC redistribution
// of the zero-shot split) into one Table named "routerbench". A path that is
// a directory stands for its *.csv files in name order. Every file must have
// the same models (in any column order); rows whose score is empty for some
// model are skipped and counted in Table.Skipped.
func LoadRouterBench(paths ...string) (*Table, error) {
	return LoadRouterBenchOpts(LoadOpts{}, paths...)
}

// LoadOpts makes loading stricter than the defaults.
type LoadOpts struct {
	// RejectMissing makes a row with an empty score an error (naming file,
	// line and column) instead of a skipped, counted row.
	RejectMissing bool
	// Models, when set, are the models the files must have (for example
	// those of a training table or an artifact): a file with other models
	// is an error naming the first column that differs.
	Models []string
}

// LoadRouterBenchOpts is LoadRouterBench with options.
func LoadRouterBenchOpts(o LoadOpts, paths ...string) (*Table, error) {
	files, err := expand(paths)
	if err != nil {
		return nil, err
	}
	t := &Table{Name: "routerbench", Models: slices.Clone(o.Models)}
	for _, f := range files {
		if err := readFile(f, t, func(r io.Reader, name string, t *Table) error { return parseRouterBench(r, name, t, o) }); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// expand replaces directories by their *.csv files, sorted.
func expand(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input file")
	}
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("benchmark input: %w", err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.csv"))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("benchmark input %s: no *.csv file in the directory", p)
		}
		slices.Sort(m)
		out = append(out, m...)
	}
	return out, nil
}

func readFile(path string, t *Table, parse func(io.Reader, string, *Table) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("benchmark input: %w", err)
	}
	defer f.Close()
	return parse(f, path, t)
}

// ParseRouterBench appends the rows of one RouterBench CSV, read from r and
// called name in errors, to t. When t has no models yet the file's models
// become t.Models; otherwise the file must have exactly those models. It
// reads one record at a time and keeps the prompt text but no response.
//
// The header must hold "prompt" and "eval_name", and for every model both a
// score column "<model>" and a cost column "<model>|total_cost"; the model
// columns are the names with a matching cost column. "sample_id" is
// optional (the line number stands in). "<model>|model_response" columns,
// when every model has one, are kept as each answer's AnswerKey hash
// (Row.Answers, for agreement cascades); the index and
// "oracle_model_to_route_to" are ignored; any other column is an error
// naming it.
func ParseRouterBench(r io.Reader, name string, t *Table) error {
	return parseRouterBench(r, name, t, LoadOpts{})
}

func parseRouterBench(r io.Reader, name string, t *Table, o LoadOpts) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	hdr, err := cr.Read()
	if err == io.EOF {
		return &ParseError{File: name, Line: 1, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return csvError(name, err)
	}
	col := map[string]int{}
	for i, h := range hdr {
		if _, dup := col[h]; dup && h != "" {
			return fieldError(name, cr, i, "header: duplicate column %q", h)
		}
		col[h] = i
	}
	need := func(c string) (int, error) {
		i, ok := col[c]
		if !ok {
			return 0, &ParseError{File: name, Line: 1, Err: fmt.Errorf("header: no %q column", c)}
		}
		return i, nil
	}
	promptCol, err := need("prompt")
	if err != nil {
		return err
	}
	taskCol, err := need("eval_name")
	if err != nil {
		return err
	}
	idCol, hasID := col["sample_id"]
	var models []string
	var scoreCol, costCol, respCol []int
	for i, h := range hdr {
		m, ok := strings.CutSuffix(h, costSuffix)
		if !ok {
			continue
		}
		sc, ok := col[m]
		if !ok || m == "" {
			return fieldError(name, cr, i, "header: cost column %q has no score column %q", h, m)
		}
		rc, ok := col[m+respSuffix]
		if !ok {
			rc = -1
		}
		models = append(models, m)
		scoreCol = append(scoreCol, sc)
		costCol = append(costCol, i)
		respCol = append(respCol, rc)
	}
	// Models keep the order of their score columns, not of the cost columns.
	order := make([]int, len(models))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return scoreCol[a] - scoreCol[b] })
	models = permute(models, order)
	scoreCol = permute(scoreCol, order)
	costCol = permute(costCol, order)
	respCol = permute(respCol, order)
	if len(models) == 0 {
		return &ParseError{File: name, Line: 1, Err: errors.New(`header: no model columns ("<model>" with "<model>|total_cost")`)}
	}
	for i, h := range hdr {
		switch {
		case h == "" || h == "sample_id" || h == "prompt" || h == "eval_name" || h == "oracle_model_to_route_to":
		case slices.Contains(models, h) || slices.Contains(models, strings.TrimSuffix(h, costSuffix)):
		case strings.HasSuffix(h, respSuffix) && slices.Contains(models, strings.TrimSuffix(h, respSuffix)):
		default:
			return fieldError(name, cr, i, "header: unknown column %q (want sample_id, prompt, eval_name, oracle_model_to_route_to, or <model>, <model>|total_cost, <model>|model_response of models %v)", h, models)
		}
	}
	// perm[j] is this file's index of t.Models[j].
	perm, err := matchModels(name, cr, t, models, scoreCol)
	if err != nil {
		return err
	}
	// Answers are kept (as AnswerKey hashes, for agreement cascades) when
	// every model has a response column in every file.
	hasAnswers := !slices.Contains(respCol, -1) && (len(t.Sources) == 0 || t.Answers)
	t.Answers = hasAnswers
	if !hasAnswers {
		for i := range t.Rows {
			t.Rows[i].Answers = nil
		}
	}
	t.Sources = append(t.Sources, name)
	k := len(t.Models)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		row := Row{Task: rec[taskCol], PromptTokens: len(rec[promptCol]) / 4, Prompt: strings.Clone(rec[promptCol])}
		if hasID {
			row.ID = rec[idCol]
		} else {
			row.ID = strconv.Itoa(line)
		}
		vals := make([]float64, 2*k)
		row.Scores, row.Costs = vals[:k:k], vals[k:]
		if hasAnswers {
			row.Answers = make([]uint64, k)
		}
		skip := false
		for j, fi := range perm {
			s := rec[scoreCol[fi]]
			if s == "" {
				if o.RejectMissing {
					return fieldError(name, cr, scoreCol[fi], "score of model %q is empty: a full-information table needs every model's score (skip such rows to evaluate anyway)", t.Models[j])
				}
				skip = true
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || !(v >= 0 && v <= 1) {
				return fieldError(name, cr, scoreCol[fi], "score %q of model %q: want a number in [0,1]", s, t.Models[j])
			}
			row.Scores[j] = v
			c := rec[costCol[fi]]
			v, err = strconv.ParseFloat(c, 64)
			if err != nil || !(v >= 0) || math.IsInf(v, 1) {
				return fieldError(name, cr, costCol[fi], "cost %q of model %q: want a finite number >= 0", c, t.Models[j])
			}
			row.Costs[j] = v
			if hasAnswers {
				row.Answers[j] = answerHash(decision.AnswerKey(unwrapPyList(rec[respCol[fi]])))
			}
		}
		if skip {
			t.Skipped++
			continue
		}
		t.Rows = append(t.Rows, row)
	}
}

// matchModels makes t.Models the file's models when t has none, else
// checks the file has the same set, and returns the file's index of every
// t.Models entry. cols are the models' header columns (for the error's
// position; nil for none).
func matchModels(name string, cr *csv.Reader, t *Table, models []string, cols []int) ([]int, error) {
	if len(t.Models) == 0 {
		t.Models = slices.Clone(models)
	}
	for i, m := range models {
		if !slices.Contains(t.Models, m) {
			pe := &ParseError{File: name, Line: 1, Err: fmt.Errorf("header: model %q is not one of the expected models %v", m, t.Models)}
			if cols != nil {
				pe.Line, pe.Column = cr.FieldPos(cols[i])
			}
			return nil, pe
		}
	}
	if len(models) != len(t.Models) {
		return nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("header: models %v differ from the earlier files' %v", models, t.Models)}
	}
	perm := make([]int, len(t.Models))
	for j, m := range t.Models {
		i := slices.Index(models, m)
		if i < 0 {
			return nil, &ParseError{File: name, Line: 1, Err: fmt.Errorf("header: model %q of the earlier files is missing (models %v)", m, models)}
		}
		perm[j] = i
	}
	return perm, nil
}

func permute[T any](s []T, order []int) []T {
	out := make([]T, len(s))
	for i, o := range order {
		out[i] = s[o]
	}
	return out
}
