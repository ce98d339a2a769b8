package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Params are a policy's named parameters, as parsed from a spec string
// ("epsilon-greedy=epsilon:0.1;seed:7") or a YAML map. Keys are
// case-sensitive. A factory reads what it knows with the typed getters and
// then calls Check, so that a misspelt key is an error, not a silent default.
type Params map[string]string

// Float returns the float parameter key, or def when absent.
func (p Params) Float(key string, def float64) (float64, error) {
	s, ok := p[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("parameter %q: %q is not a finite number", key, s)
	}
	return v, nil
}

// Int returns the integer parameter key, or def when absent.
func (p Params) Int(key string, def int) (int, error) {
	s, ok := p[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("parameter %q: %q is not an integer", key, s)
	}
	return v, nil
}

// Uint64 returns the unsigned integer parameter key (seeds), or def.
func (p Params) Uint64(key string, def uint64) (uint64, error) {
	s, ok := p[key]
	if !ok {
		return def, nil
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parameter %q: %q is not a non-negative integer", key, s)
	}
	return v, nil
}

// String returns the string parameter key, or def when absent.
func (p Params) String(key, def string) string {
	if s, ok := p[key]; ok {
		return s
	}
	return def
}

// Check returns an error naming the first key of p not in known.
func (p Params) Check(known ...string) error {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, kn := range known {
			if k == kn {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("unknown parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

// Spec names a policy and its parameters.
type Spec struct {
	Name   string
	Params Params
}

// String renders s in the form ParseSpec reads.
func (s Spec) String() string {
	if len(s.Params) == 0 {
		return s.Name
	}
	keys := make([]string, 0, len(s.Params))
	for k := range s.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ":" + s.Params[k]
	}
	return s.Name + "=" + strings.Join(parts, ";")
}

// ParseSpec reads "NAME" or "NAME=key:value;key:value".
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	name, rest, hasParams := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return Spec{}, fmt.Errorf("policy spec %q: empty policy name", s)
	}
	sp := Spec{Name: name, Params: Params{}}
	if !hasParams {
		return sp, nil
	}
	for _, kv := range strings.Split(rest, ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return Spec{}, fmt.Errorf("policy spec %q: parameter %q is not key:value", s, kv)
		}
		if _, dup := sp.Params[k]; dup {
			return Spec{}, fmt.Errorf("policy spec %q: parameter %q given twice", s, k)
		}
		sp.Params[k] = strings.TrimSpace(v)
	}
	return sp, nil
}

// ParseSpecs reads a comma-separated list of specs.
func ParseSpecs(s string) ([]Spec, error) {
	var out []Spec
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		sp, err := ParseSpec(part)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("policy list %q: no policy named", s)
	}
	return out, nil
}

// Factory builds a policy from its parameters.
type Factory func(p Params) (Policy, error)

// Registry maps policy names to factories. It is built explicitly by the
// program (cmd/routelab) — there is no init-time registration. A Registry is
// not safe for concurrent Register; New may be called concurrently once
// registration is done.
type Registry struct {
	factories map[string]entry
}

type entry struct {
	factory Factory
	doc     string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]entry{}} }

// Register adds a factory under name with a one-line description. It
// returns an error when the name is empty or already taken.
func (r *Registry) Register(name, doc string, f Factory) error {
	if name == "" || f == nil {
		return fmt.Errorf("register policy %q: empty name or nil factory", name)
	}
	if _, dup := r.factories[name]; dup {
		return fmt.Errorf("register policy %q: already registered", name)
	}
	r.factories[name] = entry{factory: f, doc: doc}
	return nil
}

// MustRegister is Register for program start-up; it panics on error.
func (r *Registry) MustRegister(name, doc string, f Factory) {
	if err := r.Register(name, doc, f); err != nil {
		panic(err)
	}
}

// New builds the policy named in s. Any spec may carry the parameter
// "floor" (FloorParam): the policy is then wrapped by WithFloor with that
// epsilon, its coin seeded from the spec's "seed".
func (r *Registry) New(s Spec) (Policy, error) {
	e, ok := r.factories[s.Name]
	if !ok {
		return nil, fmt.Errorf("unknown policy %q (known: %s)", s.Name, strings.Join(r.Names(), ", "))
	}
	if s.Params == nil {
		s.Params = Params{}
	}
	p, err := floorFromParams(s, e.factory)
	if err != nil {
		return nil, fmt.Errorf("policy %q: %w", s.Name, err)
	}
	return p, nil
}

// NewFromString parses spec and builds it.
func (r *Registry) NewFromString(spec string) (Policy, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return r.New(s)
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.factories))
	for n := range r.factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Doc returns the description registered with name.
func (r *Registry) Doc(name string) string { return r.factories[name].doc }
