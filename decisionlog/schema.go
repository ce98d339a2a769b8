package decisionlog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/routelab/routelab/decision"
)

// SchemaVersion is the version of the row layout this package writes. It is
// stored in every row (column schema_version) and in every file's key/value
// metadata (routelab.schema_version). Readers accept files of this version
// and older; a newer file is reported as an error naming the file.
const SchemaVersion = 1

// Key/value metadata written into every file's footer.
const (
	MetaTable         = "routelab.table"          // TableDecisions or TableFeedback
	MetaSchemaVersion = "routelab.schema_version" // decimal SchemaVersion
	MetaWriterID      = "routelab.writer_id"      // WriterOpts.WriterID
)

// Table names: the value of MetaTable and the sub-directory of a log root
// holding that table.
const (
	TableDecisions = "decisions"
	TableFeedback  = "feedback"
	// StatsDir under a log root holds one JSON sidecar per writer (see
	// WriterStatsFile); the leading underscore makes Hive-style readers
	// (DuckDB, Spark, Trino) skip it.
	StatsDir = "_stats"
)

// Row is one decision as stored in Parquet: the schema of the decisions
// table (see the package documentation for the column table). Times are
// microseconds since the Unix epoch, UTC; durations are float64
// milliseconds.
type Row struct {
	SchemaVersion int32 `parquet:"schema_version"`
	// Time is decision.Record.Time, the moment the decision was complete.
	Time      int64  `parquet:"ts,timestamp(microsecond)"`
	RequestID string `parquet:"request_id"`
	// Tenant is HashTenant(salt, Features.Tenant); empty when unknown.
	Tenant       string `parquet:"tenant_hash"`
	Task         string `parquet:"task"`
	PromptTokens int64  `parquet:"prompt_tokens"`
	// RequestTime is Features.Time; null when unknown.
	RequestTime *int64 `parquet:"request_ts,optional,timestamp(microsecond)"`
	// HourOfDay is Features.Hour(): 0-23, -1 when unknown. (Not "hour": that
	// name belongs to the Hive partition column.)
	HourOfDay int32     `parquet:"hour_of_day"`
	Tags      []string  `parquet:"tags,list"`
	Vector    []float64 `parquet:"vector,list"`

	Candidates    []string  `parquet:"candidates,list"`
	Probs         []float64 `parquet:"probs,list"`
	ChosenIndex   int32     `parquet:"chosen_index"`
	ChosenArm     string    `parquet:"chosen_arm"`
	ChosenProb    float64   `parquet:"chosen_prob"`
	Policy        string    `parquet:"policy"`
	PolicyVersion string    `parquet:"policy_version"`
	Reason        string    `parquet:"reason"`
	ShadowPolicy  *string   `parquet:"shadow_policy,optional"`
	ShadowArm     *string   `parquet:"shadow_arm,optional"`
	ShadowProb    *float64  `parquet:"shadow_prob,optional"`
	// ShadowLoggedProb is the shadow's probability of the chosen arm.
	ShadowLoggedProb *float64 `parquet:"shadow_logged_prob,optional"`

	Attempts     []AttemptRow `parquet:"attempts,list"`
	FinalArm     string       `parquet:"final_arm"`
	Status       string       `parquet:"status"`
	LatencyMS    float64      `parquet:"latency_ms"`
	TTFTMS       float64      `parquet:"ttft_ms"`
	TokensIn     int64        `parquet:"tokens_in"`
	TokensOut    int64        `parquet:"tokens_out"`
	Cost         float64      `parquet:"cost_usd"`
	Quality      *float64     `parquet:"quality,optional"`
	Reward       float64      `parquet:"reward"`
	RewardSource string       `parquet:"reward_source"`

	// Backing storage for the optional columns, so filling a reused Row
	// does not allocate. The pointers above point here (or are nil).
	reqTime                 int64
	shadowPolicy, shadowArm string
	shadowProb, quality     float64
	shadowLoggedProb        float64
	// rawTenant holds the tenant until the writer goroutine hashes it, so
	// the caller does not pay for the hash.
	rawTenant string
}

// AttemptRow is one element of Row.Attempts: one call in the fallback chain.
type AttemptRow struct {
	Arm       string  `parquet:"arm"`
	Status    string  `parquet:"status"`
	LatencyMS float64 `parquet:"latency_ms"`
	Fallback  int32   `parquet:"fallback"`
}

// FeedbackRow is one delayed feedback event, the schema of the feedback
// table. Reward and Quality are each optional; at least one is set.
type FeedbackRow struct {
	SchemaVersion int32    `parquet:"schema_version"`
	Time          int64    `parquet:"ts,timestamp(microsecond)"`
	RequestID     string   `parquet:"request_id"`
	Reward        *float64 `parquet:"reward,optional"`
	Quality       *float64 `parquet:"quality,optional"`
	Source        string   `parquet:"source"`

	reward, quality float64
}

