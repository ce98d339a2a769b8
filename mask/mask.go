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
	re    *regexp.Regexp
	kinds []string // kinds[i] is the detector of capture group i+1
	// prefix[i]: group i+1's leading "key=" part is kept (credential kinds).
	keep []bool
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
	var alts []string
	for _, n := range All { // fixed priority whatever the configured order
		if !want[n] {
			continue
		}
		alts = append(alts, "("+patterns[n]+")")
		m.kinds = append(m.kinds, n)
		m.keep = append(m.keep, n == Credential || n == SSN || n == Cloud)
	}
	re, err := regexp.Compile(strings.Join(alts, "|"))
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	m.re = re
	return m, nil
}

// quick reports whether s could hold anything a detector finds: every
// pattern needs a digit, '@', '=', ':', '-' or '_' somewhere. It lets
// plain words skip the regexp.
func quick(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c == '@', c == '=', c == ':', c == '-', c == '_':
			return true
		}
	}
	return false
}

// String returns s with every finding replaced by "[REDACTED:kind]" (for
// "key=value" findings the key is kept: "token=[REDACTED:credential]").
// s itself is returned when nothing is found.
func (m *Masker) String(s string) string {
	if m == nil || !quick(s) {
		return s
	}
	locs := m.re.FindAllStringSubmatchIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		g := 0
		for i := 1; i < len(loc)/2; i++ {
			if loc[2*i] >= 0 {
				g = i
				break
			}
		}
		if g == 0 {
			continue
		}
		start, end := loc[2*g], loc[2*g+1]
		kind := m.kinds[g-1]
		if kind == Card && !luhn(s[start:end]) {
			continue
		}
		if m.keep[g-1] {
			if k := strings.IndexAny(s[start:end], "=:"); k >= 0 && !strings.HasPrefix(s[start:end], "-----") && !strings.HasPrefix(s[start:end], "AIza") {
				start += k + 1
				for start < end && s[start] == ' ' {
					start++
				}
			}
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[last:start])
		b.WriteString("[REDACTED:")
		b.WriteString(kind)
		b.WriteByte(']')
		last = end
	}
	if last == 0 {
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
