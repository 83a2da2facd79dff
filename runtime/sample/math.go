package sample

import "math"

// Argmax returns the index of the largest logit, the lowest index among
// equal maxima. NaN counts as -Inf. It returns -1 when no logit is usable:
// logits is empty or every entry is NaN or -Inf.
func Argmax(logits []float32) int {
	best := -1
	m := float32(math.Inf(-1))
	for i, x := range logits {
		if x > m { // false for NaN
			best, m = i, x
		}
	}
	return best
}

// NLL returns the negative log-likelihood of target under softmax(logits),
// logsumexp(logits) - logits[target], computed in float64 with the maximum
// subtracted first. Perplexity is exp of the mean NLL over a sequence.
//
// NLL is +Inf when target has zero probability (its logit is -Inf, or
// another logit is +Inf) and NaN when any logit is NaN or none is usable, so
// a broken model shows up in the measurement. It panics if target is out of
// range.
func NLL(logits []float32, target int) float64 {
	t := float64(logits[target])
	m := math.Inf(-1)
	for _, x := range logits {
		if x != x {
			return math.NaN()
		}
		m = max(m, float64(x))
	}
	switch {
	case math.IsInf(m, -1):
		return math.NaN()
	case math.IsInf(m, 1):
		if !math.IsInf(t, 1) {
			return math.Inf(1)
		}
		n := 0
		for _, x := range logits {
			if math.IsInf(float64(x), 1) {
				n++
			}
		}
		return math.Log(float64(n))
	}
	sum := 0.0
	for _, x := range logits {
		sum += expNeg(float64(x) - m)
	}
	return (m - t) + math.Log(sum)
}
