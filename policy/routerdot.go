package policy

// routerDots sets qs[i] = arms[i].Quality·x and cs[i] = arms[i].Cost·x for
// the non-nil arms (whose weights have len(x) entries), leaving the others
// alone. It walks x densely, three arms at a time with six accumulators
// in registers (more would spill): no branch per slot, and each weight
// vector is read once, in order. Every sum runs over j in index order; a
// zero x[j] adds ±0, which leaves a sum unchanged, so the results equal
// the sums over the non-zero slots alone, bit for bit.
func routerDots(x []float64, arms []*RouterArm, qs, cs []float64) {
	var grp [3]*RouterArm
	var at [3]int
	n := 0
	for i, a := range arms {
		if a == nil {
			continue
		}
		grp[n], at[n] = a, i
		n++
		if n == 3 || i == len(arms)-1 {
			for k := n; k < 3; k++ { // pad with the first arm; results unused
				grp[k] = grp[0]
			}
			q, c := dot3(x, grp)
			for k := range n {
				qs[at[k]], cs[at[k]] = q[k], c[k]
			}
			n = 0
		}
	}
	if n > 0 { // the last arms were nil
		for k := n; k < 3; k++ {
			grp[k] = grp[0]
		}
		q, c := dot3(x, grp)
		for k := range n {
			qs[at[k]], cs[at[k]] = q[k], c[k]
		}
	}
}

// dot3 returns the quality and cost dot products of three arms with x.
func dot3(x []float64, a [3]*RouterArm) (q, c [3]float64) {
	n := len(x)
	q0, q1, q2 := a[0].Quality[:n], a[1].Quality[:n], a[2].Quality[:n]
	c0, c1, c2 := a[0].Cost[:n], a[1].Cost[:n], a[2].Cost[:n]
	var sq0, sq1, sq2, sc0, sc1, sc2 float64
	for j, v := range x {
		sq0 += q0[j] * v
		sc0 += c0[j] * v
		sq1 += q1[j] * v
		sc1 += c1[j] * v
		sq2 += q2[j] * v
		sc2 += c2[j] * v
	}
	return [3]float64{sq0, sq1, sq2}, [3]float64{sc0, sc1, sc2}
}
