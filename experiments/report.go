package experiments

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
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
	sections []section
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
	doc.intro = append(doc.intro, fmt.Sprintf("Ran %s on %d workers in %s. Reproduce with `routelab experiment --spec spec.yaml`.",
		r.Started.UTC().Format(time.RFC3339), r.Workers, r.Elapsed.Round(time.Millisecond)))

	// Overview: reward/oracle, policies × scenarios, best in bold.
	ov := table{head: append([]string{"policy"}, a.Scenarios...), text: 1}
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
		paras: []string{fmt.Sprintf("Mean ± %s half-width over %d seeds; the best policy per scenario in bold.", conf, n)}}
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
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Intro}}<p>{{.}}</p>
{{end}}
{{range .Sections}}<h{{.Level}}>{{.Title}}</h{{.Level}}>
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
		Intro    []template.HTML
		Sections []htmlSection
	}{Title: doc.title}
	for _, p := range doc.intro {
		data.Intro = append(data.Intro, codeSpans(p))
	}
	for _, sec := range doc.sections {
		hs := htmlSection{Title: sec.title, Level: sec.level}
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
