package replay

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Observers fans the evaluation pass out to several observers.
type Observers []Observer

// Start implements Observer.
func (os Observers) Start(arms []string) error {
	for _, o := range os {
		if err := o.Start(arms); err != nil {
			return err
		}
	}
	return nil
}

// Observe implements Observer.
func (os Observers) Observe(v *RowView) error {
	for _, o := range os {
		if err := o.Observe(v); err != nil {
			return err
		}
	}
	return nil
}

// OBPWriter writes one target's evaluation rows as CSV in the form Open
// Bandit Pipeline's estimators take, so that routelab's estimates can be
// cross-checked outside it. Columns, per logged row:
//
//	action          index of the chosen arm in the action list
//	reward          logged reward
//	pscore          logged propensity of the chosen arm
//	pi_0 … pi_{K-1} target's probability of every action (action_dist)
//	q_0 … q_{K-1}   reward model's prediction (estimated_rewards_by_reg_model)
//
// Actions are every arm id that appears in the log, sorted; the mapping is
// written as '#' comment lines before the header (pandas: read_csv(path,
// comment="#")). An action that was not a candidate on a row gets pi 0 and
// q 0 there. Call Flush when the evaluation is done.
type OBPWriter struct {
	target int
	w      *bufio.Writer
	index  map[string]int
	k      int
	pi, q  []float64
	buf    []byte
}

var _ Observer = (*OBPWriter)(nil)

// NewOBPWriter writes the rows of target (its index in Evaluate's targets)
// to w.
func NewOBPWriter(w io.Writer, target int) *OBPWriter {
	return &OBPWriter{target: target, w: bufio.NewWriterSize(w, 1<<16)}
}

// Start implements Observer: it writes the action mapping and the header.
func (o *OBPWriter) Start(arms []string) error {
	o.k = len(arms)
	o.index = make(map[string]int, len(arms))
	o.pi = make([]float64, o.k)
	o.q = make([]float64, o.k)
	var b strings.Builder
	b.WriteString("# routelab replay rows (Open Bandit Pipeline inputs); actions:\n")
	for i, id := range arms {
		o.index[id] = i
		fmt.Fprintf(&b, "# action %d = %s\n", i, strconv.Quote(id))
	}
	b.WriteString("action,reward,pscore")
	for _, col := range []string{"pi", "q"} {
		for i := range arms {
			fmt.Fprintf(&b, ",%s_%d", col, i)
		}
	}
	b.WriteByte('\n')
	_, err := o.w.WriteString(b.String())
	return err
}

// Observe implements Observer.
func (o *OBPWriter) Observe(v *RowView) error {
	if v.Target != o.target {
		return nil
	}
	if o.index == nil {
		return fmt.Errorf("obp writer: Observe before Start")
	}
	clear(o.pi)
	clear(o.q)
	d := &v.Record.Decision
	for j, c := range d.Candidates {
		i, ok := o.index[c.ID]
		if !ok {
			return fmt.Errorf("obp writer: arm %q not in the action list", c.ID)
		}
		o.pi[i] = v.Pi[j]
		o.q[i] = v.Q[j]
	}
	b := o.buf[:0]
	b = strconv.AppendInt(b, int64(o.index[d.Candidates[d.Chosen].ID]), 10)
	b = append(b, ',')
	b = strconv.AppendFloat(b, v.Record.Reward, 'g', -1, 64)
	b = append(b, ',')
	b = strconv.AppendFloat(b, d.Probs[d.Chosen], 'g', -1, 64)
	for _, col := range [][]float64{o.pi, o.q} {
		for _, x := range col {
			b = append(b, ',')
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	b = append(b, '\n')
	o.buf = b
	_, err := o.w.Write(b)
	return err
}

// Flush writes any buffered rows.
func (o *OBPWriter) Flush() error { return o.w.Flush() }
