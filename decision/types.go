package decision

import "time"

// Features describe one request as the policy sees it. The zero value is a
// valid, context-free request: no tenant, no task, unknown size and time.
type Features struct {
	// Tenant is the caller's tenant or team; empty means unknown.
	Tenant string
	// Task is the task type ("code", "chat", "math", ...); empty means unknown.
	Task string
	// PromptTokens is the estimated prompt size in tokens; 0 means unknown.
	PromptTokens int
	// Time is when the request arrived (virtual time in the simulator). The
	// zero Time means unknown; policies use it for time-of-day effects.
	Time time.Time
	// Tags are caller-supplied labels ("key=value"), in any order.
	Tags []string
	// Prompt is the request's prompt text (the gateway joins the messages'
	// contents with newlines), for encoders with a text block; empty means
	// unknown. It is never logged.
	Prompt string
	// Vector is the dense feature vector used by contextual policies. Its
	// length must match the policy's dimension; nil for context-free policies.
	Vector []float64
}

// Hour returns the hour of day (0-23) of f.Time in UTC, or -1 when unknown.
func (f *Features) Hour() int {
	if f == nil || f.Time.IsZero() {
		return -1
	}
	return f.Time.UTC().Hour()
}

// Arm is one candidate model. ID is unique within a catalogue; policies key
// their learned statistics by it, so candidate sets may change per request.
//
// The profile fields (LatencyMS, Quality, ErrorRate) are live estimates
// filled in by the caller's model profile library; zero means unknown.
type Arm struct {
	ID       string
	Provider string
	// PriceIn and PriceOut are US dollars per 1,000 input / output tokens.
	PriceIn, PriceOut float64
	// ContextWindow is the model's maximum context in tokens; 0 = unlimited.
	ContextWindow int

	// LatencyMS is the recent (EWMA) end-to-end latency in milliseconds.
	LatencyMS float64
	// Quality is the expected answer quality in [0,1].
	Quality float64
	// ErrorRate is the recent failure rate in [0,1].
	ErrorRate float64
}
