package mask

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaskFindings(t *testing.T) {
	m, err := New(Opts{})
	require.NoError(t, err)
	for _, tc := range []struct{ in, want string }{
		{"api_token=ghp_0123456789abcdefghijABCDEFGHIJ", "api_token=[REDACTED:credential]"},
		{"uses ghp_0123456789abcdefghijABCDEFGHIJ here", "uses [REDACTED:api_key] here"},
		{"key sk-proj-abcdefghijklmnop1234", "key [REDACTED:api_key]"},
		{"AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws]"},
		{"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key=[REDACTED:cloud]"},
		{"gkey AIzaSyA1234567890abcdefghijklmnopqrstuv", "gkey [REDACTED:cloud]"},
		{"contact=alice.smith@example.co.uk", "contact=[REDACTED:email]"},
		{"ssn=123-45-6789", "ssn=[REDACTED:ssn]"},
		{"id 123-45-6789", "id [REDACTED:ssn]"},
		{"card 4111 1111 1111 1111 ok", "card [REDACTED:card] ok"},
		{"card=4111111111111111", "card=[REDACTED:card]"},
		{"phone=+1 415-555-2671", "phone=[REDACTED:phone]"},
		{"password: hunter2", "password: [REDACTED:credential]"},
		{"-----BEGIN RSA PRIVATE KEY-----", "[REDACTED:cloud]"},
		// Left alone.
		{"env=prod", "env=prod"},
		{"team-a", "team-a"},
		{"order=4111111111111112", "order=4111111111111112"}, // fails Luhn
		{"build=2024-06-01", "build=2024-06-01"},
		{"plain words only", "plain words only"},
	} {
		assert.Equal(t, tc.want, m.String(tc.in), "input %q", tc.in)
	}
}

func TestMaskDetectorSelection(t *testing.T) {
	m, err := New(Opts{Detectors: []string{Email}})
	require.NoError(t, err)
	assert.Equal(t, "[REDACTED:email] AKIAIOSFODNN7EXAMPLE", m.String("bob@example.com AKIAIOSFODNN7EXAMPLE"))
	_, err = New(Opts{Detectors: []string{"emails"}})
	require.ErrorContains(t, err, `unknown detector "emails"`)
	var nilM *Masker
	assert.Equal(t, "a@b.cd", nilM.String("a@b.cd"))
}

func TestMaskNoAllocWhenClean(t *testing.T) {
	m, _ := New(Opts{})
	s := "region=eu-west-1"
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = m.String(s) }))
}

func TestLuhn(t *testing.T) {
	assert.True(t, luhn("4111111111111111"))
	assert.True(t, luhn("5500-0000-0000-0004"))
	assert.False(t, luhn("4111111111111112"))
	assert.False(t, luhn(strings.Repeat("0", 12)))
}

// BenchmarkMaskTag reports ns per tag: typical clean tags, and tags
// holding a secret (which allocate the masked copy).
func BenchmarkMaskTag(b *testing.B) {
	m, _ := New(Opts{})
	for _, bc := range []struct {
		name string
		tags []string
	}{
		{"clean", []string{"env=prod", "region=eu-west-1", "feature", "order=12345", "exp=b", "team=search"}},
		{"secret", []string{"user=alice@example.com", "api_token=ghp_0123456789abcdefghijABCDEFGHIJ", "ssn=123-45-6789", "card=4111111111111111"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = m.String(bc.tags[i%len(bc.tags)])
			}
		})
	}
}

// FuzzMask: any input masks without panicking, keeps valid UTF-8 valid,
// and a secret appended as a word is always masked.
func FuzzMask(f *testing.F) {
	for _, s := range []string{"api_token=ghp_0123456789abcdefghijABCDEFGHIJ", "bob@example.com", "4111 1111 1111 1111", "ssn=1", "é=é", "AKIAIOSFODNN7EXAMPLE"} {
		f.Add(s)
	}
	m, _ := New(Opts{})
	f.Fuzz(func(t *testing.T, s string) {
		out := m.String(s)
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("%q masked to invalid UTF-8 %q", s, out)
		}
		// A key standing as its own word is masked whatever surrounds it.
		if out := m.String(s + " AKIAIOSFODNN7EXAMPLE "); strings.Contains(out, "AKIAIOSFODNN7EXAMPLE") {
			t.Fatalf("%q + key kept the AWS key: %q", s, out)
		}
	})
}
