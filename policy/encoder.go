package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/routelab/routelab/decision"
)

// EncoderSpecVersion is the version of the vector layout NewEncoder builds
// from an EncoderSpec. It changes whenever the same spec would produce a
// different vector (slot order, hash, bucketing) or a spec gains a block an
// older build would ignore, so a saved spec of another version is refused
// rather than silently misread. Version 2 added the text block; a spec
// without one encodes exactly as in version 1 and is written as version 1
// (encoderVersionNoText), so specs saved before stay valid and equal.
const EncoderSpecVersion = 2

// encoderVersionNoText is the version a spec without a text block carries.
const encoderVersionNoText = 1

// EncoderSpec describes a feature encoder; it is the one serialisable form
// (YAML and JSON) every caller builds its encoder from with NewEncoder —
// simulator, gateway, datasets, experiments and training — and the
// `encoder:` block of the gateway config and of a sim scenario. Every block
// is optional; the vector is the concatenation, in this order, of:
//
//	intercept      1 slot, always 1                          (Intercept)
//	task           len(Tasks)+1 slots, one-hot; the last is "other/unknown"
//	tokens         len(TokenBuckets)+1 slots, one-hot by prompt size; all 0 when unknown
//	hour           HourBuckets slots, one-hot by hour of day; all 0 when unknown
//	cyclic time    2 slots sin, cos of the time of day;      all 0 when unknown (HourCyclic)
//	tenant         TenantBuckets slots one-hot by TenantHash of the tenant; all 0 when unknown
//	tags           len(Tags) slots, 1 when the request carries that exact tag
//	crosses        per Crosses entry, one-hot over the product of its blocks
//	text           the prompt's hashed TF-IDF n-grams and markers (Text, see TextSpec)
//
// A spec with no block at all is invalid (dimension 0). DefaultEncoderSpec
// is the default every caller uses when no `encoder:` block is given.
type EncoderSpec struct {
	// Version is the layout version (EncoderSpecVersion); 0 means the
	// current one. Spec() of a built encoder always has it set.
	Version int `yaml:"version,omitempty" json:"version,omitempty"`
	// Intercept adds a constant-1 slot first, so linear models learn a
	// per-arm bias.
	Intercept bool `yaml:"intercept,omitempty" json:"intercept,omitempty"`
	// Tasks are the known task types; any other (or empty) task sets the
	// extra "other" slot. Empty means no task block.
	Tasks []string `yaml:"tasks,omitempty" json:"tasks,omitempty"`
	// TokenBuckets are strictly increasing upper bounds in tokens: slot i
	// is set when tokens <= TokenBuckets[i] (and > the previous bound); the
	// last slot takes everything larger. Bounds growing geometrically make
	// the buckets equal-width in log(tokens). Empty means no token block;
	// DefaultTokenBuckets is a sensible choice.
	TokenBuckets []int `yaml:"token_buckets,omitempty" json:"token_buckets,omitempty"`
	// HourBuckets splits the UTC day into this many equal one-hot slots
	// (24 = one per hour, 4 = night/morning/afternoon/evening); 0 = none.
	// Must divide 24.
	HourBuckets int `yaml:"hour_buckets,omitempty" json:"hour_buckets,omitempty"`
	// HourCyclic adds sin(2πt/24h) and cos(2πt/24h) of the UTC time of day.
	HourCyclic bool `yaml:"hour_cyclic,omitempty" json:"hour_cyclic,omitempty"`
	// TenantBuckets hashes every non-empty tenant into this many one-hot
	// slots with TenantHash; an empty tenant sets none; 0 = no tenant
	// block. Tenants are always hashed (never one-hot over a list), so the
	// simulator, the gateway and offline data encode a tenant alike and an
	// unseen tenant needs no new slot.
	TenantBuckets int `yaml:"tenant_buckets,omitempty" json:"tenant_buckets,omitempty"`
	// Tags are the tags (exact strings, e.g. "tier=gold") with an indicator slot.
	Tags []string `yaml:"tags,omitempty" json:"tags,omitempty"`
	// Crosses adds, for each entry, a one-hot block over the Cartesian
	// product of the named one-hot blocks — any two or more of "task",
	// "tokens", "hour", "tenant", each of which must be configured — so a
	// linear model can learn interactions (the best model for long code
	// prompts at night) that additive features cannot express. A cross
	// block is all 0 when one of its blocks is (unknown size, time or
	// tenant). Its size is the product of the blocks' sizes.
	Crosses [][]string `yaml:"crosses,omitempty" json:"crosses,omitempty"`
	// Text adds features of the prompt text (decision.Features.Prompt):
	// hashed word and character n-grams with TF-IDF weights fitted offline
	// and length/digit/code/math/language markers; nil = none. A spec with
	// a text block is version 2.
	Text *TextSpec `yaml:"text,omitempty" json:"text,omitempty"`
}

