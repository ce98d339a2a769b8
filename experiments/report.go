package experiments

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"unicode"
)

// The report is built once as a small document model (sections of
// paragraphs, tables and figures) and rendered to Markdown and to HTML, so
// the two always say the same thing.

type table struct {
	head []string
	rows [][]cell
	// text is the number of leading text (left-aligned) columns.
	text int
}

type cell struct {
	text    string
	strong  bool
	verdict Verdict
}

type section struct {
	title   string
	level   int
	paras   []string
	tables  []table
	figures []Figure
}

type document struct {
	title    string
	intro    []string
	warnings []string
	sections []section
}

// horizonWarnings names, per scenario, the timed events the cells' runs
// ended before: a shortened run silently measures another experiment.
func horizonWarnings(a *Analysis) []string {
	var out []string
	for _, sc := range a.Scenarios {
		var cut []string
		for _, e := range a.Events[sc] {
			if e.Seconds >= a.Horizon[sc] {
				cut = append(cut, e.Label)
			}
		}
		if len(cut) > 0 {
			out = append(out, fmt.Sprintf("Warning: on %s the runs end after %s of virtual time, before the scenario's %s. Those events are not in these results; run more requests to include them.",
				sc, fmtSeconds(a.Horizon[sc]), strings.Join(cut, "; ")))
		}
	}
	return out
}

// simpleKinds are the policies that do not learn from rewards: the
// baselines a learner has to beat to earn its complexity.
var simpleKinds = []string{"random", "weighted"}

// summarySection is the key table: per scenario the best policy by
// reward/oracle and the strongest simple baseline beside it, with their
// paired difference.
func summarySection(r *Results, a *Analysis) section {
	ratio, _ := MetricByName("oracle_ratio")
	reward, _ := MetricByName("mean_reward")
	conf := pct(a.Confidence)
	t := table{head: []string{"scenario", "best policy", "best simple baseline", "best", "simple", "Δ best − simple (" + conf + " CI)"}, text: 3}
	nPol, nSeed := len(a.Policies), len(a.Seeds)
	vals := func(si, pi int, m Metric) []float64 {
		i := (si*nPol + pi) * nSeed
		return values(r.Cells[i:i+nSeed], m)
	}
	anyStateful := false
	for si, sc := range a.Scenarios {
		// Where the oracle follows the state the policy itself created
		// (rate limits, fillable queues), reward / oracle does not rank
		// policies: rank and show the mean reward instead.
		m, label := ratio, sc
		if a.Stateful[sc] {
			m, label, anyStateful = reward, sc+" †", true
		}
		best := a.Best(sc)
		bs, _ := a.Summary(sc, best, m.Name)
		row := []cell{{text: label}, {text: best, strong: true}}
		simple, sv := -1, 0.0
		for pi, pol := range a.Policies {
			if pi < len(a.Kinds) && slices.Contains(simpleKinds, a.Kinds[pi]) {
				if sm, _ := a.Summary(sc, pol, m.Name); simple < 0 || sm.Mean > sv {
					simple, sv = pi, sm.Mean
				}
			}
		}
		if simple < 0 {
			row = append(row, cell{text: "—"}, cell{text: fmtInterval(m.Format, bs.Interval)}, cell{text: "—"}, cell{text: "—"})
		} else {
			sm, _ := a.Summary(sc, a.Policies[simple], m.Name)
			row = append(row, cell{text: a.Policies[simple]}, cell{text: fmtInterval(m.Format, bs.Interval)}, cell{text: fmtInterval(m.Format, sm.Interval)})
			d := "n/a"
			if c, err := Compare(vals(si, slices.Index(a.Policies, best), m), vals(si, simple, m), a.Confidence, true); err == nil {
				df := diffFormat(m)
				d = fmt.Sprintf(df, c.Diff.Mean)
				if c.Diff.Defined() {
					d += " " + fmtRange(df, c.Diff)
				}
			}
			row = append(row, cell{text: d})
		}
		t.rows = append(t.rows, row)
	}
	kinds := simpleKinds
	paras := []string{fmt.Sprintf(
		"Per scenario, the policy with the highest mean reward / oracle and the best of the simple baselines (policies that do not learn: %s), mean ± %s half-width over %d seeds, and their paired difference with its %s interval.",
		strings.Join(kinds, ", "), conf, nSeed, conf)}
	if anyStateful {
		paras = append(paras, "† A scenario with rate limits or queues the traffic can fill: its oracle is computed against the state the policy's own choices created, so reward / oracle can rank policies the wrong way round. These rows rank and show the mean reward instead (common random numbers make it comparable across policies); `routelab sim` reports the best fixed arm there as the policy-independent reference.")
	}
	return section{title: "Summary", level: 2, tables: []table{t}, paras: paras}
}

