package experiments

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
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
	return p
}

func render(p *plot.Plot) ([]byte, error) {
	wt, err := p.WriterTo(figWidth, figHeight, "svg")
	if err != nil {
		return nil, fmt.Errorf("render plot %q: %w", p.Title.Text, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("render plot %q: %w", p.Title.Text, err)
	}
	return buf.Bytes(), nil
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: a}
}

// regretFigure plots every policy's mean cumulative regret on scenario with
// its pointwise confidence band across seeds.
func regretFigure(a *Analysis, scenario string, idx int) (Figure, error) {
	p := newPlot("Cumulative regret — "+scenario, "requests", "cumulative regret")
	p.Legend.Top, p.Legend.Left = true, true
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
		Caption: fmt.Sprintf("Mean over %d seeds of the cumulative regret (Σ oracle − chosen expected reward); the band is the pointwise %s Student-t interval.",
			len(a.Seeds), pct(a.Confidence)),
		SVG: svg,
	}, nil
}

// sharesFigure plots the arm shares per window of scenario's best policy
// (solid) and where the oracle would have routed the same requests
// (dashed), both averaged over seeds.
func sharesFigure(a *Analysis, scenario string, idx int) (Figure, error) {
	best := a.Best(scenario)
	p := newPlot(fmt.Sprintf("Arm shares — %s, %s", best, scenario), "requests", "share of requests in window")
	p.Legend.Top = true
	s, ok := a.SeriesOf(scenario, best)
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 1+0.07*float64(len(s.Arms)) // room for the legend above 1
	p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}})
	if ok {
		for i, arm := range s.Arms {
			col := color10(i)
			for oracle, shares := range []map[string][]float64{s.ArmShares, s.OracleArmShares} {
				xy := make(plotter.XYs, len(s.End))
				for w, x := range s.Mid {
					xy[w] = plotter.XY{X: x, Y: shares[arm][w]}
				}
				l, err := plotter.NewLine(xy)
				if err != nil {
					return Figure{}, fmt.Errorf("arm shares of %q on %q: %w", best, scenario, err)
				}
				l.Color = col
				if oracle == 1 {
					l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
					l.Width = vg.Points(1)
				} else {
					l.Width = vg.Points(1.5)
					p.Legend.Add(arm, l)
				}
				p.Add(l)
			}
		}
	}
	svg, err := render(p)
	if err != nil {
		return Figure{}, err
	}
	return Figure{
		plot:  p,
		Name:  fmt.Sprintf("shares-%d-%s.svg", idx+1, fileSafe(scenario)),
		Title: fmt.Sprintf("Arm shares of the best policy (%s) on %s", best, scenario),
		Caption: fmt.Sprintf("Fraction of each window's requests routed to each model by %s (solid) and by the oracle on the same requests (dashed), mean over %d seeds.",
			best, len(a.Seeds)),
		SVG: svg,
	}, nil
}

// ratioFigure is a grouped bar chart: per scenario, every policy's mean
// reward/oracle with its confidence interval as an error bar.
func ratioFigure(a *Analysis) (Figure, error) {
	p := newPlot("Reward / oracle", "", "reward / oracle (expected)")
	bars := &groupedBars{groups: len(a.Scenarios), series: len(a.Policies), ymin: math.Inf(1)}
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
	p.Y.Min = bars.ymin
	p.Legend.Top = true
	p.Legend.Left = true
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
		Caption: fmt.Sprintf("Mean over %d seeds of expected reward / oracle reward; error bars are %s Student-t intervals. The axis starts at %.2f, not 0.",
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
			lo, hi := trY(iv.Lo), trY(iv.Hi)
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
				ymax = math.Max(ymax, iv.Hi)
			}
		}
	}
	// Head room for the legend.
	ymax += (ymax - ymin) * 0.25 * float64(g.series) / 2
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
// one another, in print and for common colour-vision deficiencies.
var tab10 = [...]color.NRGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xd6, 0x27, 0x28, 0xff},
	{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	{0xbc, 0xbd, 0x22, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
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