// version is the version s is written as: encoderVersionNoText without a
// text block, else EncoderSpecVersion.
func (s EncoderSpec) version() int {
	if s.Text == nil {
		return encoderVersionNoText
	}
	return EncoderSpecVersion
}

// DefaultEncoderSpec is the encoder every caller uses when not configured
// otherwise: an intercept, one-hot task over tasks (plus "other"),
// prompt-size buckets (DefaultTokenBuckets), four six-hour buckets of the
// UTC day, and DefaultTenantBuckets hashed tenant slots. tasks is the
// caller's task vocabulary (a scenario's tasks, the gateway's TaskNames, a
// dataset's tasks); the spec copies it.
func DefaultEncoderSpec(tasks []string) EncoderSpec {
	return EncoderSpec{
		Version:       encoderVersionNoText,
		Intercept:     true,
		Tasks:         append([]string(nil), tasks...),
		TokenBuckets:  append([]int(nil), DefaultTokenBuckets...),
		HourBuckets:   4,
		TenantBuckets: DefaultTenantBuckets,
	}
}

// DefaultTenantBuckets is DefaultEncoderSpec's number of hashed tenant slots.
const DefaultTenantBuckets = 8

// TenantHash is the fixed hash that picks a tenant's slot:
// TenantHash(tenant) % TenantBuckets. It is 32-bit FNV-1a over the tenant's
// UTF-8 bytes (offset basis 2166136261, prime 16777619), unseeded, so every
// process and every build maps a tenant to the same slot.
func TenantHash(tenant string) uint32 { return fnv32a(tenant) }

// Clone returns a deep copy of s.
func (s EncoderSpec) Clone() EncoderSpec {
	c := s
	c.Tasks = append([]string(nil), s.Tasks...)
	c.TokenBuckets = append([]int(nil), s.TokenBuckets...)
	c.Tags = append([]string(nil), s.Tags...)
	c.Crosses = nil
	for _, x := range s.Crosses {
		c.Crosses = append(c.Crosses, append([]string(nil), x...))
	}
	if len(c.Tasks) == 0 {
		c.Tasks = nil
	}
	if len(c.TokenBuckets) == 0 {
		c.TokenBuckets = nil
	}
	if len(c.Tags) == 0 {
		c.Tags = nil
	}
	c.Text = s.Text.clone()
	return c
}

// Canonical returns the canonical JSON form of s: Version filled in (0 →
// 1 without a text block, 2 with one), empty lists omitted, fields in
// declaration order.
// Two specs build the same encoder exactly when their canonical forms are
// equal, so it is what artifacts should store and compare.
func (s EncoderSpec) Canonical() []byte {
	c := s.Clone()
	if c.Version == 0 || (c.Version == EncoderSpecVersion && c.Text == nil) {
		c.Version = c.version()
	}
	b, err := json.Marshal(c)
	if err != nil { // cannot happen: only strings, ints, bools and finite floats
		panic("policy: EncoderSpec.Canonical: " + err.Error())
	}
	return b
}

