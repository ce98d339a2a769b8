package artifact_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/routelab/routelab/artifact"
	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/policy"
)

var arms = []decision.Arm{{ID: "a"}, {ID: "b"}, {ID: "c"}}

func trained(t *testing.T, spec string) (policy.Policy, *policy.FeatureEncoder) {
	t.Helper()
	p, err := policy.NewBuiltinRegistry().NewFromString(spec)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := policy.NewEncoder(policy.DefaultEncoderSpec([]string{"code", "chat"}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		f := decision.Features{Task: []string{"code", "chat"}[i%2]}
		f.Vector = enc.Encode(&f, nil)
		r := 0.2
		if (i%2 == 0) == (i%3 == 0) {
			r = 0.9
		}
		if err := p.Update(&f, arms, i%3, r); err != nil {
			t.Fatal(err)
		}
	}
	return p, enc
}

func choices(t *testing.T, p policy.Policy, enc *policy.FeatureEncoder) []int {
	t.Helper()
	var out []int
	probs := make([]float64, len(arms))
	for i := range 50 {
		f := decision.Features{Task: []string{"code", "chat"}[i%2]}
		f.Vector = enc.Encode(&f, nil)
		c, err := p.Select(context.Background(), &f, arms, probs)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func write(t *testing.T, spec string) (string, *artifact.Artifact, policy.Policy, *policy.FeatureEncoder) {
	t.Helper()
	p, enc := trained(t, spec)
	a, err := artifact.New(p, enc.Spec(), decision.DefaultReward(), []string{"c", "a", "b"}, artifact.Provenance{Source: "test", Rows: 300, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.json")
	if err := artifact.Write(path, a); err != nil {
		t.Fatal(err)
	}
	return path, a, p, enc
}

func TestRoundTripSameDecisions(t *testing.T) {
	for _, spec := range []string{"thompson=seed:5", "thompson=seed:6;floor:0.1", "linucb=alpha:0.5;seed:9", "epsilon-greedy=epsilon:0.3;seed:2"} {
		t.Run(spec, func(t *testing.T) {
			path, _, orig, enc := write(t, spec)
			a, err := artifact.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			if a.Provenance.Rows != 300 || a.Provenance.CodeVersion == "" || strings.Join(a.Catalogue, ",") != "a,b,c" {
				t.Fatalf("provenance/catalogue not kept: %+v %v", a.Provenance, a.Catalogue)
			}
			if err := a.Check(enc.Spec(), decision.DefaultReward(), []string{"b", "a", "c"}); err != nil {
				t.Fatal(err)
			}
			p, err := a.Policy(policy.NewBuiltinRegistry())
			if err != nil {
				t.Fatal(err)
			}
			want, got := choices(t, orig, enc), choices(t, p, enc)
			if !equal(want, got) {
				t.Fatalf("restored policy decides %v, original %v", got, want)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckMismatchNamesBothSides(t *testing.T) {
	path, _, _, enc := write(t, "linucb")
	a, err := artifact.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	other := policy.DefaultEncoderSpec([]string{"code", "chat", "math"})
	err = a.Check(other, decision.DefaultReward(), []string{"a", "b", "c"})
	if !errors.Is(err, artifact.ErrMismatch) || !strings.Contains(err.Error(), `"math"`) || !strings.Contains(err.Error(), `["code","chat"]`) {
		t.Fatalf("encoder mismatch: %v", err)
	}
	rw := decision.DefaultReward()
	rw.Cost = 0.5
	err = a.Check(enc.Spec(), rw, []string{"a", "b", "c"})
	if !errors.Is(err, artifact.ErrMismatch) || !strings.Contains(err.Error(), "cost 0.5") || !strings.Contains(err.Error(), "cost 0.2") {
		t.Fatalf("reward mismatch: %v", err)
	}
	err = a.Check(enc.Spec(), decision.DefaultReward(), []string{"a", "b", "d"})
	if !errors.Is(err, artifact.ErrMismatch) || !strings.Contains(err.Error(), "[a b c]") || !strings.Contains(err.Error(), "[a b d]") {
		t.Fatalf("catalogue mismatch: %v", err)
	}
}

func TestBadFiles(t *testing.T) {
	path, _, _, _ := write(t, "linucb")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := map[string]struct {
		data []byte
		want string
	}{
		"truncated":  {data[:len(data)/2], "truncated or corrupt"},
		"empty":      {nil, "empty file"},
		"version":    {[]byte(strings.Replace(string(data), `"version": 1`, `"version": 7`, 1)), "version 7, this build reads version 1"},
		"format":     {[]byte(strings.Replace(string(data), artifact.Format, "other", 1)), `format "other"`},
		"state":      {flipDigitAfter(data, `"state"`), "checksum"},
		"not json":   {[]byte("hello"), "truncated or corrupt"},
		"extra":      {append(append([]byte(nil), data...), []byte("{}")...), "corrupt"},
		"unknownkey": {[]byte(strings.Replace(string(data), `"spec"`, `"bogus": 1, "spec"`, 1)), "bogus"},
	}
	for name, c := range cases {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := artifact.Read(p)
		if err == nil || !errors.Is(err, artifact.ErrArtifact) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an ErrArtifact naming the file and %q", name, err, c.want)
		}
	}
}

func TestUnknownPolicy(t *testing.T) {
	path, _, _, _ := write(t, "linucb")
	a, err := artifact.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Policy(policy.NewRegistry()); err == nil || !strings.Contains(err.Error(), "linucb") {
		t.Fatalf("empty registry: got %v, want an error naming linucb", err)
	}
}

func TestLoadPolicyReadsBareSnapshots(t *testing.T) {
	p, _ := trained(t, "thompson=seed:4")
	path := filepath.Join(t.TempDir(), "snap.json")
	if err := policy.SaveFile(p, path); err != nil {
		t.Fatal(err)
	}
	if _, err := artifact.Read(path); err == nil || !strings.Contains(err.Error(), "bare policy snapshot") {
		t.Fatalf("Read of a snapshot: %v", err)
	}
	q, a, err := artifact.LoadPolicy(policy.NewBuiltinRegistry(), path)
	if err != nil || a != nil || q.Name() != "thompson" {
		t.Fatalf("LoadPolicy: %v %v %v", q, a, err)
	}
}

// flipDigitAfter changes the first digit after marker.
func flipDigitAfter(data []byte, marker string) []byte {
	out := append([]byte(nil), data...)
	for i := strings.Index(string(out), marker); i < len(out); i++ {
		if out[i] >= '0' && out[i] <= '8' {
			out[i]++
			return out
		}
	}
	panic("no digit")
}

// TestRewardLambdaTravels: an artifact trained with a willingness to pay
// records it, and a consumer with another λ is refused naming both.
func TestRewardLambdaTravels(t *testing.T) {
	p, enc := trained(t, "linucb=seed:1")
	rw := decision.Reward{Quality: 1, Failure: 1, CostRef: 1, LatencyRef: 1e9, UnknownQuality: 0.5, Lambda: 20}
	a, err := artifact.New(p, enc.Spec(), rw, []string{"a", "b", "c"}, artifact.Provenance{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "a.json")
	if err := artifact.Write(path, a); err != nil {
		t.Fatal(err)
	}
	b, err := artifact.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.RewardFunc(); err != nil || got != rw {
		t.Fatalf("reward read back %+v (%v), want %+v", got, err, rw)
	}
	if err := b.Check(enc.Spec(), rw, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	other := rw
	other.Lambda = 5
	err = b.Check(enc.Spec(), other, []string{"a", "b", "c"})
	if err == nil || !strings.Contains(err.Error(), "lambda 20") || !strings.Contains(err.Error(), "lambda 5") {
		t.Fatalf("err = %v, want a mismatch naming lambda 20 and lambda 5", err)
	}
	// Without λ the artifact's reward spec has no lambda field.
	if artifact.SpecOf(decision.DefaultReward()).Lambda != nil {
		t.Fatal("SpecOf(DefaultReward()) has a lambda")
	}
}