// Feedback is a delayed signal about a past request: a reward, a quality
// in [0,1] (from which package offline recomputes the reward), or both.
type Feedback struct {
	RequestID string
	Time      time.Time
	// Reward, when HasReward, replaces the logged reward outright.
	Reward    float64
	HasReward bool
	// Quality, when HasQuality, becomes the outcome's quality; without a
	// Reward, package offline's join recomputes the reward from it.
	Quality    float64
	HasQuality bool
	// Source says where the feedback came from ("user", "judge", ...).
	Source string
}

// Validate reports a feedback event that cannot be joined.
func (f *Feedback) Validate() error {
	switch {
	case f.RequestID == "":
		return fmt.Errorf("feedback: empty request id")
	case !f.HasReward && !f.HasQuality:
		return fmt.Errorf("feedback %q: neither reward nor quality set", f.RequestID)
	case f.HasReward && (math.IsNaN(f.Reward) || math.IsInf(f.Reward, 0)):
		return fmt.Errorf("feedback %q: reward %v is not finite", f.RequestID, f.Reward)
	case f.HasQuality && !(f.Quality >= 0 && f.Quality <= 1):
		return fmt.Errorf("feedback %q: quality %v outside [0,1]", f.RequestID, f.Quality)
	}
	return nil
}

// HashTenant returns the tenant as logged: the first 16 hex digits (64
// bits) of HMAC-SHA256(salt, tenant). An empty tenant stays empty. Use the
// same salt as the writer (WriterOpts.TenantSalt) to find a tenant's rows.
func HashTenant(salt, tenant string) string {
	if tenant == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(salt))
	m.Write([]byte(tenant))
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:8])
}

// toMicros converts t to the stored timestamp, truncating to microseconds.
func toMicros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func durMS(d time.Duration) float64 { return float64(d) / 1e6 }

func msDur(ms float64) time.Duration { return time.Duration(math.Round(ms * 1e6)) }

// fill copies rec into r, reusing r's slices; it keeps no reference to
// rec's slices (strings are immutable and safe to keep).
func (r *Row) fill(rec *decision.Record) {
	f := &rec.Request.Features
	d := &rec.Decision
	o := &rec.Outcome
	r.SchemaVersion = SchemaVersion
	r.Time = toMicros(rec.Time)
	r.RequestID = rec.Request.ID
	r.rawTenant = f.Tenant
	r.Tenant = ""
	r.Task = f.Task
	r.PromptTokens = int64(f.PromptTokens)
	if f.Time.IsZero() {
		r.RequestTime = nil
	} else {
		r.reqTime = toMicros(f.Time)
		r.RequestTime = &r.reqTime
	}
	r.HourOfDay = int32(f.Hour())
	r.Tags = append(r.Tags[:0], f.Tags...)
	r.Vector = append(r.Vector[:0], f.Vector...)

	r.Candidates = r.Candidates[:0]
	for i := range d.Candidates {
		r.Candidates = append(r.Candidates, d.Candidates[i].ID)
	}
	r.Probs = append(r.Probs[:0], d.Probs...)
	r.ChosenIndex = int32(d.Chosen)
	r.ChosenArm, r.ChosenProb = "", 0
	if d.Chosen >= 0 && d.Chosen < len(d.Candidates) {
		r.ChosenArm = d.Candidates[d.Chosen].ID
	}
	if d.Chosen >= 0 && d.Chosen < len(d.Probs) {
		r.ChosenProb = d.Probs[d.Chosen]
	}
	r.Policy, r.PolicyVersion, r.Reason = d.Policy, d.PolicyVersion, d.Reason
	if d.Shadow.Policy == "" {
		r.ShadowPolicy, r.ShadowArm, r.ShadowProb, r.ShadowLoggedProb = nil, nil, nil, nil
	} else {
		r.shadowPolicy, r.shadowArm, r.shadowProb = d.Shadow.Policy, d.Shadow.Arm, d.Shadow.Prob
		r.ShadowPolicy, r.ShadowArm, r.ShadowProb = &r.shadowPolicy, &r.shadowArm, &r.shadowProb
		r.ShadowLoggedProb = nil
		if d.Shadow.LoggedProbKnown {
			r.shadowLoggedProb = d.Shadow.LoggedProb
			r.ShadowLoggedProb = &r.shadowLoggedProb
		}
	}

	r.Attempts = r.Attempts[:0]
	for _, a := range o.Attempts {
		r.Attempts = append(r.Attempts, AttemptRow{Arm: a.Arm, Status: a.Status.String(), LatencyMS: durMS(a.Latency), Fallback: int32(a.Fallback)})
	}
	r.FinalArm = o.Arm
	r.Status = o.Status.String()
	r.LatencyMS, r.TTFTMS = durMS(o.Latency), durMS(o.TTFT)
	r.TokensIn, r.TokensOut = int64(o.TokensIn), int64(o.TokensOut)
	r.Cost = o.Cost
	if o.QualityKnown {
		r.quality = o.Quality
		r.Quality = &r.quality
	} else {
		r.Quality = nil
	}
	r.Reward = rec.Reward
	r.RewardSource = rec.RewardSource.String()
}

// Record converts a stored row back to a decision.Record. Candidates carry
// only their ID (prices and profiles are not logged); Features.Tenant is the
// hashed tenant; times are in UTC at microsecond precision. The returned
// record shares nothing with r.
func (r *Row) Record() (decision.Record, error) {
	var rec decision.Record
	err := r.recordInto(&rec)
	return rec, err
}