// anchor is a section's link target: GitHub's heading slug (lower case,
// punctuation dropped, spaces to hyphens), also used as the HTML id.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func fmtInterval(format string, iv Interval) string {
	if math.IsNaN(iv.Mean) {
		return "n/a"
	}
	m := fmt.Sprintf(format, iv.Mean)
	if !iv.Defined() {
		return m
	}
	return m + " ± " + fmt.Sprintf(format, iv.HalfWidth())
}

func fmtRange(format string, iv Interval) string {
	if !iv.Defined() {
		return "n/a"
	}
	return "[" + fmt.Sprintf(format, iv.Lo) + ", " + fmt.Sprintf(format, iv.Hi) + "]"
}

func fmtP(p float64) string {
	switch {
	case math.IsNaN(p):
		return "n/a"
	case p < 1e-4:
		return "<0.0001"
	default:
		return fmt.Sprintf("%.4f", p)
	}
}

// diffFormat prints a difference with the metric's precision and a sign.
func diffFormat(m Metric) string {
	return strings.Replace(m.Format, "%", "%+", 1)
}

// fmtRelative prints a difference relative to the baseline's mean.
func fmtRelative(diff, base float64) string {
	if base == 0 || math.IsNaN(diff) || math.IsNaN(base) {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", 100*diff/math.Abs(base))
}

func buildDocument(r *Results, a *Analysis, figs []Figure) document {
	s := r.Spec
	title := s.Report.Title
	if title == "" {
		title = "Experiment: " + s.Name
	}
	conf := pct(a.Confidence)
	n := len(a.Seeds)
	reqs := cellSizes(r, a)
	doc := document{title: title}
	if s.Description != "" {
		doc.intro = append(doc.intro, s.Description)
	}
	doc.intro = append(doc.intro,
		fmt.Sprintf("%d policies × %d scenarios × %d seeds = %d independent simulations of %s (seeds %s).",
			len(a.Policies), len(a.Scenarios), n, len(r.Cells), reqs, seedList(a.Seeds)),
		fmt.Sprintf("Every number is a mean over seeds with a %s Student-t interval (shown as mean ± half-width). "+
			"Comparisons are paired: every policy ran on the same seeds, which give every policy the same requests and the same latent latency, error and quality draws (common random numbers), "+
			"so the interval of the per-seed difference policy − baseline (baseline: %s) is much narrower than the two policies' separate intervals. "+
			"A difference is significant when its interval excludes 0. %s", conf, a.Baseline, correctionNote(a)),
		"reward / oracle is the chosen models' expected reward over the oracle's (the best candidate's expected reward per request); regret is Σ over requests of that gap.",
	)
	if n < 2 {
		doc.intro = append(doc.intro, "With a single seed there are no intervals and no verdicts: run more seeds.")
	}
	// No wall-clock facts (start time, duration, workers): the report is a
	// deterministic function of the spec, so that a committed report can be
	// checked by regenerating it byte for byte.
	doc.intro = append(doc.intro, "Reproduce with `routelab experiment --spec spec.yaml` (the results do not depend on the machine or on --parallel).")
	for _, w := range horizonWarnings(a) {
		doc.warnings = append(doc.warnings, w)
	}
	doc.sections = append(doc.sections, summarySection(r, a))

	// Overview: reward/oracle, policies × scenarios, best in bold.
	ov := table{head: []string{"policy"}, text: 1}
	for _, sc := range a.Scenarios {
		if a.Stateful[sc] {
			sc += " †"
		}
		ov.head = append(ov.head, sc)
	}
	ratio, _ := MetricByName("oracle_ratio")
	for _, pol := range a.Policies {
		row := []cell{{text: pol}}
		for _, sc := range a.Scenarios {
			sm, _ := a.Summary(sc, pol, ratio.Name)
			row = append(row, cell{text: fmtInterval(ratio.Format, sm.Interval), strong: a.Best(sc) == pol})
		}
		ov.rows = append(ov.rows, row)
	}
	overview := section{title: "Overview: reward / oracle", level: 2, tables: []table{ov},
		paras: []string{fmt.Sprintf("Mean ± %s half-width over %d seeds; the best policy per scenario in bold (on † scenarios, whose oracle follows the state the policy created, the best by mean reward: there the ratio does not rank policies).", conf, n)}}
	for _, f := range figs {
		if f.Name == "oracle-ratio.svg" {
			overview.figures = append(overview.figures, f)
		}
	}
	doc.sections = append(doc.sections, overview)

	for i, sc := range a.Scenarios {
		sec := section{title: "Scenario: " + sc, level: 2}
		if d := s.scenarios[i].Description; d != "" {
			sec.paras = append(sec.paras, d)
		}
		mt := table{head: []string{"policy"}, text: 1}
		for _, m := range a.Metrics {
			mt.head = append(mt.head, m.Title)
		}
		for _, pol := range a.Policies {
			row := []cell{{text: pol, strong: pol == a.Baseline}}
			for _, m := range a.Metrics {
				sm, _ := a.Summary(sc, pol, m.Name)
				row = append(row, cell{text: fmtInterval(m.Format, sm.Interval)})
			}
			mt.rows = append(mt.rows, row)
		}
		sec.tables = append(sec.tables, mt)
		sec.paras = append(sec.paras, fmt.Sprintf("Metrics: mean ± %s half-width over %d seeds (baseline in bold). Then paired differences from the baseline %s: the mean per-seed difference, its %s interval, the difference relative to the baseline's mean, the two-sided paired-t p-value (unadjusted), and the verdict (significant when the interval excludes 0; better or worse by the metric's direction: reward and reward/oracle higher, the rest lower).", conf, n, a.Baseline, pct(a.ComparisonLevel)))
		if len(a.Policies) > 1 {
			ct := table{head: []string{"policy", "metric", "Δ (policy − " + a.Baseline + ")", pct(a.ComparisonLevel) + " CI", "Δ / baseline", "p", "verdict"}, text: 2}
			for _, pol := range a.Policies {
				if pol == a.Baseline {
					continue
				}
				for _, m := range a.Metrics {
					c, _ := a.Comparison(sc, pol, m.Name)
					bs, _ := a.Summary(sc, a.Baseline, m.Name)
					df := diffFormat(m)
					ct.rows = append(ct.rows, []cell{{text: pol}, {text: m.Title}, {text: fmt.Sprintf(df, c.Diff.Mean)},
						{text: fmtRange(df, c.Diff)}, {text: fmtRelative(c.Diff.Mean, bs.Mean)}, {text: fmtP(c.P)}, {text: string(c.Verdict), verdict: c.Verdict}})
				}
			}
			sec.tables = append(sec.tables, ct)
		}
		for _, f := range figs {
			if strings.HasPrefix(f.Name, fmt.Sprintf("regret-%d-", i+1)) || strings.HasPrefix(f.Name, fmt.Sprintf("shares-%d-", i+1)) {
				sec.figures = append(sec.figures, f)
			}
		}
		doc.sections = append(doc.sections, sec)
	}
	return doc
}

func correctionNote(a *Analysis) string {
	k := len(a.Policies) - 1
	if a.Correction == CorrectionBonferroni && k > 1 {
		return fmt.Sprintf("Bonferroni correction: the %d comparisons of each scenario and metric use %s intervals, so the chance of any false verdict among them is at most %s.",
			k, pct(a.ComparisonLevel), pct(1-a.Confidence))
	}
	if k > 1 {
		return fmt.Sprintf("No correction is made for the number of comparisons (%d per scenario and metric; set report.correction: bonferroni for one).", k)
	}
	return ""
}

// cellSizes describes the cells' run lengths: "20000 requests each" or
// per scenario.
func cellSizes(r *Results, a *Analysis) string {
	per := make([]int, len(a.Scenarios))
	nPerScenario := len(r.Cells) / max(1, len(a.Scenarios))
	same := true
	for i := range per {
		if c := r.Cells[i*nPerScenario]; c.Result != nil {
			per[i] = c.Result.Requests
		}
		same = same && per[i] == per[0]
	}
	if same {
		return fmt.Sprintf("%d requests each", per[0])
	}
	parts := make([]string, len(per))
	for i, n := range per {
		parts[i] = fmt.Sprintf("%s %d", a.Scenarios[i], n)
	}
	return "requests per cell: " + strings.Join(parts, ", ")
}

func seedList(seeds []uint64) string {
	if len(seeds) == 0 {
		return ""
	}
	consecutive := true
	for i := 1; i < len(seeds); i++ {
		if seeds[i] != seeds[i-1]+1 {
			consecutive = false
			break
		}
	}
	if consecutive && len(seeds) > 2 {
		return fmt.Sprintf("%d–%d", seeds[0], seeds[len(seeds)-1])
	}
	parts := make([]string, len(seeds))
	for i, s := range seeds {
		parts[i] = fmt.Sprint(s)
	}
	return strings.Join(parts, ", ")
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// WriteMarkdown writes the report as Markdown; figures are linked as
// figures/NAME (Write puts them there).
func WriteMarkdown(w io.Writer, r *Results, a *Analysis, figs []Figure) error {
	doc := buildDocument(r, a, figs)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n", doc.title)
	for _, w := range doc.warnings {
		fmt.Fprintf(&b, "> **%s**\n\n", mdEscape(w))
	}
	b.WriteString("Contents:\n\n")
	for _, sec := range doc.sections {
		fmt.Fprintf(&b, "- [%s](#%s)\n", sec.title, anchor(sec.title))
	}
	b.WriteString("\n")
	for _, p := range doc.intro {
		fmt.Fprintf(&b, "%s\n\n", p)
	}
	for _, sec := range doc.sections {
		fmt.Fprintf(&b, "%s %s\n\n", strings.Repeat("#", sec.level), sec.title)
		for _, p := range sec.paras {
			fmt.Fprintf(&b, "%s\n\n", p)
		}
		for _, t := range sec.tables {
			b.WriteString("|")
			for _, h := range t.head {
				fmt.Fprintf(&b, " %s |", mdEscape(h))
			}
			b.WriteString("\n|")
			for i := range t.head {
				if i < t.text || i == len(t.head)-1 && t.text == 2 {
					b.WriteString("---|")
				} else {
					b.WriteString("---:|")
				}
			}
			b.WriteString("\n")
			for _, row := range t.rows {
				b.WriteString("|")
				for _, c := range row {
					txt := mdEscape(c.text)
					if c.strong || c.verdict == Better || c.verdict == Worse {
						txt = "**" + txt + "**"
					}
					fmt.Fprintf(&b, " %s |", txt)
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		}
		for _, f := range sec.figures {
			fmt.Fprintf(&b, "![%s](figures/%s)\n\n*%s*\n\n", f.Title, f.Name, f.Caption)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.better { background: #dff3df; font-weight: bold; }
td.worse { background: #f8dcdc; font-weight: bold; }
figure { margin: 1.5em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
p.warning { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em 0.8em; }
nav ul { margin-top: 0; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Warnings}}<p class="warning"><strong>{{.}}</strong></p>
{{end}}<nav><p>Contents:</p><ul>
{{range .Sections}}<li><a href="#{{.ID}}">{{.Title}}</a></li>
{{end}}</ul></nav>
{{range .Intro}}<p>{{.}}</p>
{{end}}
{{range .Sections}}<h{{.Level}} id="{{.ID}}">{{.Title}}</h{{.Level}}>
{{range .Paras}}<p>{{.}}</p>
{{end}}{{range .Tables}}<table>
<tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{if .Strong}}<strong>{{.Text}}</strong>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{range .Figures}}<figure>
{{.SVG}}
<figcaption><strong>{{.Title}}.</strong> {{.Caption}}</figcaption>
</figure>
{{end}}{{end}}
</body>
</html>
`))

type htmlCell struct {
	Text, Class string
	Strong      bool
}

type htmlFigure struct {
	Title, Caption string
	SVG            template.HTML
}

type htmlTable struct {
	Head []string
	Rows [][]htmlCell
}

type htmlSection struct {
	Title   string
	ID      string
	Level   int
	Paras   []template.HTML
	Tables  []htmlTable
	Figures []htmlFigure
}

// inlineSVG strips the XML prolog and comment from an SVG document so that
// it can be embedded in HTML.
func inlineSVG(svg []byte) template.HTML {
	s := string(svg)
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	// Safe to trust: gonum/plot's SVG canvas writes only numbers and
	// styles, and escapes every text (labels, titles) with html.EscapeString
	// (TestHTMLEscapesLabels).
	return template.HTML(s)
}

// codeSpans turns `x` into <code>x</code> after escaping.
func codeSpans(p string) template.HTML {
	esc := template.HTMLEscapeString(p)
	parts := strings.Split(esc, "`")
	var b strings.Builder
	for i, part := range parts {
		if i%2 == 1 && i < len(parts)-1 {
			b.WriteString("<code>" + part + "</code>")
		} else {
			if i%2 == 1 {
				b.WriteString("`")
			}
			b.WriteString(part)
		}
	}
	return template.HTML(b.String())
}

// WriteHTML writes the report as one self-contained HTML file, figures
// inline as SVG.
func WriteHTML(w io.Writer, r *Results, a *Analysis, figs []Figure) error {
	doc := buildDocument(r, a, figs)
	data := struct {
		Title    string
		Warnings []string
		Intro    []template.HTML
		Sections []htmlSection
	}{Title: doc.title, Warnings: doc.warnings}
	for _, p := range doc.intro {
		data.Intro = append(data.Intro, codeSpans(p))
	}
	for _, sec := range doc.sections {
		hs := htmlSection{Title: sec.title, ID: anchor(sec.title), Level: sec.level}
		for _, p := range sec.paras {
			hs.Paras = append(hs.Paras, codeSpans(p))
		}
		for _, t := range sec.tables {
			ht := htmlTable{Head: t.head}
			for _, row := range t.rows {
				var hr []htmlCell
				for i, c := range row {
					class := ""
					if i >= t.text {
						class = "num"
					}
					switch c.verdict {
					case Better:
						class = "better"
					case Worse:
						class = "worse"
					}
					hr = append(hr, htmlCell{Text: c.text, Class: class, Strong: c.strong})
				}
				ht.Rows = append(ht.Rows, hr)
			}
			hs.Tables = append(hs.Tables, ht)
		}
		for _, f := range sec.figures {
			hs.Figures = append(hs.Figures, htmlFigure{Title: f.Title, Caption: f.Caption, SVG: inlineSVG(f.SVG)})
		}
		data.Sections = append(data.Sections, hs)
	}
	if err := htmlTmpl.Execute(w, data); err != nil {
		return fmt.Errorf("render HTML report: %w", err)
	}
	return nil
}
