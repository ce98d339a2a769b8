package decision

import (
	"strings"
	"unicode"
)

// AnswerKey is what two answers must share to count as the same answer in
// an agreement cascade (a model's answer is accepted when the cheap models
// asked agree on it; otherwise the request escalates). The gateway's
// cascade models and the benchmark evaluation (package datasets) both
// compare answers with it, so a cascade evaluated offline is the one
// served.
//
// An answer that starts with a single capital letter standing alone —
// "B", "B)", "(B)", "B.", "B: Logan", "B\n…" — is the multiple-choice
// answer "choice:B". Any other answer is its text, case-folded, with runs
// of white space made one space and trailing full stops dropped:
// "text:…". An empty or all-blank answer, or one of only full stops, is
// "" and agrees with nothing.
func AnswerKey(answer string) string {
	s := strings.TrimSpace(answer)
	if s == "" {
		return ""
	}
	if c, ok := choiceLetter(s); ok {
		return "choice:" + string(c)
	}
	var b strings.Builder
	b.Grow(len(s) + 5)
	b.WriteString("text:")
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	k := strings.TrimRight(b.String(), ".")
	if k == "text:" {
		return "" // only full stops: no answer
	}
	return k
}

// Agree reports whether two answers are the same by AnswerKey. Blank
// answers never agree.
func Agree(a, b string) bool {
	ka := AnswerKey(a)
	return ka != "" && ka == AnswerKey(b)
}

// choiceLetter reads a multiple-choice answer: an optional "(", one
// capital A–Z, then the end, a line break or one of ")", ".", ":", ",".
// A capital followed by a space is not a choice ("I think …", "A cat …").
func choiceLetter(s string) (byte, bool) {
	if s[0] == '(' {
		s = s[1:]
	}
	if len(s) == 0 || s[0] < 'A' || s[0] > 'Z' {
		return 0, false
	}
	if len(s) == 1 {
		return s[0], true
	}
	switch s[1] {
	case ')', '.', ':', ',', '\n', '\r':
		return s[0], true
	}
	return 0, false
}