// recordInto fills rec from r, reusing rec's slices.
func (r *Row) recordInto(rec *decision.Record) error {
	if r.SchemaVersion < 1 || r.SchemaVersion > SchemaVersion {
		return fmt.Errorf("request %q: schema version %d not supported (this reader knows 1..%d)", r.RequestID, r.SchemaVersion, SchemaVersion)
	}
	if len(r.Probs) != len(r.Candidates) {
		return fmt.Errorf("request %q: %d probs for %d candidates", r.RequestID, len(r.Probs), len(r.Candidates))
	}
	rec.Time = fromMicros(r.Time)
	req := &rec.Request
	req.ID = r.RequestID
	req.Forced = ""
	f := &req.Features
	f.Tenant = r.Tenant
	f.Task = r.Task
	f.PromptTokens = int(r.PromptTokens)
	f.Time = time.Time{}
	if r.RequestTime != nil {
		f.Time = fromMicros(*r.RequestTime)
	}
	f.Tags = appendOrNil(f.Tags[:0], r.Tags)
	f.Vector = appendOrNil(f.Vector[:0], r.Vector)

	d := &rec.Decision
	d.Policy, d.PolicyVersion, d.Reason = r.Policy, r.PolicyVersion, r.Reason
	d.Candidates = d.Candidates[:0]
	for _, id := range r.Candidates {
		d.Candidates = append(d.Candidates, decision.Arm{ID: id})
	}
	d.Probs = append(d.Probs[:0], r.Probs...)
	d.Chosen = int(r.ChosenIndex)
	if len(r.Candidates) > 0 && (d.Chosen < 0 || d.Chosen >= len(r.Candidates)) {
		return fmt.Errorf("request %q: chosen index %d outside %d candidates", r.RequestID, d.Chosen, len(r.Candidates))
	}
	if d.Reason == decision.ReasonForced {
		req.Forced = r.ChosenArm
	}
	d.Shadow = decision.Shadow{}
	if r.ShadowPolicy != nil {
		d.Shadow.Policy = *r.ShadowPolicy
		if r.ShadowArm != nil {
			d.Shadow.Arm = *r.ShadowArm
		}
		if r.ShadowProb != nil {
			d.Shadow.Prob = *r.ShadowProb
		}
		if r.ShadowLoggedProb != nil {
			d.Shadow.LoggedProb, d.Shadow.LoggedProbKnown = *r.ShadowLoggedProb, true
		}
	}

	o := &rec.Outcome
	attempts := o.Attempts[:0]
	*o = decision.Outcome{}
	for i, a := range r.Attempts {
		st, err := decision.ParseStatus(a.Status)
		if err != nil {
			return fmt.Errorf("request %q: attempt %d: %w", r.RequestID, i, err)
		}
		attempts = append(attempts, decision.Attempt{Arm: a.Arm, Status: st, Latency: msDur(a.LatencyMS), Fallback: int(a.Fallback)})
	}
	if len(attempts) > 0 {
		o.Attempts = attempts
	}
	st, err := decision.ParseStatus(r.Status)
	if err != nil {
		return fmt.Errorf("request %q: %w", r.RequestID, err)
	}
	o.Arm, o.Status = r.FinalArm, st
	o.Latency, o.TTFT = msDur(r.LatencyMS), msDur(r.TTFTMS)
	o.TokensIn, o.TokensOut = int(r.TokensIn), int(r.TokensOut)
	o.Cost = r.Cost
	if r.Quality != nil {
		o.Quality, o.QualityKnown = *r.Quality, true
	}
	rec.Reward = r.Reward
	src, err := decision.ParseRewardSource(r.RewardSource)
	if err != nil {
		return fmt.Errorf("request %q: %w", r.RequestID, err)
	}
	rec.RewardSource = src
	return nil
}

// appendOrNil keeps nil for empty input, so a round trip of a nil slice
// gives nil.
func appendOrNil[T any](dst, src []T) []T {
	if len(src) == 0 {
		if dst == nil {
			return nil
		}
		return dst[:0]
	}
	return append(dst, src...)
}

func (r *FeedbackRow) fill(f *Feedback) {
	r.SchemaVersion = SchemaVersion
	r.Time = toMicros(f.Time)
	r.RequestID = f.RequestID
	r.Source = f.Source
	r.Reward, r.Quality = nil, nil
	if f.HasReward {
		r.reward = f.Reward
		r.Reward = &r.reward
	}
	if f.HasQuality {
		r.quality = f.Quality
		r.Quality = &r.quality
	}
}

// Feedback converts a stored feedback row back.
func (r *FeedbackRow) Feedback() Feedback {
	f := Feedback{RequestID: r.RequestID, Time: fromMicros(r.Time), Source: r.Source}
	if r.Reward != nil {
		f.Reward, f.HasReward = *r.Reward, true
	}
	if r.Quality != nil {
		f.Quality, f.HasQuality = *r.Quality, true
	}
	return f
}