// Equal reports whether s and o describe the same encoder (equal Canonical
// forms).
func (s EncoderSpec) Equal(o EncoderSpec) bool {
	return bytes.Equal(s.Canonical(), o.Canonical())
}

// Validate reports the first field of s that cannot build an encoder,
// naming it (e.g. "encoder token_buckets[1] = 10: ...").
func (s EncoderSpec) Validate() error {
	_, err := NewEncoder(s)
	return err
}

// maxTenantBuckets bounds TenantBuckets (a typo of 1e9 would otherwise
// allocate gigabytes per vector).
const maxTenantBuckets = 1 << 16

// crossable are the one-hot blocks Crosses may combine, in slot order.
var crossable = []string{"task", "tokens", "hour", "tenant"}

// DefaultTokenBuckets bound prompt sizes at 4× steps: ≤128, ≤512, ≤2k, ≤8k,
// ≤32k and larger — six slots, equal-width in log(tokens).
var DefaultTokenBuckets = []int{128, 512, 2048, 8192, 32768}

// FeatureEncoder is the concrete Encoder: it turns Features' named fields
// into the dense vector described on EncoderSpec. It is immutable once built
// and safe for concurrent use.
type FeatureEncoder struct {
	o        EncoderSpec
	dim      int
	offTask  int
	offTok   int
	offHour  int
	offCyc   int
	offTen   int
	offTag   int
	tasks    map[string]int
	offText  int
	tags     map[string]int
	slotName []string
	crosses  []crossBlock
}

// crossBlock is one Crosses entry: the blocks (indices into crossable) and
// the offset of its first slot.
type crossBlock struct {
	blocks []int
	off    int
}

var _ Encoder = (*FeatureEncoder)(nil)

// NewEncoder validates spec and builds its encoder; it is the one
// constructor of feature encoders. Errors name the offending field. The
// encoder keeps a deep copy of spec (with Version set), returned by Spec.
func NewEncoder(spec EncoderSpec) (*FeatureEncoder, error) {
	o := spec.Clone()
	if o.Version == 0 || (o.Version == EncoderSpecVersion && o.Text == nil) {
		o.Version = o.version()
	}
	if o.Version != encoderVersionNoText && o.Version != EncoderSpecVersion {
		return nil, fmt.Errorf("encoder version %d: unsupported (this build reads versions %d and %d)", o.Version, encoderVersionNoText, EncoderSpecVersion)
	}
	if o.Text != nil && o.Version < EncoderSpecVersion {
		return nil, fmt.Errorf("encoder version %d: a text block needs version %d", o.Version, EncoderSpecVersion)
	}
	if o.Text != nil {
		if err := o.Text.validate(); err != nil {
			return nil, err
		}
	}
	e := &FeatureEncoder{o: o}
	var err error
	if e.tasks, err = indexOf("tasks", o.Tasks); err != nil {
		return nil, err
	}
	if e.tags, err = indexOf("tags", o.Tags); err != nil {
		return nil, err
	}
	for i, b := range o.TokenBuckets {
		if b <= 0 || (i > 0 && b <= o.TokenBuckets[i-1]) {
			return nil, fmt.Errorf("encoder token_buckets[%d] = %d: bounds must be positive and strictly increasing", i, b)
		}
	}
	if o.HourBuckets < 0 || o.HourBuckets > 24 || (o.HourBuckets > 0 && 24%o.HourBuckets != 0) {
		return nil, fmt.Errorf("encoder hour_buckets %d: must be 0 or divide 24", o.HourBuckets)
	}
	if o.TenantBuckets < 0 || o.TenantBuckets > maxTenantBuckets {
		return nil, fmt.Errorf("encoder tenant_buckets %d: must be in [0, %d]", o.TenantBuckets, maxTenantBuckets)
	}
	name := func(s string) { e.slotName = append(e.slotName, s) }
	if o.Intercept {
		name("intercept")
	}
	e.offTask = len(e.slotName)
	if len(o.Tasks) > 0 {
		for _, t := range o.Tasks {
			name("task=" + t)
		}
		name("task=other")
	}
	e.offTok = len(e.slotName)
	if len(o.TokenBuckets) > 0 {
		for _, b := range o.TokenBuckets {
			name("tokens<=" + strconv.Itoa(b))
		}
		name("tokens>" + strconv.Itoa(o.TokenBuckets[len(o.TokenBuckets)-1]))
	}
	e.offHour = len(e.slotName)
	for i := 0; i < o.HourBuckets; i++ {
		w := 24 / o.HourBuckets
		name(fmt.Sprintf("hour=%02d-%02d", i*w, (i+1)*w))
	}
	e.offCyc = len(e.slotName)
	if o.HourCyclic {
		name("time_sin")
		name("time_cos")
	}
	e.offTen = len(e.slotName)
	for i := 0; i < o.TenantBuckets; i++ {
		name("tenant#" + strconv.Itoa(i))
	}
	e.offTag = len(e.slotName)
	for _, t := range o.Tags {
		name("tag=" + t)
	}
	if err := e.buildCrosses(name); err != nil {
		return nil, err
	}
	e.offText = len(e.slotName)
	if o.Text != nil {
		o.Text.names(name)
	}
	e.dim = len(e.slotName)
	if e.dim == 0 {
		return nil, fmt.Errorf("encoder: no feature block configured (dimension 0)")
	}
	return e, nil
}

