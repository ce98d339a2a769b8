package experiments

import (
	"errors"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// CurvePlot is a cost–quality figure: curves (routers' frontiers, the
// fixed models' hull) and labelled points (the fixed models), cost on a
// log axis.
type CurvePlot struct {
	Title  string
	Curves []CurveSeries
	Points []CurvePoint
}

// CurveSeries is one line of a CurvePlot.
type CurveSeries struct {
	Name string
	X, Y []float64
}

// CurvePoint is one labelled point of a CurvePlot.
type CurvePoint struct {
	Name string
	X, Y float64
}

// CurveSVG renders cp as an SVG figure in the reports' style.
func CurveSVG(cp CurvePlot) ([]byte, error) {
	p := newPlot(cp.Title, "mean cost per prompt (USD, log scale)", "mean score")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	n := 0
	for i, c := range cp.Curves {
		if len(c.X) != len(c.Y) {
			return nil, errors.New("curve " + c.Name + ": x and y differ in length")
		}
		xy := make(plotter.XYs, 0, len(c.X))
		for j := range c.X {
			if c.X[j] > 0 {
				xy = append(xy, plotter.XY{X: c.X[j], Y: c.Y[j]})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = color10(i)
		l.Width = vg.Points(1.5)
		if i == len(cp.Curves)-1 && len(cp.Points) > 0 {
			l.Color = color.Gray{0x60}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(c.Name, l)
		n++
	}
	if len(cp.Points) > 0 {
		xy := make(plotter.XYs, 0, len(cp.Points))
		var labels []string
		for _, pt := range cp.Points {
			if pt.X > 0 {
				xy = append(xy, plotter.XY{X: pt.X, Y: pt.Y})
				labels = append(labels, pt.Name)
			}
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		p.Add(s)
		p.Legend.Add("fixed models", s)
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
		if err != nil {
			return nil, err
		}
		for i := range lb.TextStyle {
			sans(&lb.TextStyle[i])
			lb.TextStyle[i].Font.Size = vg.Points(7)
			lb.TextStyle[i].XAlign = draw.XLeft
		}
		lb.Offset = vg.Point{X: vg.Points(3), Y: vg.Points(2)}
		p.Add(lb)
		n++
	}
	if n == 0 {
		return nil, errors.New("cost–quality plot: nothing to draw")
	}
	return render(p)
}
