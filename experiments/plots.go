package experiments

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure is one SVG plot of the report.
type Figure struct {
	// Name is its file name under figures/ ("regret-1-steady.svg").
	Name string
	// Title and Caption describe it in the reports.
	Title   string
	Caption string
	SVG     []byte

	plot *plot.Plot
}

const (
	figWidth  = 7 * vg.Inch
	figHeight = 4 * vg.Inch
)

// Figures draws the report's plots: per scenario, cumulative regret over
// time per policy with its confidence band, and the arm shares over time of
// the scenario's best policy; across scenarios, reward/oracle per policy
// with error bars.
func Figures(a *Analysis) ([]Figure, error) {
	var figs []Figure
	f, err := ratioFigure(a)
	if err != nil {
		return nil, err
	}
	figs = append(figs, f)
	for i, sc := range a.Scenarios {
		f, err := regretFigure(a, sc, i)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
		f, err = sharesFigure(a, sc, i)
		if err != nil {
			return nil, err
		}
		figs = append(figs, f)
	}
	return figs, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	p.X.Tick.Marker = countTicks{}
	for _, st := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle, &p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle} {
		sans(st)
	}
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Top, p.Legend.Left = true, true
	return p
}

// sans sets a text style's font to Liberation Sans (gonum/plot's bundled
// sans-serif), whose metrics lay out the SVG; the SVG then names the
// report page's fonts first (see render).
func sans(st *text.Style) {
	st.Font.Typeface = "Liberation"
	st.Font.Variant = "Sans"
}

// svgSans is what the SVG names its font; render widens it to the HTML
// page's font stack.
const svgSans = "font-family:Liberation Sans;"

const pageFonts = `font-family:-apple-system,'Segoe UI',Helvetica,Arial,'Liberation Sans',sans-serif;`

func render(p *plot.Plot) ([]byte, error) {
	lg := p.Legend
	return renderPanels([]*plot.Plot{p}, 1, &lg, figWidth, figHeight)
}

// renderPanels draws plots as a grid of cols columns and, when legend has
// entries, the legend in a strip right of the grid (outside every plot's
// data area, so that it never hides data), and returns the SVG.
func renderPanels(plots []*plot.Plot, cols int, legend *plot.Legend, w, h vg.Length) ([]byte, error) {
	c := vgsvg.New(w, h)
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	area := dc
	if legend != nil {
		if r := legend.Rectangle(dc); r.Max.X > r.Min.X {
			// Room beyond the layout font's width: viewers without
			// Liberation Sans substitute wider fonts.
			lw := (r.Max.X-r.Min.X)*1.25 + vg.Points(16)
			area = draw.Crop(dc, 0, -lw, 0, 0)
			lc := draw.Crop(dc, w-lw+vg.Points(8), 0, 0, -vg.Points(24))
			legend.Top, legend.Left = true, true
			legend.Draw(lc)
		}
	}
	for _, p := range plots {
		p.Legend = plot.NewLegend() // drawn outside, above
	}
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	cs := plot.Align(grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6), PadTop: vg.Points(2), PadBottom: vg.Points(2), PadLeft: vg.Points(2), PadRight: vg.Points(2)}, area)
	for i, p := range plots {
		p.Draw(cs[i/cols][i%cols])
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("render plot %q: %w", plots[0].Title.Text, err)
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte(svgSans), []byte(pageFonts)), nil
}

// eventMarkers draw a scenario's timed events (outages, drifts) as dashed
// vertical lines labelled along the line, at request positions.
type eventMarkers struct {
	xs     []float64
	labels []string
}

func newEventMarkers(a *Analysis, scenario string, s Series) *eventMarkers {
	m := &eventMarkers{}
	for _, e := range a.Events[scenario] {
		if x, ok := s.RequestAt(e.Seconds); ok {
			m.xs = append(m.xs, x)
			m.labels = append(m.labels, e.Label)
		}
	}
	return m
}

// Plot implements plot.Plotter.
func (m *eventMarkers) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, _ := plt.Transforms(&c)
	ls := draw.LineStyle{Color: color.NRGBA{0x55, 0x55, 0x55, 0xff}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(2), vg.Points(2)}}
	st := plt.X.Tick.Label
	st.Font.Size = vg.Points(8)
	st.Color = color.NRGBA{0x33, 0x33, 0x33, 0xff}
	st.Rotation = math.Pi / 2
	st.XAlign, st.YAlign = text.XLeft, text.YBottom
	for i, x := range m.xs {
		px := trX(x)
		if px < c.Min.X || px > c.Max.X {
			continue
		}
		c.StrokeLine2(ls, px, c.Min.Y, px, c.Max.Y)
		// Reads upwards, ending just below the data area's top, left of
		// the line.
		w := st.Width(m.labels[i]) * 1.2
		c.FillText(st, vg.Point{X: px - vg.Points(2), Y: c.Max.Y - vg.Points(4) - w}, m.labels[i])
	}
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}

