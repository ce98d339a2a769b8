package policy_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testEncoder(t testing.TB) *policy.FeatureEncoder {
	e, err := policy.NewEncoder(policy.EncoderSpec{
		Intercept:     true,
		Tasks:         []string{"code", "chat"},
		TokenBuckets:  []int{100, 1000},
		HourBuckets:   4,
		HourCyclic:    true,
		TenantBuckets: 2,
		Tags:          []string{"tier=gold", "lang=de"},
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
		"time_sin", "time_cos", "tenant#0", "tenant#1", "tag=tier=gold", "tag=lang=de"}, e.Names())

	noon := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    *decision.Features
		want []float64
	}{
		{"unknown", &decision.Features{}, []float64{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"nil", nil, []float64{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"full", &decision.Features{Task: "chat", PromptTokens: 100, Time: noon, Tenant: "acme", Tags: []string{"lang=de", "x=y"}},
			[]float64{1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, math.Sin(math.Pi), -1, 0, 1, 0, 1}},
		{"big other-task", &decision.Features{Task: "math", PromptTokens: 5000, Tenant: "zeta", Tags: []string{"tier=gold"}},
			[]float64{1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0}}, // FNV-1a("zeta") % 2 = 1
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
	a := e.Encode(&decision.Features{Time: noon}, nil)
	b := e.Encode(&decision.Features{Time: noon.In(berlin)}, nil)
	assert.Equal(t, a, b)
}

func TestFeatureEncoderTenantHash(t *testing.T) {
	e, err := policy.NewEncoder(policy.EncoderSpec{TenantBuckets: 8})
	require.NoError(t, err)
	assert.Equal(t, make([]float64, 8), e.Encode(&decision.Features{}, nil), "unknown tenant is all zero")
	v := e.Encode(&decision.Features{Tenant: "acme"}, nil)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	assert.Equal(t, 1.0, sum)
	assert.Equal(t, v, e.Encode(&decision.Features{Tenant: "acme"}, make([]float64, 3)), "stable hash")
	// The documented hash: 32-bit FNV-1a, unseeded (known test vectors).
	assert.Equal(t, uint32(0x811c9dc5), policy.TenantHash(""))
	assert.Equal(t, uint32(0xe40c292c), policy.TenantHash("a"))
	assert.Equal(t, uint32(0xbf9cf968), policy.TenantHash("foobar"))
	assert.Equal(t, 1.0, v[policy.TenantHash("acme")%8])
}

func TestEncoderSpecRoundTrip(t *testing.T) {
	spec := policy.DefaultEncoderSpec([]string{"code", "chat"})
	spec.Tags = []string{"tier=gold"}
	spec.Crosses = [][]string{{"task", "tenant"}}
	e, err := policy.NewEncoder(spec)
	require.NoError(t, err)
	got := e.Spec()
	assert.True(t, got.Equal(spec))
	assert.Equal(t, 1, got.Version, "a spec without a text block is version 1")
	// Version 0 means the current version.
	unversioned := spec.Clone()
	unversioned.Version = 0
	assert.True(t, unversioned.Equal(spec))
	// The spec is copied: mutating the caller's slices changes nothing.
	spec.Tasks[0] = "math"
	assert.Equal(t, "code", e.Spec().Tasks[0])
	assert.False(t, e.Spec().Equal(spec))
	// JSON round trip rebuilds an identical encoder.
	b, err := json.Marshal(e.Spec())
	require.NoError(t, err)
	var back policy.EncoderSpec
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, string(e.Spec().Canonical()), string(back.Canonical()))
	e2, err := policy.NewEncoder(back)
	require.NoError(t, err)
	f := &decision.Features{Task: "chat", PromptTokens: 900, Time: time.Unix(1e9, 0), Tenant: "acme", Tags: []string{"tier=gold"}}
	assert.Equal(t, e.Encode(f, nil), e2.Encode(f, nil))
	assert.Equal(t, e.Names(), e2.Names())
	assert.JSONEq(t, `{"version":1,"intercept":true,"tasks":["code","chat"],"token_buckets":[128,512,2048,8192,32768],"hour_buckets":4,"tenant_buckets":8,"tags":["tier=gold"],"crosses":[["task","tenant"]]}`, string(e.Spec().Canonical()))
}

func TestFeatureEncoderReusesDst(t *testing.T) {
	e := testEncoder(t)
	dst := make([]float64, 0, 64)
	f := &decision.Features{Task: "code", PromptTokens: 3000, Time: time.Unix(1e9, 0), Tenant: "acme", Tags: []string{"tier=gold"}}
	allocs := testing.AllocsPerRun(100, func() { dst = e.Encode(f, dst[:0]) })
	assert.Zero(t, allocs)
	// Stale values in dst are cleared.
	for i := range dst[:cap(dst)] {
		dst[:cap(dst)][i] = 9
	}
	got := e.Encode(&decision.Features{}, dst[:0])
	assert.Equal(t, 1.0, got[0])
	assert.Equal(t, 0.0, got[1])
}

func TestFeatureEncoderErrors(t *testing.T) {
	for _, tc := range []struct {
		o    policy.EncoderSpec
		want string
	}{
		{policy.EncoderSpec{}, "dimension 0"},
		{policy.EncoderSpec{Tasks: []string{"a", "a"}}, `tasks[1]: "a" listed twice`},
		{policy.EncoderSpec{TokenBuckets: []int{10, 10}}, "token_buckets[1] = 10"},
		{policy.EncoderSpec{TokenBuckets: []int{-1}}, "token_buckets[0] = -1"},
		{policy.EncoderSpec{HourBuckets: 5}, "hour_buckets 5"},
		{policy.EncoderSpec{TenantBuckets: -2}, "tenant_buckets -2"},
		{policy.EncoderSpec{TenantBuckets: 1 << 20}, "tenant_buckets 1048576"},
		{policy.EncoderSpec{Version: 3, Intercept: true}, "encoder version 3"},
		{policy.EncoderSpec{Version: 1, Intercept: true, Text: &policy.TextSpec{Markers: true}}, "a text block needs version 2"},
	} {
		_, err := policy.NewEncoder(tc.o)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

func ExampleFeatureEncoder() {
	e, _ := policy.NewEncoder(policy.EncoderSpec{
		Intercept:    true,
		Tasks:        []string{"code", "chat"},
		TokenBuckets: []int{512},
	})
	v := e.Encode(&decision.Features{Task: "chat", PromptTokens: 2000}, nil)
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

func TestFeatureEncoderCrosses(t *testing.T) {
	e, err := policy.NewEncoder(policy.EncoderSpec{
		Tasks:        []string{"code"},
		TokenBuckets: []int{1000},
		HourBuckets:  2,
		Crosses:      [][]string{{"task", "tokens", "hour"}, {"task", "hour"}},
	})
	require.NoError(t, err)
	// 2 task + 2 tokens + 2 hours + 8 + 4 crossed slots.
	require.Equal(t, 18, e.Dim())
	names := e.Names()
	assert.Equal(t, "task=code&tokens<=1000&hour=00-12", names[6])
	assert.Equal(t, "task=other&tokens>1000&hour=12-24", names[13])
	assert.Equal(t, "task=code&hour=00-12", names[14])

	night := time.Date(2026, 1, 1, 20, 0, 0, 0, time.UTC)
	v := e.Encode(&decision.Features{Task: "code", PromptTokens: 5000, Time: night}, nil)
	want := make([]float64, 18)
	want[0], want[3], want[5] = 1, 1, 1 // code, >1000, 12-24
	want[6+0*4+1*2+1] = 1               // code & >1000 & 12-24
	want[14+0*2+1] = 1                  // code & 12-24
	assert.Equal(t, want, v)

	// Unknown time: the hour block and every cross with it stay 0.
	v = e.Encode(&decision.Features{Task: "code", PromptTokens: 5000}, v[:0])
	assert.Equal(t, []float64{1, 0, 0, 1, 0, 0}, v[:6])
	assert.Equal(t, make([]float64, 12), v[6:])
	assert.Zero(t, testing.AllocsPerRun(50, func() { v = e.Encode(&decision.Features{Task: "x", PromptTokens: 1, Time: night}, v[:0]) }))

	for _, tc := range []struct {
		c    [][]string
		want string
	}{
		{[][]string{{"task"}}, "fewer than two blocks"},
		{[][]string{{"task", "moon"}}, `unknown block "moon"`},
		{[][]string{{"task", "task"}}, `block "task" twice`},
		{[][]string{{"task", "tenant"}}, `block "tenant" is not configured`},
	} {
		_, err := policy.NewEncoder(policy.EncoderSpec{Tasks: []string{"a"}, HourBuckets: 2, Crosses: tc.c})
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}
