package decision

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCascade(t *testing.T) {
	c, err := ParseCascade("m/a + m/b>m/c")
	require.NoError(t, err)
	assert.Equal(t, Cascade{Agree: []string{"m/a", "m/b"}, Escalate: "m/c"}, c)
	assert.Equal(t, "cascade(m/a+m/b>m/c)", c.Name())
	for _, bad := range []string{"a>b", "a+b", "a+b>c>d", "a+a>c", "a+>c", "a+b>", "a+b>a"} {
		_, err := ParseCascade(bad)
		assert.Error(t, err, "ParseCascade(%q)", bad)
	}
}