// regretFigure plots every policy's mean cumulative regret on scenario with
// its pointwise confidence band across seeds.
func regretFigure(a *Analysis, scenario string, idx int) (Figure, error) {
	p := newPlot("Cumulative regret — "+scenario, "requests", "cumulative regret")
	if s, ok := a.SeriesOf(scenario, a.Policies[0]); ok {
		p.Add(newEventMarkers(a, scenario, s))
	}
	for i, pol := range a.Policies {
		s, ok := a.SeriesOf(scenario, pol)
		if !ok || len(s.End) == 0 {
			continue
		}
		mean := make(plotter.XYs, 0, len(s.End)+1)
		mean = append(mean, plotter.XY{})
		for w, x := range s.End {
			mean = append(mean, plotter.XY{X: x, Y: s.Regret[w].Mean})
		}
		col := color10(i)
		if s.Regret[0].Defined() {
			band := make(plotter.XYs, 0, 2*len(s.End)+1)
			band = append(band, plotter.XY{})
			for w, x := range s.End {
				band = append(band, plotter.XY{X: x, Y: s.Regret[w].Hi})
			}
			for w := len(s.End) - 1; w >= 0; w-- {
				band = append(band, plotter.XY{X: s.End[w], Y: s.Regret[w].Lo})
			}
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return Figure{}, fmt.Errorf("regret band of %q on %q: %w", pol, scenario, err)
			}
			poly.Color = withAlpha(col, 60)
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		l, err := plotter.NewLine(mean)
		if err != nil {
			return Figure{}, fmt.Errorf("regret of %q on %q: %w", pol, scenario, err)
		}
		l.Color = col
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(i)
		p.Add(l)
		p.Legend.Add(pol, l)
	}
	svg, err := render(p)
	if err != nil {
		return Figure{}, err
	}
	return Figure{
		plot:  p,
		Name:  fmt.Sprintf("regret-%d-%s.svg", idx+1, fileSafe(scenario)),
		Title: "Cumulative regret on " + scenario,
		Caption: fmt.Sprintf("Mean over %d seeds of the cumulative regret (Σ oracle − chosen expected reward); the band is the pointwise %s Student-t interval.%s",
			len(a.Seeds), pct(a.Confidence), eventsNote(a, scenario)),
		SVG: svg,
	}, nil
}

