package datasets

import (
	"encoding/csv"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadRouteLLM reads RouteLLM's MMLU responses: every *.csv file of dir
// (one per subject, "mmlu_<subject>.csv"), each with a "prompt" column and
// one True/False correctness column per model. The table is named
// "routellm-mmlu"; a row's Task is its subject and its ID "subject/index".
//
// The data has no costs: every cost is 0 until WithPromptPrices sets them
// from a price profile.
func LoadRouteLLM(dir string) (*Table, error) {
	files, err := expand([]string{dir})
	if err != nil {
		return nil, err
	}
	t := &Table{Name: "routellm-mmlu"}
	for _, f := range files {
		if err := readFile(f, t, ParseRouteLLM); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// subject is the MMLU subject a file name stands for: base name without
// ".csv" and without a "mmlu_" prefix.
func subject(name string) string {
	s := strings.TrimSuffix(filepath.Base(name), ".csv")
	return strings.TrimPrefix(s, "mmlu_")
}

// ParseRouteLLM appends the rows of one RouteLLM MMLU CSV, read from r and
// called name (its subject comes from the name), to t; see LoadRouteLLM.
// Correctness flags are what strconv.ParseBool accepts (True, False, 1,
// 0, ...) and become scores 1 and 0.
func ParseRouteLLM(r io.Reader, name string, t *Table) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	hdr, err := cr.Read()
	if err == io.EOF {
		return &ParseError{File: name, Line: 1, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return csvError(name, err)
	}
	if hdr[0] != "prompt" {
		return fieldError(name, cr, 0, "header: first column %q, want \"prompt\"", hdr[0])
	}
	if len(hdr) < 2 {
		return &ParseError{File: name, Line: 1, Err: errors.New("header: no model columns after \"prompt\"")}
	}
	models := hdr[1:]
	for i, m := range models {
		if m == "" {
			return fieldError(name, cr, i+1, "header: empty model name")
		}
	}
	cols := make([]int, len(models))
	for i := range cols {
		cols[i] = i + 1
	}
	perm, err := matchModels(name, cr, t, models, cols)
	if err != nil {
		return err
	}
	t.Sources = append(t.Sources, name)
	subj := subject(name)
	k := len(t.Models)
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(name, err)
		}
		vals := make([]float64, 2*k)
		row := Row{ID: subj + "/" + strconv.Itoa(n), Task: subj, PromptTokens: len(rec[0]) / 4, Prompt: strings.Clone(rec[0]),
			Scores: vals[:k:k], Costs: vals[k:]}
		for j, fi := range perm {
			b, err := strconv.ParseBool(rec[fi+1])
			if err != nil {
				return fieldError(name, cr, fi+1, "correctness %q of model %q: want True or False", rec[fi+1], t.Models[j])
			}
			if b {
				row.Scores[j] = 1
			}
		}
		t.Rows = append(t.Rows, row)
	}
}
