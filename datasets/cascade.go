package datasets

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/routelab/routelab/decision"
)

// Cascade is decision.Cascade: the gateway's cascade models and the
// benchmark tables' cascade columns are one definition.
type Cascade = decision.Cascade

// ParseCascade is decision.ParseCascade.
func ParseCascade(s string) (Cascade, error) { return decision.ParseCascade(s) }

// AutoCascade picks a cascade from t alone (call it on the training
// table): the two models with the highest mean score among those whose
// mean cost per prompt is at most a tenth of the strongest model's agree,
// and the strongest model (highest mean score) is escalated to. It is an
// error when fewer than two models are that cheap.
func AutoCascade(t *Table) (Cascade, error) {
	fixed := fixedMeans(t)[:t.SingleModels()]
	strong, _ := Strongest(fixed)
	var cheap []int
	for m, f := range fixed {
		if m != strong && f.Cost <= fixed[strong].Cost/10 {
			cheap = append(cheap, m)
		}
	}
	if len(cheap) < 2 {
		return Cascade{}, fmt.Errorf("auto cascade on %s: %d models cost at most a tenth of the strongest (%s), need two", t.Name, len(cheap), t.Models[strong])
	}
	slices.SortStableFunc(cheap, func(a, b int) int {
		switch {
		case fixed[a].Quality > fixed[b].Quality:
			return -1
		case fixed[a].Quality < fixed[b].Quality:
			return 1
		}
		return 0
	})
	return Cascade{Agree: []string{t.Models[cheap[0]], t.Models[cheap[1]]}, Escalate: t.Models[strong]}, nil
}

// AddCascades appends every cascade of cs to t as a model. On each row its
// score is the first Agree model's when all Agree models' answers share a
// non-blank AnswerKey, else Escalate's; its cost is the sum of the Agree
// models' costs, plus Escalate's when they disagree; its answer is the one
// served. It needs the models' answers (Table.Answers) and changes
// nothing on error. Apply the same cascades to a training and a test
// table so that their models match.
func (t *Table) AddCascades(cs []Cascade) error {
	if len(cs) == 0 {
		return nil
	}
	if !t.Answers {
		return fmt.Errorf("cascades on %s %v: the table has no model responses to compare (RouterBench's <model>|model_response columns)", t.Name, t.Sources)
	}
	idx := make([][]int, len(cs))
	for i, c := range cs {
		if err := c.Validate(); err != nil {
			return err
		}
		if slices.Contains(t.Models, c.Name()) || slices.ContainsFunc(cs[:i], func(o Cascade) bool { return o.Name() == c.Name() }) {
			return fmt.Errorf("cascade %s: already a model of %s", c.Name(), t.Name)
		}
		single := t.SingleModels()
		for _, m := range c.Members() {
			j := slices.Index(t.Models, m)
			switch {
			case j < 0:
				return fmt.Errorf("cascade %s: model %q is not one of %s's models %v", c.Name(), m, t.Name, t.Models[:single])
			case j >= single:
				return fmt.Errorf("cascade %s: %q is itself a cascade; members must be single models (as in the gateway)", c.Name(), m)
			}
			idx[i] = append(idx[i], j)
		}
	}
	for r := range t.Rows {
		row := &t.Rows[r]
		for _, ix := range idx {
			agree, esc := ix[:len(ix)-1], ix[len(ix)-1]
			key, cost := row.Answers[agree[0]], 0.0
			for _, j := range agree {
				cost += row.Costs[j]
				if row.Answers[j] != key {
					key = 0
				}
			}
			served := agree[0]
			if key == 0 {
				served = esc
				cost += row.Costs[esc]
			}
			// Appending reallocates (the slices are full), so rows shared
			// with another table (Split's parts share their parent's) keep
			// their own models.
			row.Scores = append(row.Scores[:len(row.Scores):len(row.Scores)], row.Scores[served])
			row.Costs = append(row.Costs[:len(row.Costs):len(row.Costs)], cost)
			row.Answers = append(row.Answers[:len(row.Answers):len(row.Answers)], row.Answers[served])
		}
	}
	models := slices.Clone(t.Models)
	for _, c := range cs {
		models = append(models, c.Name())
	}
	t.Models = models
	t.Cascades = append(slices.Clone(t.Cascades), cs...)
	return nil
}

// answerHash is the FNV-1a hash of an AnswerKey, 0 for a blank answer
// (and never 0 otherwise).
func answerHash(key string) uint64 {
	if key == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return max(h.Sum64(), 1)
}

// unwrapPyList reads RouterBench's response cells, which hold a Python
// list of one string ("['D']", "[\"Here's …\"]"): it returns the first
// string decoded, or the cell itself when it is not in that form.
func unwrapPyList(cell string) string {
	s := strings.TrimSpace(cell)
	if len(s) < 4 || s[0] != '[' || s[len(s)-1] != ']' {
		return cell
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	out, err := pyString(s)
	if err != nil {
		return cell
	}
	return out
}

var errNotPyString = errors.New("not a Python string literal")

// pyString decodes the Python string literal at the start of s (quoted
// with ' or ", backslash escapes as Python's repr writes them).
func pyString(s string) (string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') {
		return "", errNotPyString
	}
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			return "", errNotPyString
		}
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n >= len(s) {
				return "", errNotPyString
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", errNotPyString
			}
			b.WriteRune(rune(v))
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return "", errNotPyString
}