// sharesFigure plots the arm shares per window of scenario's best policy
// (solid) and where the oracle would have routed the same requests
// (dashed), both averaged over seeds. On a scenario with several tasks it
// draws one panel per task instead: pooled over tasks, a policy that
// routes each task to its own best model shows flat lines that say
// nothing.
func sharesFigure(a *Analysis, scenario string, idx int) (Figure, error) {
	best := a.Best(scenario)
	s, ok := a.SeriesOf(scenario, best)
	fig := Figure{
		Name:  fmt.Sprintf("shares-%d-%s.svg", idx+1, fileSafe(scenario)),
		Title: fmt.Sprintf("Arm shares of the best policy (%s) on %s", best, scenario),
		Caption: fmt.Sprintf("Fraction of each window's requests routed to each model by %s (solid) and by the oracle on the same requests (dashed), mean over %d seeds.%s",
			best, len(a.Seeds), eventsNote(a, scenario)),
	}
	sharePlot := func(title string) *plot.Plot {
		p := newPlot(title, "requests", "share of requests in window")
		p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 1
		p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"}, {Value: 0.75, Label: "0.75"}, {Value: 1, Label: "1"}})
		if ok {
			p.Add(newEventMarkers(a, scenario, s))
		}
		return p
	}
	var legend plot.Legend
	addLine := func(p *plot.Plot, shares []float64, i int, dashed bool) error {
		xy := make(plotter.XYs, 0, len(s.Mid))
		for w, x := range s.Mid {
			if w < len(shares) && !math.IsNaN(shares[w]) {
				xy = append(xy, plotter.XY{X: x, Y: shares[w]})
			}
		}
		if len(xy) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("arm shares of %q on %q: %w", best, scenario, err)
		}
		l.Color = color10(i)
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			l.Width = vg.Points(1)
		}
		p.Add(l)
		return nil
	}
	if ok && len(s.Tasks) > 1 {
		var panels []*plot.Plot
		for _, task := range s.Tasks {
			p := sharePlot("task " + task)
			p.Title.TextStyle.Font.Size = vg.Points(11)
			p.X.Label.Text, p.Y.Label.Text = "requests", "share of task"
			for i, arm := range s.Arms {
				if err := addLine(p, s.TaskArmShares[task][arm], i, false); err != nil {
					return Figure{}, err
				}
			}
			panels = append(panels, p)
		}
		legend = newPlot("", "", "").Legend
		for i, arm := range s.Arms {
			legend.Add(arm, lineSwatch(i))
		}
		cols := min(2, len(panels))
		rows := (len(panels) + cols - 1) / cols
		svg, err := renderPanels(panels, cols, &legend, figWidth, vg.Length(rows)*2.6*vg.Inch)
		if err != nil {
			return Figure{}, err
		}
		fig.Title = fmt.Sprintf("Arm shares per task of the best policy (%s) on %s", best, scenario)
		fig.Caption = fmt.Sprintf("One panel per task: the fraction of the task's requests in each window that %s routed to each model, pooled over %d seeds.%s",
			best, len(a.Seeds), eventsNote(a, scenario))
		fig.SVG = svg
		return fig, nil
	}
	p := sharePlot(fmt.Sprintf("Arm shares — %s, %s", best, scenario))
	if ok {
		for i, arm := range s.Arms {
			if err := addLine(p, s.ArmShares[arm], i, false); err != nil {
				return Figure{}, err
			}
			if err := addLine(p, s.OracleArmShares[arm], i, true); err != nil {
				return Figure{}, err
			}
			p.Legend.Add(arm, lineSwatch(i))
		}
		p.Legend.Add("oracle (dashed)", dashSwatch{})
	}
	svg, err := render(p)
	if err != nil {
		return Figure{}, err
	}
	fig.plot, fig.SVG = p, svg
	return fig, nil
}

// lineSwatch is the legend thumbnail of arm i's solid line.
func lineSwatch(i int) plot.Thumbnailer {
	l := &plotter.Line{LineStyle: draw.LineStyle{Color: color10(i), Width: vg.Points(1.5)}}
	return l
}

// dashSwatch is a grey dashed legend thumbnail.
type dashSwatch struct{}

// Thumbnail implements plot.Thumbnailer.
func (dashSwatch) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(draw.LineStyle{Color: color.NRGBA{0x55, 0x55, 0x55, 0xff}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}, c.Min.X, y, c.Max.X, y)
}

// eventsNote is the captions' sentence on the scenario's event markers.
func eventsNote(a *Analysis, scenario string) string {
	evs := a.Events[scenario]
	if len(evs) == 0 {
		return ""
	}
	var in, out []string
	for _, e := range evs {
		if e.Seconds < a.Horizon[scenario] {
			in = append(in, e.Label)
		} else {
			out = append(out, e.Label)
		}
	}
	note := ""
	if len(in) > 0 {
		note = " Dashed vertical lines mark the scenario's events: " + strings.Join(in, "; ") + "."
	}
	if len(out) > 0 {
		note += " Not reached by this run (past its last request): " + strings.Join(out, "; ") + "."
	}
	return note
}

// ratioFigure is a grouped bar chart: per scenario, every policy's mean
// reward/oracle with its confidence interval as an error bar.
func ratioFigure(a *Analysis) (Figure, error) {
	p := newPlot("Reward / oracle", "", "reward / oracle (expected)")
	bars := &groupedBars{groups: len(a.Scenarios), series: len(a.Policies), ymin: math.Inf(1), ymax: 1}
	for _, pol := range a.Policies {
		var row []Interval
		for _, sc := range a.Scenarios {
			s, _ := a.Summary(sc, pol, "oracle_ratio")
			row = append(row, s.Interval)
			lo := s.Mean
			if s.Defined() {
				lo = s.Lo
			}
			bars.ymin = math.Min(bars.ymin, lo)
		}
		bars.values = append(bars.values, row)
	}
	// Bars start at a round value below the lowest interval rather than at
	// 0: ratios of sensible policies sit near 1, and from 0 their
	// differences would be invisible. The caption says so.
	bars.ymin = math.Max(0, math.Floor((bars.ymin-0.02)*20)/20)
	p.Add(bars)
	p.NominalX(a.Scenarios...)
	if len(a.Scenarios) > 4 {
		// Slanted names do not run into each other.
		p.X.Tick.Label.Rotation = math.Pi / 8
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = text.XRight, text.YTop
	}
	p.Y.Min = bars.ymin
	p.Y.Max = 1 // a ratio to the oracle: the axis ends at 1
	for i, pol := range a.Policies {
		p.Legend.Add(pol, swatch{color10(i)})
	}
	svg, err := render(p)
	if err != nil {
		return Figure{}, err
	}
	return Figure{
		plot:  p,
		Name:  "oracle-ratio.svg",
		Title: "Reward / oracle per scenario",
		Caption: fmt.Sprintf("Mean over %d seeds of expected reward / oracle reward; error bars are %s Student-t intervals (cut at 1, the most a ratio to the oracle can be). The axis starts at %.2f, not 0.",
			len(a.Seeds), pct(a.Confidence), bars.ymin),
		SVG: svg,
	}, nil
}

