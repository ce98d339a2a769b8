package decision

import (
	"fmt"
	"time"
)

// RewardSpec is the one YAML/JSON schema of a Reward, shared by the gateway
// config's and the simulator scenario's `reward:` block. Every field is
// optional: nil (absent) keeps DefaultReward's value. CostRef and LatencyRef
// of 0 also keep the default (the gateway config always read them so).
//
//	reward:
//	  quality: 0.6
//	  cost: 0.2
//	  latency: 0.2
//	  failure: 1
//	  cost_ref: 0.002       # dollars that halve the cost term
//	  latency_ref: 2s       # latency that halves the latency term
//	  unknown_quality: 0.5
//	  lambda: 0             # reward lost per dollar: quality − λ·cost
type RewardSpec struct {
	Quality        *float64  `yaml:"quality,omitempty" json:"quality,omitempty"`
	Cost           *float64  `yaml:"cost,omitempty" json:"cost,omitempty"`
	Latency        *float64  `yaml:"latency,omitempty" json:"latency,omitempty"`
	Failure        *float64  `yaml:"failure,omitempty" json:"failure,omitempty"`
	CostRef        *float64  `yaml:"cost_ref,omitempty" json:"cost_ref,omitempty"`
	LatencyRef     *Duration `yaml:"latency_ref,omitempty" json:"latency_ref,omitempty"`
	UnknownQuality *float64  `yaml:"unknown_quality,omitempty" json:"unknown_quality,omitempty"`
	Lambda         *float64  `yaml:"lambda,omitempty" json:"lambda,omitempty"`
}

// Reward resolves s over DefaultReward and validates the result; the error
// names the offending field (e.g. "reward cost_ref: -1 must be > 0"). A nil
// s is DefaultReward.
func (s *RewardSpec) Reward() (Reward, error) {
	r := DefaultReward()
	if s != nil {
		set := func(dst *float64, v *float64) {
			if v != nil {
				*dst = *v
			}
		}
		set(&r.Quality, s.Quality)
		set(&r.Cost, s.Cost)
		set(&r.Latency, s.Latency)
		set(&r.Failure, s.Failure)
		set(&r.UnknownQuality, s.UnknownQuality)
		set(&r.Lambda, s.Lambda)
		if s.CostRef != nil && *s.CostRef != 0 {
			r.CostRef = *s.CostRef
		}
		if s.LatencyRef != nil && *s.LatencyRef != 0 {
			r.LatencyRef = time.Duration(*s.LatencyRef)
		}
	}
	return r, r.Validate()
}

// UnmarshalYAML reads s from YAML (yaml.v3's func-style unmarshaler, so
// this package needs no YAML import). latency_ref takes a duration string
// ("2s", "1500ms") or an integer count of nanoseconds, as a time.Duration
// field did; a bad value is reported naming latency_ref.
func (s *RewardSpec) UnmarshalYAML(unmarshal func(any) error) error {
	var raw struct {
		Quality        *float64 `yaml:"quality"`
		Cost           *float64 `yaml:"cost"`
		Latency        *float64 `yaml:"latency"`
		Failure        *float64 `yaml:"failure"`
		CostRef        *float64 `yaml:"cost_ref"`
		LatencyRef     any      `yaml:"latency_ref"`
		UnknownQuality *float64 `yaml:"unknown_quality"`
		Lambda         *float64 `yaml:"lambda"`
	}
	if err := unmarshal(&raw); err != nil {
		return err
	}
	out := RewardSpec{Quality: raw.Quality, Cost: raw.Cost, Latency: raw.Latency, Failure: raw.Failure,
		CostRef: raw.CostRef, UnknownQuality: raw.UnknownQuality, Lambda: raw.Lambda}
	switch v := raw.LatencyRef.(type) {
	case nil:
	case string:
		var d Duration
		if err := d.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("reward latency_ref: %w", err)
		}
		out.LatencyRef = &d
	case int:
		d := Duration(v)
		out.LatencyRef = &d
	case int64:
		d := Duration(v)
		out.LatencyRef = &d
	default:
		return fmt.Errorf("reward latency_ref: %v is not a duration like \"2s\"", v)
	}
	*s = out
	return nil
}

// Validate reports the first field of s that makes an unusable Reward.
func (s *RewardSpec) Validate() error {
	_, err := s.Reward()
	return err
}

// Duration is a time.Duration that reads and writes as text like "250ms"
// or "1h30m" (time.ParseDuration), in YAML and JSON alike. A YAML integer is
// taken as nanoseconds, as for time.Duration.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"250ms\" or \"1h30m\"", b)
	}
	*d = Duration(v)
	return nil
}
