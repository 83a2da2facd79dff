package sample

// The filters work on candidates in place and never sort the whole
// vocabulary: top-k uses a bounded heap (or quickselect when k is a large
// share of the vocabulary), top-p a quickselect that carries the probability
// mass along, and min-p a single pass. Candidates are ranked by weight, then
// by lower id, so every ranking is a total order and results are
// deterministic.

// better reports whether a ranks before b: higher weight, then lower id.
func better(a, b cand) bool {
	return a.p > b.p || (a.p == b.p && a.id < b.id)
}

// topKHeap returns the k best usable logits of l as candidates (weight =
// logit), in no particular order, using h as storage. It does one comparison
// per token once the heap is full, which is what makes small k cheap.
func topKHeap(l []float32, k int, h []cand) []cand {
	h = h[:0]
	i := 0
	for ; i < len(l) && len(h) < k; i++ {
		if usable(l[i]) {
			h = append(h, cand{p: l[i], id: int32(i)})
			siftUp(h, len(h)-1)
		}
	}
	if len(h) < k {
		return h
	}
	// h[0] is the worst kept token. A later token with an equal logit has
	// a higher id, so it ranks below h[0] and is rejected by the strict >.
	worst := h[0].p
	for ; i < len(l); i++ {
		if x := l[i]; x > worst {
			h[0] = cand{p: x, id: int32(i)}
			siftDown(h, 0)
			worst = h[0].p
		}
	}
	return h
}

// siftUp and siftDown maintain a heap whose root is the worst candidate.
func siftUp(h []cand, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !better(h[parent], h[i]) {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

func siftDown(h []cand, i int) {
	for {
		worst := i
		if l := 2*i + 1; l < len(h) && better(h[worst], h[l]) {
			worst = l
		}
		if r := 2*i + 2; r < len(h) && better(h[worst], h[r]) {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}

// partition partitions c[lo:hi] (hi-lo >= 2) around a median-of-three pivot
// and returns the pivot's final index m: c[lo:m] rank before it and
// c[m+1:hi] after it.
func partition(c []cand, lo, hi int) int {
	mid, last := lo+(hi-lo)/2, hi-1
	if better(c[mid], c[lo]) {
		c[mid], c[lo] = c[lo], c[mid]
	}
	if better(c[last], c[lo]) {
		c[last], c[lo] = c[lo], c[last]
	}
	if better(c[last], c[mid]) {
		c[last], c[mid] = c[mid], c[last]
	}
	// c[mid] is the median; move it to the end as the pivot.
	c[mid], c[last] = c[last], c[mid]
	pivot := c[last]
	m := lo
	for j := lo; j < last; j++ {
		if better(c[j], pivot) {
			c[m], c[j] = c[j], c[m]
			m++
		}
	}
	c[m], c[last] = c[last], c[m]
	return m
}

// selectTop reorders c so that c[:k] holds its k best candidates, 0 < k <
// len(c), in no particular order.
func selectTop(c []cand, k int) {
	lo, hi := 0, len(c)
	for hi-lo > 1 {
		m := partition(c, lo, hi)
		switch {
		case m == k || m+1 == k:
			return
		case m > k:
			hi = m
		default:
			lo = m + 1
		}
	}
}

// nucleus reorders c and returns the smallest prefix of best candidates
// whose total weight reaches target, and that weight, so it returns the
// top-p set when target is p times the total weight. The prefix has at least
// one candidate when target > 0, and is all of c when the total falls short
// of target. It runs in expected linear time: a quickselect that carries the
// mass of the part known to be in the nucleus.
func nucleus(c []cand, target float64) ([]cand, float64) {
	// Invariant: c[:lo] ranks before c[lo:], acc is its weight, acc <
	// target, and the answer is in (lo, hi].
	lo, hi := 0, len(c)
	acc := 0.0
	for hi-lo > 1 {
		m := partition(c, lo, hi)
		mass := 0.0
		for _, x := range c[lo:m] {
			mass += float64(x.p)
		}
		if acc+mass >= target {
			hi = m // m > lo, since the mass of c[lo:lo] is 0
			continue
		}
		acc += mass + float64(c[m].p)
		if acc >= target {
			return c[:m+1], acc
		}
		lo = m + 1
	}
	for _, x := range c[lo:hi] {
		acc += float64(x.p)
	}
	return c[:hi], acc
}

// heavyWeight splits the candidates after softmax, where the most likely
// has weight 1. When the tokens at least this heavy hold the top-p mass, the
// nucleus is among them: they form a prefix of the ranking.
const heavyWeight = 1e-4

// keepHeavy removes, in place, the candidates lighter than heavyWeight.
func keepHeavy(c []cand) []cand {
	n := 0
	for _, x := range c {
		if x.p >= heavyWeight {
			c[n] = x
			n++
		}
	}
	return c[:n]
}

// minP removes, in place, the candidates whose weight is below minp times
// the largest weight, keeping the order of the rest, and returns them with
// their total weight.
func minP(c []cand, minp float64) ([]cand, float64) {
	var top float32
	for _, x := range c {
		top = max(top, x.p)
	}
	threshold := minp * float64(top)
	n, total := 0, 0.0
	for _, x := range c {
		if float64(x.p) >= threshold {
			c[n] = x
			n++
			total += float64(x.p)
		}
	}
	return c[:n], total
}
