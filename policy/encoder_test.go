package policy_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testEncoder(t testing.TB) *policy.FeatureEncoder {
	e, err := policy.NewFeatureEncoder(policy.EncoderOpts{
		Intercept:    true,
		Tasks:        []string{"code", "chat"},
		TokenBuckets: []int{100, 1000},
		HourBuckets:  4,
		HourCyclic:   true,
		Tenants:      []string{"acme"},
		Tags:         []string{"tier=gold", "lang=de"},
	})
	require.NoError(t, err)
	return e
}

func TestFeatureEncoderLayout(t *testing.T) {
	e := testEncoder(t)
	// 1 + 3 + 3 + 4 + 2 + 2 + 2
	require.Equal(t, 17, e.Dim())
	assert.Equal(t, []string{"intercept", "task=code", "task=chat", "task=other",
		"tokens<=100", "tokens<=1000", "tokens>1000",
		"hour=00-06", "hour=06-12", "hour=12-18", "hour=18-24",
		"time_sin", "time_cos", "tenant=acme", "tenant=other", "tag=tier=gold", "tag=lang=de"}, e.Names())

	noon := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    *policy.Features
		want []float64
	}{
		{"unknown", &policy.Features{}, []float64{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"nil", nil, []float64{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}},
		{"full", &policy.Features{Task: "chat", PromptTokens: 100, Time: noon, Tenant: "acme", Tags: []string{"lang=de", "x=y"}},
			[]float64{1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, math.Sin(math.Pi), -1, 1, 0, 0, 1}},
		{"big other-task", &policy.Features{Task: "math", PromptTokens: 5000, Tenant: "zeta", Tags: []string{"tier=gold"}},
			[]float64{1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.Encode(tc.f, nil)
			require.Len(t, got, e.Dim())
			assert.InDeltaSlice(t, tc.want, got, 1e-12)
		})
	}
	// Time zones do not matter: the encoder uses UTC.
	berlin := time.FixedZone("CET", 3600)
	a := e.Encode(&policy.Features{Time: noon}, nil)
	b := e.Encode(&policy.Features{Time: noon.In(berlin)}, nil)
	assert.Equal(t, a, b)
}

func TestFeatureEncoderTenantHash(t *testing.T) {
	e, err := policy.NewFeatureEncoder(policy.EncoderOpts{TenantBuckets: 8})
	require.NoError(t, err)
	assert.Equal(t, make([]float64, 8), e.Encode(&policy.Features{}, nil), "unknown tenant is all zero")
	v := e.Encode(&policy.Features{Tenant: "acme"}, nil)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	assert.Equal(t, 1.0, sum)
	assert.Equal(t, v, e.Encode(&policy.Features{Tenant: "acme"}, make([]float64, 3)), "stable hash")
}

func TestFeatureEncoderReusesDst(t *testing.T) {
	e := testEncoder(t)
	dst := make([]float64, 0, 64)
	f := &policy.Features{Task: "code", PromptTokens: 3000, Time: time.Unix(1e9, 0), Tenant: "acme", Tags: []string{"tier=gold"}}
	allocs := testing.AllocsPerRun(100, func() { dst = e.Encode(f, dst[:0]) })
	assert.Zero(t, allocs)
	// Stale values in dst are cleared.
	for i := range dst[:cap(dst)] {
		dst[:cap(dst)][i] = 9
	}
	got := e.Encode(&policy.Features{}, dst[:0])
	assert.Equal(t, 1.0, got[0])
	assert.Equal(t, 0.0, got[1])
}

func TestFeatureEncoderErrors(t *testing.T) {
	for _, tc := range []struct {
		o    policy.EncoderOpts
		want string
	}{
		{policy.EncoderOpts{}, "dimension 0"},
		{policy.EncoderOpts{Tasks: []string{"a", "a"}}, `tasks[1]: "a" listed twice`},
		{policy.EncoderOpts{TokenBuckets: []int{10, 10}}, "token_buckets[1] = 10"},
		{policy.EncoderOpts{TokenBuckets: []int{-1}}, "token_buckets[0] = -1"},
		{policy.EncoderOpts{HourBuckets: 5}, "hour_buckets 5"},
		{policy.EncoderOpts{TenantBuckets: -2}, "tenant_buckets -2"},
		{policy.EncoderOpts{Tenants: []string{"a"}, TenantBuckets: 2}, "mutually exclusive"},
	} {
		_, err := policy.NewFeatureEncoder(tc.o)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func ExampleFeatureEncoder() {
	e, _ := policy.NewFeatureEncoder(policy.EncoderOpts{
		Intercept:    true,
		Tasks:        []string{"code", "chat"},
		TokenBuckets: []int{512},
	})
	v := e.Encode(&policy.Features{Task: "chat", PromptTokens: 2000}, nil)
	for i, name := range e.Names() {
		fmt.Printf("%-12s %v\n", name, v[i])
	}
	// Output:
	// intercept    1
	// task=code    0
	// task=chat    1
	// task=other   0
	// tokens<=512  0
	// tokens>512   1
}
