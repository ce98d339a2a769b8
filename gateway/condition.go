package gateway

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/routelab/routelab/decision"
	"github.com/routelab/routelab/gateway/provider"
	"github.com/routelab/routelab/route"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// Condition is one parsed fallback condition. A status condition matches a
// failed attempt; a profile condition matches a model's live profile.
type Condition struct {
	// Statuses, for a status condition, are the matched status words:
	// an HTTP code ("429"), a class ("5xx", "4xx"), or "timeout", "error",
	// "rate_limited".
	Statuses []string
	// Metric, for a profile condition: "error_rate", "latency" or "ttft".
	Metric string
	Op     string
	// Value is a rate, or milliseconds for latency and ttft.
	Value float64
	src   string
}

func (c Condition) String() string { return c.src }

// IsStatus reports whether c is a status condition.
func (c Condition) IsStatus() bool { return len(c.Statuses) > 0 }

// ParseCondition reads "status == 429", "status in (429, 5xx, timeout)",
// "error_rate > 0.05", "latency > 3000ms" or "ttft >= 1.5s".
func ParseCondition(s string) (Condition, error) {
	c := Condition{src: strings.TrimSpace(s)}
	f := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ", ",", " , ", "[", " ( ", "]", " ) ").Replace(s))
	if len(f) < 3 {
		return c, fmt.Errorf("condition %q: want \"METRIC OP VALUE\" (e.g. \"error_rate > 0.05\", \"status == 429\")", s)
	}
	switch f[0] {
	case "status":
		var words []string
		switch f[1] {
		case "==", "=":
			if len(f) != 3 {
				return c, fmt.Errorf("condition %q: status == takes one value", s)
			}
			words = f[2:]
		case "in":
			if f[2] != "(" || f[len(f)-1] != ")" {
				return c, fmt.Errorf("condition %q: want status in (a, b, ...)", s)
			}
			for _, w := range f[3 : len(f)-1] {
				if w != "," {
					words = append(words, w)
				}
			}
		default:
			return c, fmt.Errorf("condition %q: status takes == or in, not %q", s, f[1])
		}
		if len(words) == 0 {
			return c, fmt.Errorf("condition %q: no status given", s)
		}
		for _, w := range words {
			if !validStatusWord(w) {
				return c, fmt.Errorf("condition %q: %q is not an HTTP status (429), a class (5xx), timeout, error or rate_limited", s, w)
			}
		}
		c.Statuses = words
		return c, nil
	case "error_rate", "latency", "ttft":
	default:
		return c, fmt.Errorf("condition %q: unknown metric %q (status, error_rate, latency, ttft)", s, f[0])
	}
	if len(f) != 3 {
		return c, fmt.Errorf("condition %q: want \"METRIC OP VALUE\"", s)
	}
	switch f[1] {
	case ">", ">=", "<", "<=":
	default:
		return c, fmt.Errorf("condition %q: operator %q is not >, >=, < or <=", s, f[1])
	}
	c.Metric, c.Op = f[0], f[1]
	if c.Metric == "error_rate" {
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil || v < 0 || v > 1 {
			return c, fmt.Errorf("condition %q: error rate %q must be a number in [0,1]", s, f[2])
		}
		c.Value = v
		return c, nil
	}
	v := f[2]
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		v += "ms" // a bare number is milliseconds
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return c, fmt.Errorf("condition %q: %q is not a duration such as 3000ms or 3s", s, f[2])
	}
	c.Value = float64(d) / float64(time.Millisecond)
	return c, nil
}

func validStatusWord(w string) bool {
	switch w {
	case "timeout", "error", "rate_limited", "1xx", "2xx", "3xx", "4xx", "5xx":
		return true
	}
	n, err := strconv.Atoi(w)
	return err == nil && n >= 100 && n <= 599
}

// MatchError reports whether the failed attempt e matches c.
func (c Condition) MatchError(e *provider.Error) bool {
	for _, w := range c.Statuses {
		switch w {
		case "timeout":
			if e.Status == decision.StatusTimeout {
				return true
			}
		case "rate_limited":
			if e.Status == decision.StatusRateLimited {
				return true
			}
		case "error":
			if e.Status == decision.StatusError {
				return true
			}
		default:
			if len(w) == 3 && w[1:] == "xx" {
				if e.HTTPStatus/100 == int(w[0]-'0') {
					return true
				}
				// A connection failure or a broken answer is a server-side failure.
				if w == "5xx" && e.HTTPStatus == 0 && e.Status == decision.StatusError {
					return true
				}
				continue
			}
			n, _ := strconv.Atoi(w)
			if e.HTTPStatus == n || (n == 429 && e.Status == decision.StatusRateLimited) {
				return true
			}
		}
	}
	return false
}

// MatchProfile reports whether the profile p matches c. Profiles with no
// observations never match.
func (c Condition) MatchProfile(p *route.Profile) bool {
	if p.Requests == 0 {
		return false
	}
	var x float64
	switch c.Metric {
	case "error_rate":
		x = p.ErrorRate
	case "latency":
		x = p.LatencyMS
	case "ttft":
		x = p.TTFTMS
		if x == 0 {
			return false
		}
	default:
		return false
	}
	switch c.Op {
	case ">":
		return x > c.Value
	case ">=":
		return x >= c.Value
	case "<":
		return x < c.Value
	case "<=":
		return x <= c.Value
	}
	return false
}
