package policy

// routerDots sets qs[i] = arms[i].Quality·x and cs[i] = arms[i].Cost·x for
// the non-nil arms (whose weights have len(x) entries), leaving the others
// alone. Three arms at a time with six accumulators in registers (more
// would spill), each weight vector read once, in order: over the non-zero
// slots of x when they are at most half of it and at most maxSparseSlots
// (short prompts), else densely, with no branch per slot. Every sum runs
// over j in index order and a zero x[j] adds ±0, which leaves a sum
// unchanged, so both give the sums over the non-zero slots, bit for bit.
func routerDots(x []float64, arms []*RouterArm, qs, cs []float64) {
	// Gather the non-zero slots without a branch on each (at 20–80%
	// density one would mispredict often); give up past the buffer.
	var nzBuf [maxSparseSlots + 1]int32
	k := 0
	for j, v := range x {
		nzBuf[k] = int32(j)
		if v != 0 {
			k++
		}
		if k == maxSparseSlots {
			break
		}
	}
	nz := nzBuf[:k]
	if k == maxSparseSlots || 2*k > len(x) {
		nz = nil
	}
	var grp [3]*RouterArm
	var at [3]int
	n := 0
	flush := func() {
		for k := n; k < 3; k++ { // pad with the first arm; results unused
			grp[k] = grp[0]
		}
		var q, c [3]float64
		if nz != nil {
			q, c = dot3Sparse(x, nz, grp)
		} else {
			q, c = dot3(x, grp)
		}
		for k := range n {
			qs[at[k]], cs[at[k]] = q[k], c[k]
		}
		n = 0
	}
	for i, a := range arms {
		if a == nil {
			continue
		}
		grp[n], at[n] = a, i
		n++
		if n == 3 {
			flush()
		}
	}
	if n > 0 {
		flush()
	}
}

// maxSparseSlots bounds the non-zero slots routerDots gathers on the stack.
const maxSparseSlots = 1024

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

// dot3Sparse is dot3 over the slots nz (ascending) of x only.
func dot3Sparse(x []float64, nz []int32, a [3]*RouterArm) (q, c [3]float64) {
	n := len(x)
	q0, q1, q2 := a[0].Quality[:n], a[1].Quality[:n], a[2].Quality[:n]
	c0, c1, c2 := a[0].Cost[:n], a[1].Cost[:n], a[2].Cost[:n]
	var sq0, sq1, sq2, sc0, sc1, sc2 float64
	for _, j := range nz {
		v := x[j]
		sq0 += q0[j] * v
		sc0 += c0[j] * v
		sq1 += q1[j] * v
		sc1 += c1[j] * v
		sq2 += q2[j] * v
		sc2 += c2[j] * v
	}
	return [3]float64{sq0, sq1, sq2}, [3]float64{sc0, sc1, sc2}
}