// blockSlots returns the slot labels of one-hot block b (an index into
// crossable), or nil when it is not configured.
func (e *FeatureEncoder) blockSlots(b int) []string {
	var start, end int
	switch crossable[b] {
	case "task":
		start, end = e.offTask, e.offTok
	case "tokens":
		start, end = e.offTok, e.offHour
	case "hour":
		start, end = e.offHour, e.offCyc
	case "tenant":
		start, end = e.offTen, e.offTag
	}
	if start == end {
		return nil
	}
	return e.slotName[start:end]
}

func (e *FeatureEncoder) buildCrosses(name func(string)) error {
	const maxCross = 1 << 16
	for ci, c := range e.o.Crosses {
		if len(c) < 2 {
			return fmt.Errorf("encoder crosses[%d]: %v names fewer than two blocks", ci, c)
		}
		cb := crossBlock{off: len(e.slotName)}
		size := 1
		for _, bn := range c {
			b := -1
			for i, n := range crossable {
				if n == bn {
					b = i
				}
			}
			if b < 0 {
				return fmt.Errorf("encoder crosses[%d]: unknown block %q (known: task, tokens, hour, tenant)", ci, bn)
			}
			for _, prev := range cb.blocks {
				if prev == b {
					return fmt.Errorf("encoder crosses[%d]: block %q twice", ci, bn)
				}
			}
			slots := e.blockSlots(b)
			if slots == nil {
				return fmt.Errorf("encoder crosses[%d]: block %q is not configured", ci, bn)
			}
			size *= len(slots)
			if size > maxCross {
				return fmt.Errorf("encoder crosses[%d]: %v has more than %d slots", ci, c, maxCross)
			}
			cb.blocks = append(cb.blocks, b)
		}
		// Labels in row-major order: the last block varies fastest.
		labels := []string{""}
		for _, b := range cb.blocks {
			var next []string
			for _, l := range labels {
				for _, sl := range e.blockSlots(b) {
					if l == "" {
						next = append(next, sl)
					} else {
						next = append(next, l+"&"+sl)
					}
				}
			}
			labels = next
		}
		for _, l := range labels {
			name(l)
		}
		e.crosses = append(e.crosses, cb)
	}
	return nil
}

