package neural

// ring is the replay buffer: the last cap rows (x, arm, reward, weight),
// oldest overwritten first. Rows are stored flat so adding one does not
// allocate. seen counts every row ever added, so a training round can tell
// which rows arrived after it started.
type ring struct {
	cap, dim   int
	xs         []float64
	arm        []int32
	y, w       []float64
	next, size int
	seen       int64
}

func newRing(capacity, dim int) ring {
	return ring{cap: capacity, dim: dim}
}

// add appends a row, overwriting the oldest when full. Storage grows with
// use up to cap rows, so a large Buffer costs memory only when filled.
func (r *ring) add(x []float64, arm int, y, w float64) {
	if r.size < r.cap {
		r.xs = append(r.xs, x...)
		r.arm = append(r.arm, int32(arm))
		r.y = append(r.y, y)
		r.w = append(r.w, w)
		r.size++
		r.next = r.size % r.cap
	} else {
		copy(r.xs[r.next*r.dim:(r.next+1)*r.dim], x)
		r.arm[r.next], r.y[r.next], r.w[r.next] = int32(arm), y, w
		r.next = (r.next + 1) % r.cap
	}
	r.seen++
}

// pos returns the storage index of the k-th oldest row (0 = oldest).
func (r *ring) pos(k int) int {
	if r.size < r.cap {
		return k
	}
	return (r.next + k) % r.cap
}

func (r *ring) x(i int) []float64 { return r.xs[i*r.dim : (i+1)*r.dim] }

// dataset copies the rows, oldest first.
func (r *ring) dataset() *dataset {
	d := &dataset{dim: r.dim, xs: make([]float64, 0, r.size*r.dim), arm: make([]int32, 0, r.size), y: make([]float64, 0, r.size), w: make([]float64, 0, r.size)}
	for k := 0; k < r.size; k++ {
		i := r.pos(k)
		d.add(r.x(i), int(r.arm[i]), r.y[i], r.w[i])
	}
	return d
}

// since returns the storage indices, oldest first, of the rows added after
// the seen-th that are still buffered.
func (r *ring) since(seen int64) []int {
	n := int(min(r.seen-seen, int64(r.size)))
	out := make([]int, n)
	for k := range out {
		out[k] = r.pos(r.size - n + k)
	}
	return out
}
