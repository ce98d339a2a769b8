package mask

import (
	"fmt"
	"regexp"
	"strings"
)

// Detector names, as configured.
const (
	APIKey     = "api_key"    // ghp_…, github_pat_…, sk-…, xox?-…
	Credential = "credential" // api_key=…, token: …, password=…, secret=…
	AWS        = "aws"        // AKIA…/ASIA… access key ids
	Cloud      = "cloud"      // aws_secret_access_key=…, AIza…, AccountKey=…, PEM private keys
	Card       = "card"       // 13–19 digit card numbers passing Luhn
	Email      = "email"
	Phone      = "phone"
	SSN        = "ssn" // ssn=… and 123-45-6789
)

// All lists every detector, in matching priority.
var All = []string{Credential, SSN, Cloud, APIKey, AWS, Email, Card, Phone}

// patterns are tried leftmost-first; at one position the earlier wins.
var patterns = map[string]string{
	Credential: `(?i:\b(?:api[_-]?key|api[_-]?token|access[_-]?token|auth[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd)\s*[=:]\s*)[^\s,;&]+`,
	SSN:        `(?i:\bssn\s*[=:]\s*)[^\s,;&]+|\b\d{3}-\d{2}-\d{4}\b`,
	Cloud:      `(?i:aws_secret_access_key\s*[=:]\s*)[^\s,;&]+|\bAIza[0-9A-Za-z_\-]{35}|AccountKey=[A-Za-z0-9+/=]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----`,
	APIKey:     `\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_\-]{16,}|xox[abprs]-[A-Za-z0-9\-]{10,})`,
	AWS:        `\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,
	Email:      `[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}`,
	Card:       `\b\d(?:[ \-]?\d){12,18}\b`,
	Phone:      `(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\b\d{2,4}[ .\-]\d{3,4}[ .\-]?\d{3,4}\b|\+\d{8,15}\b`,
}

// Opts configures New.
type Opts struct {
	// Detectors names the detectors to run; nil or empty means All.
	Detectors []string
}

// Masker replaces what its detectors find.
type Masker struct {
	dets []detector
}

type detector struct {
	kind string
	re   *regexp.Regexp
	// keepKey: a leading "key=" / "key:" of the match is kept.
	keepKey bool
	// may is a cheap prefilter: false means the pattern cannot match.
	may func(s string, st stats) bool
}

// stats are computed once per string for the prefilters.
type stats struct {
	digits  int
	at, sep bool // '@'; '=' or ':'
	dash    bool // '-' or '_'
}

func scan(s string) (st stats) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			st.digits++
		case c == '@':
			st.at = true
		case c == '=' || c == ':':
			st.sep = true
		case c == '-' || c == '_':
			st.dash = true
		}
	}
	return st
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains sub, ASCII case-insensitively,
// without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

var prefilters = map[string]func(string, stats) bool{
	Credential: func(s string, st stats) bool {
		return st.sep && (containsFold(s, "key") || containsFold(s, "token") || containsFold(s, "secret") ||
			containsFold(s, "pass") || containsFold(s, "pwd"))
	},
	SSN: func(s string, st stats) bool {
		return (st.sep && containsFold(s, "ssn")) || (st.digits >= 9 && st.dash)
	},
	Cloud: func(s string, st stats) bool {
		return containsAny(s, "AIza", "AccountKey=", "-----BEGIN") || (st.sep && containsFold(s, "aws_secret"))
	},
	APIKey: func(s string, st stats) bool { return st.dash && containsAny(s, "gh", "github_pat_", "sk-", "xox") },
	AWS:    func(s string, _ stats) bool { return containsAny(s, "AKIA", "ASIA") },
	Email:  func(_ string, st stats) bool { return st.at },
	Card:   func(_ string, st stats) bool { return st.digits >= 13 },
	Phone:  func(_ string, st stats) bool { return st.digits >= 7 },
}

// New builds a masker; an unknown detector name is an error.
func New(o Opts) (*Masker, error) {
	names := o.Detectors
	if len(names) == 0 {
		names = All
	}
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := patterns[n]; !ok {
			return nil, fmt.Errorf("mask: unknown detector %q (known: %s)", n, strings.Join(All, ", "))
		}
		want[n] = true
	}
	m := &Masker{}
	for _, n := range All { // fixed priority whatever the configured order
		if !want[n] {
			continue
		}
		re, err := regexp.Compile(patterns[n])
		if err != nil {
			return nil, fmt.Errorf("mask: detector %s: %w", n, err)
		}
		m.dets = append(m.dets, detector{kind: n, re: re, keepKey: n == Credential || n == SSN || n == Cloud, may: prefilters[n]})
	}
	return m, nil
}

// String returns s with every finding replaced by "[REDACTED:kind]" (for
// "key=value" findings the key is kept: "token=[REDACTED:credential]").
// Detectors run in the order of All, each on the previous one's output.
// s itself is returned, without allocating, when nothing is found.
func (m *Masker) String(s string) string {
	if m == nil {
		return s
	}
	st := scan(s)
	for i := range m.dets {
		d := &m.dets[i]
		if !d.may(s, st) {
			continue
		}
		if t := d.replace(s); t != s {
			s = t
			st = scan(s)
		}
	}
	return s
}

func (d *detector) replace(s string) string {
	if !d.re.MatchString(s) { // MatchString does not allocate
		return s
	}
	locs := d.re.FindAllStringIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		start, end := loc[0], loc[1]
		if d.kind == Card && !luhn(s[start:end]) {
			continue
		}
		if d.keepKey && !strings.HasPrefix(s[start:end], "-----") && !strings.HasPrefix(s[start:end], "AIza") {
			if k := strings.IndexAny(s[start:end], "=:"); k >= 0 {
				start += k + 1
				for start < end && s[start] == ' ' {
					start++
				}
			}
		}
		if b.Len() == 0 {
			b.Grow(len(s) + 16)
		}
		b.WriteString(s[last:start])
		b.WriteString("[REDACTED:")
		b.WriteString(d.kind)
		b.WriteByte(']')
		last = end
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Strings masks every element of ss in place and reports whether any
// changed.
func (m *Masker) Strings(ss []string) bool {
	changed := false
	for i, s := range ss {
		if t := m.String(s); t != s {
			ss[i], changed = t, true
		}
	}
	return changed
}

// luhn reports whether the digits of s (spaces and dashes ignored) pass
// the Luhn checksum.
func luhn(s string) bool {
	sum, n, double := 0, 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
		n++
	}
	return n >= 13 && n <= 19 && sum%10 == 0
}