func indexOf(field string, xs []string) (map[string]int, error) {
	m := make(map[string]int, len(xs))
	for i, x := range xs {
		if _, dup := m[x]; dup {
			return nil, fmt.Errorf("encoder %s[%d]: %q listed twice", field, i, x)
		}
		m[x] = i
	}
	return m, nil
}

// Dim implements Encoder.
func (e *FeatureEncoder) Dim() int { return e.dim }

// Names returns a label per slot ("intercept", "task=code", "tokens<=512",
// ...), in vector order. Do not modify.
func (e *FeatureEncoder) Names() []string { return e.slotName }

// Spec returns (a copy of) the spec e was built from, Version set; saving it
// and calling NewEncoder on it rebuilds an identical encoder.
func (e *FeatureEncoder) Spec() EncoderSpec { return e.o.Clone() }

// Encode implements Encoder. It allocates only when cap(dst) < Dim(). A nil
// f encodes as an unknown request (intercept and "other" slots only).
func (e *FeatureEncoder) Encode(f *decision.Features, dst []float64) []float64 {
	if cap(dst) < e.dim {
		dst = make([]float64, e.dim)
	}
	v := dst[:e.dim]
	for i := range v {
		v[i] = 0
	}
	if e.o.Intercept {
		v[0] = 1
	}
	var zero decision.Features
	if f == nil {
		f = &zero
	}
	// active[b] is the set slot of one-hot block b (see crossable), or -1.
	active := [4]int{-1, -1, -1, -1}
	if len(e.o.Tasks) > 0 {
		i, ok := e.tasks[f.Task]
		if !ok {
			i = len(e.o.Tasks)
		}
		active[0] = i
		v[e.offTask+i] = 1
	}
	if len(e.o.TokenBuckets) > 0 && f.PromptTokens > 0 {
		i := len(e.o.TokenBuckets)
		for j, b := range e.o.TokenBuckets {
			if f.PromptTokens <= b {
				i = j
				break
			}
		}
		active[1] = i
		v[e.offTok+i] = 1
	}
	if !f.Time.IsZero() && (e.o.HourBuckets > 0 || e.o.HourCyclic) {
		t := f.Time.UTC()
		if e.o.HourBuckets > 0 {
			i := t.Hour() * e.o.HourBuckets / 24
			active[2] = i
			v[e.offHour+i] = 1
		}
		if e.o.HourCyclic {
			sec := float64(t.Hour()*3600+t.Minute()*60+t.Second()) + float64(t.Nanosecond())/1e9
			a := 2 * math.Pi * sec / 86400
			v[e.offCyc] = math.Sin(a)
			v[e.offCyc+1] = math.Cos(a)
		}
	}
	if e.o.TenantBuckets > 0 && f.Tenant != "" {
		i := int(TenantHash(f.Tenant) % uint32(e.o.TenantBuckets))
		active[3] = i
		v[e.offTen+i] = 1
	}
	for _, tag := range f.Tags {
		if i, ok := e.tags[tag]; ok {
			v[e.offTag+i] = 1
		}
	}
cross:
	for _, c := range e.crosses {
		idx := 0
		for _, b := range c.blocks {
			if active[b] < 0 {
				continue cross
			}
			idx = idx*e.blockSize(b) + active[b]
		}
		v[c.off+idx] = 1
	}
	if e.o.Text != nil {
		e.o.Text.encodeText(f.Prompt, v[e.offText:])
	}
	return v
}

// blockSize is the number of slots of one-hot block b.
func (e *FeatureEncoder) blockSize(b int) int {
	switch b {
	case 0:
		return len(e.o.Tasks) + 1
	case 1:
		return len(e.o.TokenBuckets) + 1
	case 2:
		return e.o.HourBuckets
	default:
		return e.o.TenantBuckets
	}
}

// fnv32a hashes s without allocating (hash/fnv would need a []byte copy).
func fnv32a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