// groupedBars draws groups of bars (one group per x position, one bar per
// series) with error bars; plotter.BarChart offsets bars in canvas units,
// which error bars in data units cannot follow.
type groupedBars struct {
	groups, series int
	values         [][]Interval // [series][group]
	ymin           float64
	// ymax cuts the error bars (a ratio's interval can pass 1; its axis
	// does not).
	ymax float64
}

const groupWidth = 0.8

func (g *groupedBars) barX(group, series int) (lo, hi float64) {
	w := groupWidth / float64(g.series)
	lo = float64(group) - groupWidth/2 + float64(series)*w
	return lo, lo + w
}

// Plot implements plot.Plotter.
func (g *groupedBars) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	errStyle := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	for s, row := range g.values {
		col := color10(s)
		for grp, iv := range row {
			if math.IsNaN(iv.Mean) {
				continue
			}
			x0, x1 := g.barX(grp, s)
			pts := []vg.Point{
				{X: trX(x0), Y: trY(g.ymin)}, {X: trX(x1), Y: trY(g.ymin)},
				{X: trX(x1), Y: trY(iv.Mean)}, {X: trX(x0), Y: trY(iv.Mean)},
			}
			c.FillPolygon(col, c.ClipPolygonXY(pts))
			if !iv.Defined() {
				continue
			}
			xm := trX((x0 + x1) / 2)
			tick := (trX(x1) - trX(x0)) / 4
			lo, hi := trY(iv.Lo), trY(math.Min(iv.Hi, g.ymax))
			c.StrokeLine2(errStyle, xm, lo, xm, hi)
			c.StrokeLine2(errStyle, xm-tick, lo, xm+tick, lo)
			c.StrokeLine2(errStyle, xm-tick, hi, xm+tick, hi)
		}
	}
}

// DataRange implements plot.DataRanger.
func (g *groupedBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = -0.5, float64(g.groups)-0.5
	ymin, ymax = g.ymin, g.ymin
	for _, row := range g.values {
		for _, iv := range row {
			ymax = math.Max(ymax, iv.Mean)
			if iv.Defined() {
				ymax = math.Max(ymax, math.Min(iv.Hi, g.ymax))
			}
		}
	}
	return xmin, xmax, ymin, ymax
}

// swatch is a legend thumbnail filled with one colour.
type swatch struct{ c color.Color }

// Thumbnail implements plot.Thumbnailer.
func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.c, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Max.X, Y: c.Min.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Min.X, Y: c.Max.Y},
	})
}

// tab10 is the Tableau 10 palette: ten colours that stay distinct from
// one another, in print and for common colour-vision deficiencies; then
// ten lighter shades.
var tab10 = [...]color.NRGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
	// Then Tableau 20's light shades, for more than ten policies.
	{0xae, 0xc7, 0xe8, 0xff}, {0xff, 0xbb, 0x78, 0xff}, {0x98, 0xdf, 0x8a, 0xff}, {0xff, 0x98, 0x96, 0xff},
	{0xc5, 0xb0, 0xd5, 0xff}, {0xc4, 0x9c, 0x94, 0xff}, {0xf7, 0xb6, 0xd2, 0xff}, {0xc7, 0xc7, 0xc7, 0xff},
	{0xdb, 0xdb, 0x8d, 0xff}, {0x9e, 0xda, 0xe5, 0xff},
}

func color10(i int) color.Color { return tab10[i%len(tab10)] }

// countTicks are the default ticks labelled as plain numbers (request
// counts), without the trailing zeros the default labels get.
type countTicks struct{}

// Ticks implements plot.Ticker.
func (countTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

func pct(level float64) string {
	return fmt.Sprintf("%g%%", math.Round(level*1e4)/1e2)
}

// fileSafe maps a scenario name to a file-name fragment.
func fileSafe(s string) string {
	b := []byte(s)
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
