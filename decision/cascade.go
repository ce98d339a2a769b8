package decision

import (
	"fmt"
	"slices"
	"strings"
)

// Cascade is an agreement cascade: ask every Agree model; when their
// answers share one AnswerKey, serve the first one's answer; otherwise
// ask Escalate and serve its answer. The cost is what was asked: every
// Agree model, plus Escalate when they disagree. A gateway catalogue
// model with a cascade: block serves one, and a benchmark table
// (package datasets) can carry one as a column; both decide agreement
// with AnswerKey.
type Cascade struct {
	Agree    []string `json:"agree" yaml:"agree"`
	Escalate string   `json:"escalate" yaml:"escalate"`
}

// Name is the cascade's model name in a benchmark table:
// "cascade(A+B>C)".
func (c Cascade) Name() string {
	return "cascade(" + strings.Join(c.Agree, "+") + ">" + c.Escalate + ")"
}

// Members are every model the cascade may ask: the agree models, then
// the escalate model (a new slice).
func (c Cascade) Members() []string {
	return append(slices.Clone(c.Agree), c.Escalate)
}

// ParseCascade reads "A+B>C" (agree on A and B, else escalate to C).
// Model names may not hold '+' or '>'.
func ParseCascade(s string) (Cascade, error) {
	ag, esc, ok := strings.Cut(s, ">")
	if !ok || strings.Contains(esc, ">") {
		return Cascade{}, fmt.Errorf("cascade %q: want AGREE+AGREE>ESCALATE (one '>')", s)
	}
	c := Cascade{Escalate: strings.TrimSpace(esc)}
	for _, m := range strings.Split(ag, "+") {
		c.Agree = append(c.Agree, strings.TrimSpace(m))
	}
	return c, c.Validate()
}

// Validate checks that at least two models agree, that no name is empty
// and that no model is named twice (Escalate included).
func (c Cascade) Validate() error {
	if len(c.Agree) < 2 {
		return fmt.Errorf("cascade %s: needs at least two models to agree, has %d", c.Name(), len(c.Agree))
	}
	all := c.Members()
	for i, m := range all {
		if m == "" {
			return fmt.Errorf("cascade %s: empty model name", c.Name())
		}
		if slices.Contains(all[:i], m) {
			return fmt.Errorf("cascade %s: model %q named twice", c.Name(), m)
		}
	}
	return nil
}
