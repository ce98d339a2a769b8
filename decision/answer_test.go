package decision

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAnswerKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"B", "choice:B"},
		{" B\n", "choice:B"},
		{"(C)", "choice:C"},
		{"D) The availability of clean resources", "choice:D"},
		{"A.", "choice:A"},
		{"B: Logan", "choice:B"},
		{"A\nBecause the caffeine …", "choice:A"},
		{"I think it is B", "text:i think it is b"},
		{"a", "text:a"},
		{"Paris.", "text:paris"},
		{"  The   Answer\tis\n42. ", "text:the answer is 42"},
		{"", ""},
		{" \n\t", ""},
		{"(", "text:("},
		{"...", ""},
	} {
		assert.Equal(t, c.want, AnswerKey(c.in), "AnswerKey(%q)", c.in)
	}
}

func TestAgree(t *testing.T) {
	assert.True(t, Agree("B", "B)\n"), "same choice")
	assert.True(t, Agree("def f(x):\n  return x", "def  f(x): return x"), "same text up to white space")
	assert.False(t, Agree("A", "B"), "different choices")
	assert.False(t, Agree("", ""), "blank answers agree with nothing")
	assert.False(t, Agree("B", "B is wrong, A"), "a choice and a text")
}

func FuzzAnswerKey(f *testing.F) {
	for _, s := range []string{"B", "(C)", "x", "", "É", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := AnswerKey(s)
		if AnswerKey(s) != k {
			t.Fatalf("AnswerKey(%q) not deterministic", s)
		}
		if k != "" && !strings.HasPrefix(k, "text:") && !strings.HasPrefix(k, "choice:") {
			t.Fatalf("AnswerKey(%q) = %q: no kind prefix", s, k)
		}
	})
}
